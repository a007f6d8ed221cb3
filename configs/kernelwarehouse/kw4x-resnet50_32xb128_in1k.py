# KW-ResNet50 4x on ImageNet-1k (paper: 81.05 top-1, 102.02M parameters): the 1x recipe with
# four cells per mixture.
_base_ = ['./kw1x-resnet50_32xb128_in1k.py']
model = dict(backbone=dict(budget='4x'))
