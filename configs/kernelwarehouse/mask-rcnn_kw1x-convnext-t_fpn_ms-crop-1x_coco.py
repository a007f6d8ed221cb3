# KW-ConvNeXt-T 1x + Mask R-CNN FPN, COCO 1x (paper: 44.7 box AP / 40.6 mask AP; the README
# row says 4x but the released config is 1x). Official recipe: the ResNet50 one with ConvNeXt's
# layer-wise LR decay 0.95 over 6 ids (warehouses, outside stages/downsamplers, get the top id
# as upstream), LR steps at 9 and 11, drop path 0.4, layer scale 1.0 (overwritten by the
# checkpoint), output LayerNorms.
_base_ = ['./mask-rcnn_kw1x-resnet50_fpn_ms-crop-1x_coco.py',
           '../_base_/models/kw_convnext_t_dense.py']
model = dict(
    backbone={{_base_.kw_convnext_t_backbone}},
    neck=dict(in_channels=[96, 192, 384, 768]))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[9, 11], gamma=0.1),
]
optim_wrapper = dict(
    constructor='mmlk.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(_delete_=True, decay_rate=0.95, decay_type='layer_wise', num_layers=6))
