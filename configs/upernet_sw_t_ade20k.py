# Entry point: ShiftwiseConv SW-T (CVPR 2025) + UperNet on ADE20K (see configs/shiftwise/ for the
# family).
_base_ = ['./shiftwise/upernet_sw-t_4xb4-160k_ade20k-512x512.py']
