# RepLKNet-XL (27/27/27/13 kernels without the small re-param branch, dw ratio 1.5) fine-tuned
# from MegData-73M on ImageNet-1k at 320x320 (paper: 87.8 top-1, 335.44M parameters). XL
# normalises with mean = std = 127.5 (0.5 * 255), not ImageNet's statistics (mmpretrain's
# XL config writes 122.5, which does not match the official code). MegData-73M is not public
# and its fine-tuning recipe is not published: the schedule below is the 31L 22K -> 1K one
# (AdamW 4e-4, wd 1e-8, layer decay 0.7, cosine), with drop path 0.5; the released 1K
# checkpoint, converted by tools/model_converters/replknet_to_mmlk.py, is what this config
# evaluates (tools/test.py CONFIG CKPT).
_base_ = ['./replknet-31l_in21k-pre_32xb64_in1k-384px.py']
model = dict(
    backbone=dict(arch='XL', drop_path_rate=0.5, init_cfg=None),
    head=dict(in_channels=2048))
data_preprocessor = dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5])
bgr_mean = [127.5, 127.5, 127.5]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=320, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2, total_level=10,
         magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[128, 128, 128], interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand', min_area_ratio=0.02,
         max_area_ratio=1 / 3, fill_color=bgr_mean, fill_std=[127.5, 127.5, 127.5]),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(320, 320), backend='pillow', interpolation='bicubic'),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
