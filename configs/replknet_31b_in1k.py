# Entry point: RepLKNet-31B on ImageNet-1k (see configs/replknet/ for the family).
_base_ = ['./replknet/replknet-31b_32xb64_in1k.py']
