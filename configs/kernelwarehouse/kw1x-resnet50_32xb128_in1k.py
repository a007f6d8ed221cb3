# KW-ResNet50 1x on ImageNet-1k, 300 epochs (paper: 80.38 top-1, 28.05M parameters). The
# official run is ConvNeXt's recipe (main.py defaults): AdamW lr 4e-3 at batch 4096, wd 0.05
# (none on 1-D parameters), 20 warm-up epochs + cosine to 1e-6, RandAugment m9, Mixup 0.8 /
# CutMix 1.0, label smoothing 0.1, random erasing 0.25, uniform drop path 0.1, no EMA; tau
# annealed linearly from 1 to 0 over the first 20 epochs (KWTemperatureHook).
_base_ = ['mmpretrain::convnext/convnext-tiny_32xb128_in1k.py']
custom_imports = dict(imports=['mmlk'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmlk.KWResNet',
        depth=50,
        budget='1x',
        drop_path_rate=0.1,
        out_indices=(3, ),
        # the official ImageNet training: BNs train, residual branches start as torchvision's
        norm_eval=False,
        zero_init_residual=False),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(in_channels=2048))
optim_wrapper = dict(
    optimizer=dict(lr=4e-3),
    paramwise_cfg=dict(_delete_=True, norm_decay_mult=0.0, bias_decay_mult=0.0,
                       flat_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=20, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=20),
]
custom_hooks = [dict(type='mmlk.KWTemperatureHook', epochs=20, start=1.0, end=0.0)]
auto_scale_lr = dict(base_batch_size=4096)
