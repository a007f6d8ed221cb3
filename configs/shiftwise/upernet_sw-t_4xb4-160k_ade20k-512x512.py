# ShiftwiseConv SW-T (CVPR 2025, the released network) + UperNet, ADE20K 160k, 512x512.
# Official downstream/segmentation/configs/upernet_sw_tiny_512_160k_ade20k_ss.py (mmseg 0.x):
# AdamW 1e-4, wd 0.05, layer-wise "decay" rate 1 (none), warm-up 1500 iters + poly, 4 GPUs x 4,
# drop path 0.4, layer scale 1.0, the ImageNet tile-sparsity pattern kept fixed (sparse=True),
# LN on every output. Paper number: see configs/shiftwise/metafile.yml.
_base_ = ['../slak/upernet_slak-t_4xb4-160k_ade20k-512x512.py']
pretrained = 'checkpoints/sw-t_in1k_mmlk.pth'  # tools/model_converters/shiftwise_to_mmlk.py
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmlk.ShiftWiseNet',
        arch='tiny',
        kernel_size=(51, 49, 47, 13, 3),
        ghost_ratio=0.23,
        num_paths=2,
        num_replicas=4,
        norm_cfg=norm_cfg,
        drop_path_rate=0.4,
        layer_scale_init_value=1.0,
        out_indices=(0, 1, 2, 3),
        gap_before_final_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    decode_head=dict(in_channels=[80, 160, 320, 640]),
    auxiliary_head=dict(in_channels=320))
optim_wrapper = dict(paramwise_cfg=dict(_delete_=True, decay_rate=1.0, decay_type='layer_wise',
                                        num_layers=12))
