# RepLKNet-31L fine-tuned from ImageNet-22K on ImageNet-1k at 384x384 (paper: 86.6 top-1,
# 172.67M parameters). The official recipe (README "ImageNet-22K -> 1K fine-tuning", main.py):
# AdamW lr 4e-4, wd 1e-8, layer-wise LR decay 0.7 over the 14 RepLKNet layer ids, drop path 0.3,
# cosine with min lr 3e-4, 384x384 crops (bicubic), EMA. Epochs, warm-up and the augmentations
# are not stated for this run; main.py's fine-tuning defaults are kept (30 epochs, 5 warm-up
# epochs, RandAugment, Mixup/CutMix, label smoothing 0.1, erasing 0.25, as the 224 recipe).
# Initialise from the official 22K checkpoint converted by tools/model_converters/
# replknet_to_mmlk.py: the backbone init loads the backbone only and drops the 21841-class
# head (configs/replknet/replknet-31l_in21k.py evaluates that checkpoint with its own head).
_base_ = ['./replknet-31b_32xb64_in1k.py']
pretrained = 'checkpoints/replknet-31l_in21k_mmlk.pth'
model = dict(
    backbone=dict(arch='31L', drop_path_rate=0.3,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    head=dict(in_channels=1536))
bgr_mean = [103.53, 116.28, 123.675]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=384, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2, total_level=10,
         magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[round(x) for x in bgr_mean], interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand', min_area_ratio=0.02,
         max_area_ratio=1 / 3, fill_color=bgr_mean, fill_std=[57.375, 57.12, 58.395]),
    dict(type='PackInputs'),
]
test_pipeline = [  # at 384 the official evaluation resizes to the crop (crop_pct 1.0)
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(384, 384), backend='pillow', interpolation='bicubic'),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
optim_wrapper = dict(
    optimizer=dict(lr=4e-4, weight_decay=1e-8),
    constructor='mmlk.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(_delete_=True, decay_rate=0.7, decay_type='layer_wise',
                       norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=3e-4, by_epoch=True, begin=5),
]
train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=1)
