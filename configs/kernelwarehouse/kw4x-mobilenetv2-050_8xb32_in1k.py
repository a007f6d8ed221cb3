# KW-MobileNetV2 0.5x with KW 4x on ImageNet-1k, 150 epochs (paper: 70.26 top-1, 4.65M
# parameters): label smoothing 0.1 (kw4x_mobilenetv2_050.json omits "smoothing").
_base_ = ['./kw4x-mobilenetv2-100_8xb32_in1k.py']
model = dict(backbone=dict(widen_factor=0.5))
