# RepLKNet-31L (ImageNet-22k) + UperNet, ADE20K, 640x640 crops (paper: 52.4 mIoU ss, 52.7 ms).
# Official RepLKNet-31L_22Kpretrain_upernet_160k_ade20k_640.py: as 31B but drop path 0.3,
# warm-up 800 iters, 1 image x 64 GPUs for 80k iterations, sliding-window test 640/426.
_base_ = [
    '../_base_/models/upernet_replknet.py',
    'mmseg::_base_/datasets/ade20k_640x640.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
]
crop_size = (640, 640)
pretrained = 'checkpoints/RepLKNet-31L_ImageNet-22K.pth'
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch='31L',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    decode_head=dict(in_channels=[192, 384, 768, 1536]),
    auxiliary_head=dict(in_channels=768),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(426, 426)))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='mmlk.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(decay_rate=1.0, decay_type='layer_wise', num_layers=12,
                       norm_decay_mult=0.0, bias_decay_mult=1.0, flat_decay_mult=1.0))
warmup_iters = 800
max_iters = 80000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=warmup_iters,
         end=max_iters),
]
train_dataloader = dict(batch_size=8)  # 8 GPUs x 8 = 64, the official total batch
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
train_cfg = dict(max_iters=max_iters, val_interval=8000)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=8000, max_keep_ckpts=3))
auto_scale_lr = dict(enable=False, base_batch_size=64)
