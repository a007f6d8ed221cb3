# UperNet with a SLaK-T backbone (mmseg 1.x). Heads as the official SLaK segmentation code:
# UPerHead on all four stages, FCN auxiliary head on stage 2, SyncBN.
_base_ = ['mmseg::_base_/models/upernet_r50.py']
custom_imports = dict(imports=['mmlk'], allow_failed_imports=False)
# The official downstream runs keep the zero pattern of the sparse ImageNet weights fixed
# (SLaK's sparse=True); with dense or no pretrained weights this hook logs it and trains dense.
custom_hooks = [dict(type='mmlk.SparseTrainingHook', frozen=True)]
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    pretrained=None,  # mmseg's EncoderDecoder would inject a ResNet URL into the backbone
    backbone=dict(
        _delete_=True,
        type='mmlk.SLaK',
        arch='tiny',
        kernel_size=(51, 49, 47, 13, 5),
        width_factor=1.3,
        norm_cfg=norm_cfg,
        drop_path_rate=0.4,
        layer_scale_init_value=1e-6,
        out_indices=(0, 1, 2, 3),
        gap_before_final_norm=False),
    decode_head=dict(in_channels=[124, 249, 499, 998], num_classes=150, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=499, num_classes=150, norm_cfg=norm_cfg))
