# SLaK-T + Mask R-CNN, COCO 1x (12 epochs). Not in the SLaK paper: the Swin/ConvNeXt 1x
# protocol (AdamW 1e-4, wd 0.05, steps at 8 and 11, single-scale 1333x800), with ConvNeXt's
# layer-wise decay 0.95 for Mask R-CNN and drop path 0.2 for 12 epochs.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py']
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
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        gap_before_final_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(in_channels=[124, 249, 499, 998]))
optim_wrapper = dict(
    type='AmpOptimWrapper',
    constructor='mmlk.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(_delete_=True, decay_rate=0.95, decay_type='layer_wise', num_layers=6))
