# RepLKNet-31B (ImageNet-1k) + UperNet, ADE20K, 512x512 crops (paper: 49.9 mIoU ss, 50.6 ms).
# Official RepLKNet-31B_1Kpretrain_upernet_160k_ade20k_512.py: AdamW 2e-4, betas (0.9, 0.999),
# wd 0.05 with none on norms, linear warm-up 400 iters (ratio 1e-6) then poly (power 1, to 0),
# drop path 0.5, 2 images x 64 GPUs = 128 for 40k iterations (the same 5.12M samples as
# mmseg's 160k x 32). Here 8 GPUs x 16 images keeps the batch and LR; with fewer images use
# --auto-scale-lr (base batch 128) or keep 128 with optim_wrapper.accumulative_counts.
_base_ = [
    '../_base_/models/upernet_replknet.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_40k.py',
]
crop_size = (512, 512)
# Official ImageNet-1k weights: the original file loads directly (raw state dict; our
# Pretrained init is strict and drops only the classifier); see the README, "RepLKNet".
pretrained = 'checkpoints/RepLKNet-31B_ImageNet-1K_224.pth'
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch='31B',
        drop_path_rate=0.5,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')))

# Official: no layer-wise decay ("may improve", README tip 4); set decay_rate (e.g. 0.9) to
# try it, the ids are the official get_num_layer_for_replknet ones (12 blocks + 2).
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='mmlk.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(decay_rate=1.0, decay_type='layer_wise', num_layers=12,
                       norm_decay_mult=0.0, bias_decay_mult=1.0, flat_decay_mult=1.0))
warmup_iters = 400
max_iters = 40000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=warmup_iters,
         end=max_iters),
]
train_dataloader = dict(batch_size=16)  # 8 GPUs x 16 = 128, the official total batch
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
train_cfg = dict(max_iters=max_iters, val_interval=4000)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=4000, max_keep_ckpts=3))
auto_scale_lr = dict(enable=False, base_batch_size=128)
