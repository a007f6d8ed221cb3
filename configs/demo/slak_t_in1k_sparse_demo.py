# configs/slak_t_in1k.py (full SLaK-T, ImageNet classification with dynamic sparse training:
# SNIP init at 40% sparsity, magnitude prune + random growth, sparse EMA) on the embedded
# ImageNet (python tools/make_demo_data.py imagenet: 6 classes, 64x64) on a CPU. Demo
# overrides only, each one a user adapting the recipe to a small dataset needs:
# * num_classes in the head *and* in the data preprocessor (Mixup/CutMix one-hot targets);
# * 64x64 crops, batch 8, no workers;
# * a schedule in iterations that fits 4 epochs: the recipe's 20-epoch warm-up would never end;
# * the sparse engine's update every 4 steps (the recipe's 2000 would never come), fp32.
_base_ = ['../slak_t_in1k.py']
data_root = 'data/demo/imagenet'
num_classes = 6
model = dict(backbone=dict(norm_cfg=dict(type='BN', requires_grad=True)),
             head=dict(num_classes=num_classes))
data_preprocessor = dict(num_classes=num_classes)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=64, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=72, edge='short', backend='pillow'),
    dict(type='CenterCrop', crop_size=64),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=8, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=8, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

max_epochs = 4
train_cfg = dict(max_epochs=max_epochs, val_interval=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=10),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=1, end=max_epochs),
]
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=1e-3))
custom_hooks = [
    dict(type='mmlk.SparseTrainingHook', sparsity=0.4, init='snip', growth='random',
         prune_rate=0.3, update_interval=4, scope='model'),
    dict(type='EMAHook', ema_type='mmlk.SparseEMA', momentum=0.01, priority='ABOVE_NORMAL'),
]
auto_scale_lr = dict(enable=False)
default_hooks = dict(checkpoint=dict(interval=2, max_keep_ckpts=1), logger=dict(interval=5))
