# Entry point: KW-ResNet50 1x on ImageNet-1k with the temperature schedule (see
# configs/kernelwarehouse/ for the family).
_base_ = ['./kernelwarehouse/kw1x-resnet50_32xb128_in1k.py']
