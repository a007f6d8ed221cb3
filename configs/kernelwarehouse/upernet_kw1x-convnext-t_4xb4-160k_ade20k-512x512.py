# KW-ConvNeXt-T 1x + UperNet, ADE20K 160k iterations, 512x512 crops. KernelWarehouse released
# no segmentation config; this is ConvNeXt-T's official UperNet recipe (the SLaK-T one in
# configs/slak/, which is ConvNeXt's: AdamW 1e-4, wd 0.05, stage-wise decay 0.9, warm-up 1500
# then poly, drop path 0.4, 16 images per step) with the KW backbone at tau = 0 and layer scale
# 1.0 as ConvNeXt's UperNet.
_base_ = ['../slak/upernet_slak-t_4xb4-160k_ade20k-512x512.py',
           '../_base_/models/kw_convnext_t_dense.py']
custom_hooks = []  # no sparse weights to keep
model = dict(
    backbone={{_base_.kw_convnext_t_backbone}},
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
