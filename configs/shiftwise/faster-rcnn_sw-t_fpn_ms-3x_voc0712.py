# ShiftwiseConv SW-T (CVPR 2025) + Faster R-CNN on PASCAL VOC 07+12: SLaK-T's VOC recipe
# (configs/slak/) with only the backbone changed, for a like-for-like comparison. The
# ImageNet tile-sparsity pattern is kept fixed (the SparseTrainingHook inherited from it).
_base_ = ['../slak/faster-rcnn_slak-t_fpn_ms-3x_voc0712.py']
pretrained = 'checkpoints/sw-t_in1k_mmlk.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmlk.ShiftWiseNet',
        arch='tiny',
        kernel_size=(51, 49, 47, 13, 3),
        ghost_ratio=0.23,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        gap_before_final_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(in_channels=[80, 160, 320, 640]))
