# RepLKNet-XL (MegData-73M) + UperNet, ADE20K, 640x640 crops (paper: 55.2 mIoU ss, 56.0 ms).
# Official RepLKNet-XL_MegData73M_upernet_160k_ade20k_640.py: the 31L setting (640 crops,
# AdamW 2e-4, sliding-window test 640/426) with drop path 0.5, a BN on every output
# (norm_intermediate_features, XL only), mean/std 127.5 as its pretraining, warm-up 1500
# iters, 2 images x 16 GPUs for 160k iterations, test images resized to 2048x512. The official
# file trains on its *test* pipeline (a typo); here training keeps the proper random
# resize/crop/flip/photometric pipeline.
_base_ = ['./upernet_replknet-31l_8xb8-80k_ade20k-640x640.py']
pretrained = 'checkpoints/RepLKNet-XL_MegData73M_pretrain.pth'
model = dict(
    data_preprocessor=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
    backbone=dict(
        arch='XL',
        drop_path_rate=0.5,
        norm_intermediate_features=True,
        init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=[256, 512, 1024, 2048]),
    auxiliary_head=dict(in_channels=1024))

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(batch_size=1, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

warmup_iters = 1500
max_iters = 160000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=warmup_iters,
         end=max_iters),
]
train_dataloader = dict(batch_size=2)  # 16 GPUs x 2 = 32, as the official run
train_cfg = dict(max_iters=max_iters, val_interval=16000)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=16000, max_keep_ckpts=3))
auto_scale_lr = dict(enable=False, base_batch_size=32)
