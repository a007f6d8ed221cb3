# ShiftwiseConv SW-T (CVPR 2025) on ImageNet-1k, 300 epochs, with sparse groups. Official
# README command: AdamW lr 4e-3 at batch 4096 (64 x 8 accumulation x 8 GPUs), wd 0.05, 5 warm-up
# epochs + cosine to 1e-6, RandAugment m9, Mixup 0.8 / CutMix 1.0, label smoothing 0.1, random
# erasing 0.25, drop path 0.2, no EMA; ghost ratio 0.23, 2 paths, 4 replicas, k = 3.
_base_ = ['mmpretrain::convnext/convnext-tiny_32xb128_in1k.py']
custom_imports = dict(imports=['mmlk'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmlk.ShiftWiseNet',
        arch='tiny',
        kernel_size=(51, 49, 47, 13, 3),
        ghost_ratio=0.23,
        num_paths=2,
        num_replicas=4,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        drop_path_rate=0.2,
        out_indices=(3, ),
        gap_before_final_norm=True),
    head=dict(in_channels=640))
train_dataloader = dict(batch_size=64)
optim_wrapper = dict(optimizer=dict(lr=4e-3), accumulative_counts=8)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=5),
]
auto_scale_lr = dict(base_batch_size=4096)
# Sparse groups (official --sparse --sparsity 0.3 --prune_rate 0.3 --growth random
# --sparse_init snip -u 100 --only_L, sparse_type rep_coarse): one mask bit per 3x3 tile of the
# shift-wise convs (block (1, 1, 3, 3)), SNIP per-layer densities, magnitude prune + random
# regrowth every 100 optimizer steps, cosine prune rate from 0.3; every other layer dense.
# The two tile convs (paths) start from one mask; every 131st update (--sparse_gap) path 0 is
# pruned on both paths' summed magnitude and its mask copied to path 1 (tie / tie_every).
custom_hooks = [
    dict(type='mmlk.SparseTrainingHook', sparsity=0.3, init='snip', growth='random',
         prune_rate=0.3, update_interval=100, scope='model', only_large_kernels=True,
         block_shapes={r'large_kernel\.LoRAs\.\d+\.weight': (1, 1, 3, 3)},
         tie=[r'large_kernel\.LoRAs\.(\d+)\.weight'], tie_every=131),
]
