# KW-ConvNeXt-T 1x on ImageNet-1k, 300 epochs (paper: 82.51 top-1, 39.37M parameters). The
# official run (configs/convnext/kw1x_convnext_tiny.json) is ConvNeXt's recipe, main.py's
# defaults: AdamW lr 4e-3 at batch 4096, wd 0.05 (none on 1-D parameters), 20 warm-up epochs +
# cosine to 1e-6, RandAugment m9, Mixup 0.8 / CutMix 1.0, label smoothing 0.1, random erasing
# 0.25, drop path 0.3 (the plain ConvNeXt-T: 0.1), layer scale 1e-6, and model EMA 0.9999 whose
# evaluation is reported (model_ema_eval). tau falls linearly from 1 to 0 over the first 20
# epochs; the EMA copy is always evaluated at tau = 0, as upstream.
_base_ = ['mmpretrain::convnext/convnext-tiny_32xb128_in1k.py']
custom_imports = dict(imports=['mmlk'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmlk.KWConvNeXt',
        arch='tiny',
        budget='1x',
        drop_path_rate=0.3,
        layer_scale_init_value=1e-6,
        gap_before_final_norm=True,
        out_indices=(3, )),
    head=dict(in_channels=768))
optim_wrapper = dict(
    optimizer=dict(lr=4e-3),
    paramwise_cfg=dict(_delete_=True, norm_decay_mult=0.0, bias_decay_mult=0.0,
                       flat_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=20, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=20),
]
custom_hooks = [
    dict(type='EMAHook', momentum=1e-4, priority='ABOVE_NORMAL'),
    dict(type='mmlk.KWTemperatureHook', epochs=20, start=1.0, end=0.0),
]
auto_scale_lr = dict(base_batch_size=4096)
