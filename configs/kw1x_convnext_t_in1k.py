# Entry point: KW-ConvNeXt-T 1x on ImageNet-1k with model EMA and the temperature schedule (see
# configs/kernelwarehouse/ for the family).
_base_ = ['./kernelwarehouse/kw1x-convnext-t_32xb128_in1k.py']
