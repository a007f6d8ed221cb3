# Entry point: Shift-ConvNets 2024 (SLaK network, shift-wise strips) on ImageNet-1k (see
# configs/shiftwise/).
_base_ = ['./shiftwise/shiftwise-convnext-t_32xb128_in1k.py']
