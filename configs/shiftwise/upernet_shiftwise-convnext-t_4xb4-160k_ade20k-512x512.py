# Shift-ConvNets (2024) + UperNet, ADE20K 160k, 512x512: SLaK-T's UperNet recipe with the
# shift-wise backbone (load the converted SLaK-T weights for the equ-SLaK setting: see
# docs/shiftwise.md). The ImageNet tile-sparsity pattern is kept fixed.
_base_ = ['../slak/upernet_slak-t_4xb4-160k_ade20k-512x512.py']
model = dict(backbone=dict(type='mmlk.ShiftWiseConvNeXt', anchor='official',
                           init_cfg=dict(checkpoint='checkpoints/shiftwise-convnext-t_in1k.pth')))
