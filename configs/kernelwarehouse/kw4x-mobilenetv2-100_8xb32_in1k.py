# KW-MobileNetV2 1.0x with KW 4x on ImageNet-1k, 150 epochs (paper: 75.92 top-1, 11.38M
# parameters): the 1x recipe with one warehouse per layer type and stage (label smoothing 0.1:
# the JSON omits it).
_base_ = ['./kw1x-mobilenetv2-100_8xb32_in1k.py']
model = dict(backbone=dict(budget='4x'))
