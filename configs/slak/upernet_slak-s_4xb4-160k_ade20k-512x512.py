# SLaK-S + UperNet, ADE20K 160k (paper: 49.4 mIoU). Official: drop path 0.3, stage-wise decay
# 0.9 over 12 layer ids (27 blocks in stage 2).
_base_ = ['./upernet_slak-t_4xb4-160k_ade20k-512x512.py']
pretrained = 'checkpoints/SLaK_small_checkpoint.pth'
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
