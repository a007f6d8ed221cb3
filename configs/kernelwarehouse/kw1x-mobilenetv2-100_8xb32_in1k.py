# KW-MobileNetV2 1.0x with KW 1x on ImageNet-1k, 150 epochs (paper: 74.68 top-1, 5.17M
# parameters). The official MobileNetV2 runs (configs/mobilenetv2_*/kw*.json of
# OSVAI/KernelWarehouse) are not ConvNeXt's recipe: SGD with Nesterov momentum 0.9, lr 0.05 at
# batch 256 (8 GPUs x 32), wd 4e-5 (none on 1-D parameters and biases), per-iteration cosine to
# 1e-6 without warm-up, the "traditional" augmentation (RandomResizedCrop 224 + flip; test:
# short side 256, centre crop 224), no drop path, dropout, Mixup, CutMix, RandAugment or
# erasing, no EMA. Label smoothing is 0.1 where the JSON omits "smoothing" (main.py's default:
# kw1x/kw4x MobileNetV2-1.0, kw4x MobileNetV2-0.5) and 0 where it sets it. tau falls linearly
# from 1 to 0 over the first 15 epochs ("temp_epoch": 15).
_base_ = ['mmpretrain::mobilenet_v2/mobilenet-v2_8xb32_in1k.py']
custom_imports = dict(imports=['mmlk'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmlk.KWMobileNetV2',
        widen_factor=1.0,
        budget='1x',
        out_indices=(7, )),  # the final 1x1 conv (mmdet/mmpretrain layer indices)
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=1280,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original',
                  loss_weight=1.0),
        topk=(1, 5)))
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, nesterov=True, weight_decay=4e-5),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=150, eta_min=1e-6, by_epoch=True, begin=0, end=150,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=150, val_interval=1)
custom_hooks = [dict(type='mmlk.KWTemperatureHook', epochs=15, start=1.0, end=0.0)]
auto_scale_lr = dict(base_batch_size=256)
