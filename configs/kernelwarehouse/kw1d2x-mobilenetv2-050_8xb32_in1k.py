# KW-MobileNetV2 0.5x with KW 1/2x on ImageNet-1k, 150 epochs (paper: 65.20 top-1, 1.47M
# parameters): the 1.0x 1/2x recipe at half width.
_base_ = ['./kw1d2x-mobilenetv2-100_8xb32_in1k.py']
model = dict(backbone=dict(widen_factor=0.5))
