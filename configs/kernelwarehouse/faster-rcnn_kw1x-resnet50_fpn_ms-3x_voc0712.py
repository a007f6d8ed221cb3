# KW-ResNet50 1x + Faster R-CNN on PASCAL VOC 07+12 (KernelWarehouse released no Faster R-CNN
# config). The recipe is mmlk's VOC one (configs/slak/: multi-scale 480-800, AdamW 1e-4,
# wd 0.05, 36 epochs) with only the backbone changed, so it compares like for like with the
# other families; ResNet's detection conventions (frozen stem + stage 0, frozen BN) as in the
# KW COCO configs.
_base_ = ['../slak/faster-rcnn_slak-t_fpn_ms-3x_voc0712.py',
           '../_base_/models/kw_resnet50_detection.py']
custom_hooks = []  # no sparse weights to keep
# Official ImageNet weights converted by tools/model_converters/kw_to_mmlk.py (README).
model = dict(
    backbone={{_base_.kw_resnet50_backbone}},
    neck=dict(in_channels=[256, 512, 1024, 2048]))
optim_wrapper = dict(_delete_=True, type='AmpOptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
                     paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
