# KW-MobileNetV2 1.0x (KW 4x) + Mask R-CNN FPN, COCO 1x (paper: 38.0 box AP / 34.9 mask AP):
# the 1x recipe with the 4x warehouses, one per layer type and stage (the official
# sharing_range=('layer'), i.e. pwconv0 / dwconv0 / pwconv1 apart).
_base_ = ['./mask-rcnn_kw1x-mobilenetv2-100_fpn_ms-crop-1x_coco.py']
pretrained = 'checkpoints/kw4x-mobilenetv2-100_in1k_mmlk.pth'
model = dict(backbone=dict(budget='4x', init_cfg=dict(checkpoint=pretrained)))
