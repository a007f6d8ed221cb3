# KW-ResNet50 1x as a detection backbone (shared by the KernelWarehouse detection configs):
# ResNet's fine-tuning conventions (frozen stem + stage 0, frozen BN statistics, the attention
# BatchNorm1d included) and tau = 0, as the official mmdet backbones. freeze_warehouses=False is
# the official freezing rule: the warehouses (the manager's, outside layer1) keep training.
kw_resnet50_backbone = dict(
    _delete_=True,
    type='mmlk.KWResNet',
    depth=50,
    budget='1x',
    drop_path_rate=0.1,
    out_indices=(0, 1, 2, 3),
    frozen_stages=1,
    freeze_warehouses=False,
    norm_eval=True,
    norm_cfg=dict(type='BN', requires_grad=True),
    temperature=0.0,
    init_cfg=dict(type='Pretrained', checkpoint='checkpoints/kw1x-resnet50_in1k_mmlk.pth',
                  prefix='backbone.'))
