# KW-ResNet50 4x + Mask R-CNN FPN, COCO 1x (paper: 42.4 box AP / 38.9 mask AP): the 1x recipe
# with the 4x warehouses (4 cells per mixture, 102M parameters with the ImageNet classifier).
_base_ = ['./mask-rcnn_kw1x-resnet50_fpn_ms-crop-1x_coco.py']
pretrained = 'checkpoints/kw4x-resnet50_in1k_mmlk.pth'
model = dict(backbone=dict(budget='4x', init_cfg=dict(checkpoint=pretrained)))
