# Entry point: Shift-ConvNets 2024 + UperNet on ADE20K (see configs/shiftwise/).
_base_ = ['./shiftwise/upernet_shiftwise-convnext-t_4xb4-160k_ade20k-512x512.py']
