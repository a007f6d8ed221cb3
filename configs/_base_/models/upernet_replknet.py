# UperNet with a RepLKNet-31B backbone (mmseg 1.x). Heads as the official RepLKNet_upernet.py:
# UPerHead on all four stages (512 channels), FCN auxiliary head on stage 2 (256 channels,
# loss weight 0.4), SyncBN, whole-image test.
_base_ = ['mmseg::_base_/models/upernet_r50.py']
custom_imports = dict(imports=['mmlk'], allow_failed_imports=False)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    pretrained=None,  # mmseg's EncoderDecoder would inject a ResNet URL into the backbone
    backbone=dict(
        _delete_=True,
        type='mmlk.RepLKNet',
        arch='31B',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.5,
        norm_intermediate_features=False,  # True only for XL, as the official configs
        norm_cfg=norm_cfg,
        with_cp=True),  # the official use_checkpoint=True; only active when training
    decode_head=dict(in_channels=[128, 256, 512, 1024], num_classes=150, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=512, num_classes=150, norm_cfg=norm_cfg))
