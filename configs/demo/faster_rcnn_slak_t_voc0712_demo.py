# configs/faster_rcnn_slak_t_voc0712.py (full SLaK-T, kernels 51/49/47/13, Faster R-CNN) on the
# embedded PASCAL VOC (python tools/make_demo_data.py voc) on a CPU. Demo overrides only, each
# one a user adapting the recipe to a small dataset or a short schedule needs:
# * the data root, written once: VOC 07+12 is a list of two datasets, and a list in a child
#   config replaces the base's list, so both entries are restated around one `voc` dict;
# * 160x128 images (the demo's size), no ImageNet weights (none can be downloaded), plain BN;
# * a 4-epoch schedule whose warm-up is 10 iterations (the recipe's 500 would never end),
#   fp32 OptimWrapper (the recipe's AmpOptimWrapper needs a GPU: _delete_ restates it).
_base_ = ['../faster_rcnn_slak_t_voc0712.py']
data_root = 'data/demo/VOCdevkit/'
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(backbone=dict(norm_cfg=norm_cfg, drop_path_rate=0.1, init_cfg=None))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(160, 128), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(160, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
voc = dict(type='VOCDataset', data_root=data_root, pipeline=train_pipeline,
           filter_cfg=dict(filter_empty_gt=True, min_size=8, bbox_min_size=8))
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(times=1, dataset=dict(datasets=[
        dict(voc, ann_file='VOC2007/ImageSets/Main/trainval.txt',
             data_prefix=dict(sub_data_root='VOC2007/')),
        dict(voc, ann_file='VOC2012/ImageSets/Main/trainval.txt',
             data_prefix=dict(sub_data_root='VOC2012/')),
    ])))
val_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

max_epochs = 4
train_cfg = dict(max_epochs=max_epochs, val_interval=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=10),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[3], gamma=0.1),
]
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='mmlk.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(decay_rate=1.0, decay_type='layer_wise'))
default_hooks = dict(checkpoint=dict(interval=2, max_keep_ckpts=1), logger=dict(interval=5))
