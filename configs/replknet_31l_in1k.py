# Entry point: RepLKNet-31L, ImageNet-22K -> 1K fine-tuning at 384 (see configs/replknet/ for the
# family).
_base_ = ['./replknet/replknet-31l_in21k-pre_32xb64_in1k-384px.py']
