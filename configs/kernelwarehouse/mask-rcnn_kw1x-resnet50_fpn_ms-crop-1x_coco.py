# KW-ResNet50 1x + Mask R-CNN FPN, COCO 1x (12 epochs): the official KernelWarehouse recipe
# (paper: 41.8 box AP / 38.4 mask AP). It is Swin's mmdet setting: DETR-style multi-scale +
# crop augmentation, AdamW 1e-4, wd 0.05 (none on norms), LR steps at 8 and 11, batch 16.
# tau stays 0 (fine-tuning a trained KW network, as upstream: no temperature hook).
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py',
           '../_base_/models/kw_resnet50_detection.py']
custom_imports = dict(imports=['mmlk'], allow_failed_imports=False)
# Official ImageNet weights converted by tools/model_converters/kw_to_mmlk.py (README).
model = dict(
    backbone={{_base_.kw_resnet50_backbone}},
    neck=dict(in_channels=[256, 512, 1024, 2048]))
max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11],
         gamma=0.1),
]
# Swin's optimiser: AdamW 1e-4, wd 0.05, no decay on norms (its custom_keys are kept).
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=1e-4, weight_decay=0.05))
auto_scale_lr = dict(enable=False, base_batch_size=16)
