# KW-ConvNeXt-T 1x on ImageNet-1k, 300 epochs (paper: 82.51 top-1, 39.37M parameters). The
# official run (configs/convnext/kw1x_convnext_tiny.json) is the KW-ResNet recipe (ConvNeXt's,
# main.py's defaults: AdamW lr 4e-3 at batch 4096, wd 0.05 without decay on 1-D parameters, 20
# warm-up epochs + cosine to 1e-6, RandAugment m9, Mixup 0.8 / CutMix 1.0, label smoothing 0.1,
# random erasing 0.25, tau annealed over 20 epochs) with drop path 0.3 (the plain ConvNeXt-T:
# 0.1), layer scale 1e-6, and model EMA 0.9999 whose evaluation is reported (model_ema_eval).
# The EMA copy is evaluated at tau = 0, as upstream.
_base_ = ['./kw1x-resnet50_32xb128_in1k.py']
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
    neck=None,  # the backbone pools and normalises (mmpretrain's ConvNeXt layout)
    head=dict(in_channels=768))
custom_hooks = [
    dict(type='EMAHook', momentum=1e-4, priority='ABOVE_NORMAL'),
    dict(type='mmlk.KWTemperatureHook', epochs=20, start=1.0, end=0.0),
]
