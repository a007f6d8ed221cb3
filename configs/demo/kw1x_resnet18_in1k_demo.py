# configs/kw1x_resnet18_in1k.py (KernelWarehouse ResNet18 at budget 1x, the temperature
# annealed 1 -> 0 by mmlk.KWTemperatureHook) on the embedded ImageNet (python
# tools/make_demo_data.py imagenet: 6 classes, 64x64) on a CPU. Demo overrides only:
# num_classes in the head and the data preprocessor, 64x64 crops, a 4-epoch schedule in
# iterations (the recipe's 20-epoch warm-up would never end) and the temperature annealed
# over 2 epochs instead of 20, fp32.
_base_ = ['../kw1x_resnet18_in1k.py']
data_root = 'data/demo/imagenet'
num_classes = 6
model = dict(head=dict(num_classes=num_classes))
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
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=2e-3))
custom_hooks = [dict(type='mmlk.KWTemperatureHook', epochs=2, start=1.0, end=0.0)]
auto_scale_lr = dict(enable=False)
default_hooks = dict(checkpoint=dict(interval=2, max_keep_ckpts=1), logger=dict(interval=5))
