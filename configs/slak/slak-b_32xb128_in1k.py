# SLaK-B on ImageNet-1k, 300 epochs (paper: 84.0 top-1). Official: drop path 0.5, widths
# [166, 332, 665, 1331], sparse updates every 100 optimizer steps with prune rate 0.3.
_base_ = ['./slak-s_32xb128_in1k.py']
model = dict(backbone=dict(arch='base', drop_path_rate=0.5), head=dict(in_channels=1331))
