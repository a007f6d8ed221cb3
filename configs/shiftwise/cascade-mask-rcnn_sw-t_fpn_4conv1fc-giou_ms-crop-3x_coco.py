# ShiftwiseConv SW-T (CVPR 2025) + Cascade Mask R-CNN, COCO 3x. Official
# cascade_mask_rcnn_sw_tiny_mstrain_480-800_adamw_3x_coco_in1k.py (mmdet 2.x): 4conv1fc GIoU
# heads, multi-scale 480-800, 36 epochs (steps 27/33), AdamW 1e-4, wd 0.05, layer-wise decay 0.8,
# 2 images x 8 GPUs, the ImageNet tile-sparsity pattern kept fixed. The training pipeline is
# mmdet's ConvNeXt 3x one (480-800 multi-scale with the DETR-style crop branch).
_base_ = ['../slak/cascade-mask-rcnn_slak-t_fpn_4conv1fc-giou_ms-crop-3x_coco.py']
pretrained = 'checkpoints/sw-t_in1k_mmlk.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmlk.ShiftWiseNet',
        arch='tiny',
        kernel_size=(51, 49, 47, 13, 3),
        ghost_ratio=0.23,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        drop_path_rate=0.3,
        layer_scale_init_value=1.0,
        out_indices=(0, 1, 2, 3),
        gap_before_final_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(in_channels=[80, 160, 320, 640]))
optim_wrapper = dict(
    paramwise_cfg=dict(_delete_=True, decay_rate=0.8, decay_type='layer_wise', num_layers=12),
    optimizer=dict(lr=1e-4))
