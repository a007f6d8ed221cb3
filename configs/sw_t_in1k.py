# Entry point: ShiftwiseConv SW-T (CVPR 2025) on ImageNet-1k with sparse groups (see
# configs/shiftwise/ for the family).
_base_ = ['./shiftwise/sw-t_8xb512_in1k.py']
