# RepLKNet-31B (ImageNet-1k) + Cascade Mask R-CNN, COCO 3x (paper: 52.2 box AP, 45.2 mask AP).
# Official RepLKNet-31B_1Kpretrain_cascade_mask_rcnn_3x_coco.py is the Swin-style setting that
# mmdet's ConvNeXt config also uses (4conv1fc GIoU heads with SyncBN, DETR-style multi-scale +
# crop AutoAugment, 36 epochs with steps at 27 and 33, 500-iter linear warm-up), with
# AdamW 4e-4, wd 0.05 (none on norms) and drop path 0.6. The official runs used 1 image per
# GPU on an unstated number of GPUs; here 8 GPUs x 2 = 16, mmdet's 3x batch.
_base_ = [
    'mmdet::convnext/'
    'cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py'
]
custom_imports = dict(imports=['mmlk'], allow_failed_imports=False)
pretrained = 'checkpoints/RepLKNet-31B_ImageNet-1K_224.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmlk.RepLKNet',
        arch='31B',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.6,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        with_cp=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=4e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='mmlk.LayerDecayOptimWrapperConstructor',
    # no layer-wise decay officially; the mmlk constructor makes it one number away
    paramwise_cfg=dict(decay_rate=1.0, decay_type='layer_wise', num_layers=12,
                       norm_decay_mult=0.0, bias_decay_mult=1.0, flat_decay_mult=1.0))
auto_scale_lr = dict(enable=False, base_batch_size=16)
