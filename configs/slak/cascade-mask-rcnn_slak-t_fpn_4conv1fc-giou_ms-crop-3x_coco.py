# SLaK-T + Cascade Mask R-CNN, COCO 3x (36 epochs), the official SLaK detection setting
# (paper: 51.3 box AP / 44.3 mask AP with 300-epoch pretraining). It is ConvNeXt's mmdet recipe
# (4conv1fc GIoU heads, DETR-style multi-scale + crop) with SLaK's optimiser: AdamW 2e-4,
# wd 0.05, layer-wise decay 0.7 over 6 ids, drop path 0.4.
_base_ = [
    'mmdet::convnext/'
    'cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py'
]
custom_imports = dict(imports=['mmlk'], allow_failed_imports=False)
# The official downstream runs keep the zero pattern of the sparse ImageNet weights fixed
# (SLaK's sparse=True); with dense or no pretrained weights this hook logs it and trains dense.
custom_hooks = [dict(type='mmlk.SparseTrainingHook', frozen=True)]
pretrained = 'checkpoints/SLaK_tiny_checkpoint.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmlk.SLaK',
        arch='tiny',
        kernel_size=(51, 49, 47, 13, 5),
        width_factor=1.3,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        drop_path_rate=0.4,
        layer_scale_init_value=1.0,
        out_indices=(0, 1, 2, 3),
        gap_before_final_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(in_channels=[124, 249, 499, 998]))
optim_wrapper = dict(
    type='AmpOptimWrapper',
    constructor='mmlk.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(decay_rate=0.7, decay_type='layer_wise', num_layers=6),
    optimizer=dict(lr=2e-4))
auto_scale_lr = dict(enable=False, base_batch_size=16)
