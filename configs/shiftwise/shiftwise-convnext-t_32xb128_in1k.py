# Shift-ConvNets (2024, arXiv v1) on ImageNet-1k: SLaK-T's network and recipe with the long
# strips realised shift-wise by 5x5 tiles (mmlk.ShiftWiseConvNeXt; "equ-SLaK" when converted
# from SLaK weights). Sparse groups: one mask bit per 5x5 tile (block (1, 1, 5, 5) of the tile
# conv), 40% as SLaK-T's recipe, magnitude prune + random regrowth; other layers as SLaK-T.
_base_ = ['../slak/slak-t_32xb128_in1k.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmlk.ShiftWiseConvNeXt',
        arch='tiny',
        kernel_size=(51, 49, 47, 13, 5),
        anchor='official',
        width_factor=1.3,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        drop_path_rate=0.1,
        out_indices=(3, ),
        gap_before_final_norm=True))
custom_hooks = [
    dict(type='mmlk.SparseTrainingHook', sparsity=0.4, init='snip', growth='random',
         prune_rate=0.5, update_interval=2000, scope='model',
         block_shapes={r'large_kernel\.tiles\.weight': (1, 1, 5, 5)}),
    dict(type='EMAHook', ema_type='mmlk.SparseEMA', momentum=1e-4, priority='ABOVE_NORMAL'),
]
