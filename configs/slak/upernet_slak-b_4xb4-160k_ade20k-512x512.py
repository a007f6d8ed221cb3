# SLaK-B + UperNet, ADE20K 160k (paper README: 50.0 mIoU). Official: drop path 0.4, widths
# [166, 332, 665, 1331], stage-wise decay 0.9 over 12 layer ids.
_base_ = ['./upernet_slak-t_4xb4-160k_ade20k-512x512.py']
pretrained = 'checkpoints/SLaK_base_checkpoint.pth'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    decode_head=dict(in_channels=[166, 332, 665, 1331]),
    auxiliary_head=dict(in_channels=665))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
