# Entry point: RepLKNet-XL on ImageNet-1k at 320 with mean/std 127.5 (see configs/replknet/ for the
# family).
_base_ = ['./replknet/replknet-xl_meg73m-pre_32xb64_in1k-320px.py']
