# KW-ConvNeXt-T 1x as a dense-prediction backbone (shared by the KernelWarehouse COCO and ADE20K
# configs): four outputs with LayerNorms, drop path 0.4 and layer scale 1.0 as ConvNeXt's
# official downstream configs (the scale is overwritten by the checkpoint), tau = 0.
kw_convnext_t_backbone = dict(
    _delete_=True,
    type='mmlk.KWConvNeXt',
    arch='tiny',
    budget='1x',
    drop_path_rate=0.4,
    layer_scale_init_value=1.0,
    out_indices=(0, 1, 2, 3),
    gap_before_final_norm=False,
    temperature=0.0,
    init_cfg=dict(type='Pretrained', checkpoint='checkpoints/kw1x-convnext-t_in1k_mmlk.pth',
                  prefix='backbone.'))
