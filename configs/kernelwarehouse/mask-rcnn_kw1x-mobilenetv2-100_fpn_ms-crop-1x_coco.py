# KW-MobileNetV2 1.0x (KW 1x) + Mask R-CNN FPN, COCO 1x (paper: 36.4 box AP / 33.7 mask AP):
# the ResNet50 recipe with outputs after features 3/6/13/18 (24/32/96/1280 channels: mmdet's
# MobileNetV2 out_indices (1, 2, 4, 7)) and the official detector's frozen_stages=1, which
# freezes features[:4] (the stem and mmdet's layers 1-2: frozen_stages=2 in mmdet's convention)
# with the official freezing rule: only those modules stop training, the warehouses (the
# manager's) all train, those of the stem and stage 1 included (freeze_warehouses=False; True
# would freeze warehouses 0-2 as well).
_base_ = ['./mask-rcnn_kw1x-resnet50_fpn_ms-crop-1x_coco.py']
pretrained = 'checkpoints/kw1x-mobilenetv2-100_in1k_mmlk.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmlk.KWMobileNetV2',
        widen_factor=1.0,
        budget='1x',
        out_indices=(1, 2, 4, 7),
        frozen_stages=2,
        freeze_warehouses=False,
        norm_eval=True,
        norm_cfg=dict(type='BN', requires_grad=True),
        temperature=0.0,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(in_channels=[24, 32, 96, 1280]))
