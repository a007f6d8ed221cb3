# KW-MobileNetV2 0.5x with KW 1x on ImageNet-1k, 150 epochs (paper: 68.29 top-1, 2.85M
# parameters): the MobileNetV2-1.0 recipe at half width (the 1280-channel last conv is kept),
# no label smoothing ("smoothing": 0 in kw1x_mobilenetv2_050.json).
_base_ = ['./kw1x-mobilenetv2-100_8xb32_in1k.py']
model = dict(
    backbone=dict(widen_factor=0.5),
    head=dict(loss=dict(_delete_=True, type='CrossEntropyLoss', loss_weight=1.0)))
