# RepLKNet-31B + Faster R-CNN on PASCAL VOC 07+12, evaluated on VOC2007 test. Neither paper
# has this setting; it is the SLaK-T recipe of configs/slak/ (multi-scale 480-800, AdamW 1e-4,
# wd 0.05, 36 epochs, batch 16) with only the backbone changed, so the two compare like for
# like. Drop path 0.3 (the official RepLKNet default).
_base_ = ['../slak/faster-rcnn_slak-t_fpn_ms-3x_voc0712.py']
pretrained = 'checkpoints/RepLKNet-31B_ImageNet-1K_224.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmlk.RepLKNet',
        arch='31B',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.3,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        with_cp=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
custom_hooks = []  # SLaK's sparse-pattern hook has nothing to do on a dense RepLKNet
