# SLaK-T + UperNet, ADE20K 160k iterations, 512x512 crops (SLaK paper: 47.6 mIoU single-scale).
# Recipe of the official `upernet_slak_tiny_512_160k_ade20k_ss.py` (= ConvNeXt's): AdamW 1e-4,
# wd 0.05, stage-wise LR decay 0.9, warm-up 1500 iters then poly, drop path 0.4, 4 GPUs x 4.
_base_ = [
    '../_base_/models/upernet_slak.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
crop_size = (512, 512)
# Official ImageNet-1k SLaK-T weights: the original file loads directly (our Pretrained init
# unwraps {'model': ...}); see tools/model_converters/slak_to_mmlk.py and the README.
pretrained = 'checkpoints/SLaK_tiny_checkpoint.pth'
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch='tiny',
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='mmlk.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(decay_rate=0.9, decay_type='stage_wise', num_layers=6),
    loss_scale='dynamic')
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, begin=1500, end=160000, eta_min=0.0, by_epoch=False),
]
train_dataloader = dict(batch_size=4)  # 4 GPUs x 4 images = 16, as the official runs
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
train_cfg = dict(val_interval=4000)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=8000, max_keep_ckpts=3))
auto_scale_lr = dict(enable=False, base_batch_size=16)
