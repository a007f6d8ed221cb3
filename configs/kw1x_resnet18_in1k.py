# Entry point: KW-ResNet18 1x on ImageNet-1k with the temperature schedule (see
# configs/kernelwarehouse/ for the family).
_base_ = ['./kernelwarehouse/kw1x-resnet18_32xb128_in1k.py']
