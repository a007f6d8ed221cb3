# Entry point: KW-MobileNetV2 1.0x (KW 1x) on ImageNet-1k with the 15-epoch temperature schedule
# (see configs/kernelwarehouse/ for the family).
_base_ = ['./kernelwarehouse/kw1x-mobilenetv2-100_8xb32_in1k.py']
