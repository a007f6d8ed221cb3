# RepLKNet-31B on ImageNet-1k, 300 epochs at 224 (paper: 83.5 top-1). The official recipe is
# ConvNeXt's (main.py): AdamW lr 4e-3, wd 0.05, 10 warm-up epochs + cosine, RandAugment
# (m9, mstd 0.5), Mixup 0.8 / CutMix 1.0, label smoothing 0.1, random erasing 0.25, EMA
# 0.9999, drop path 0.5, 64 images x 32 GPUs = 2048.
_base_ = ['mmpretrain::convnext/convnext-base_32xb128_in1k.py']
custom_imports = dict(imports=['mmlk'], allow_failed_imports=False)
model = dict(
    # The official RepLKNet keeps PyTorch's default init (every conv is followed by a BN);
    # ConvNeXt's TruncNormal(0.02) model init does not apply.
    init_cfg=None,
    backbone=dict(
        _delete_=True,
        type='mmlk.RepLKNet',
        arch='31B',
        out_indices=(3, ),
        final_norm=True,  # the official classification BN, as backbone.stages.3.norm
        drop_path_rate=0.5,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        with_cp=True),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(in_channels=1024))
train_dataloader = dict(batch_size=64)
optim_wrapper = dict(optimizer=dict(lr=4e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=10, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=10),
]
auto_scale_lr = dict(base_batch_size=2048)
