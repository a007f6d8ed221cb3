# KW-ResNet18 1x on ImageNet-1k, 300 epochs (paper: 74.77 top-1, 11.93M parameters): the
# KW-ResNet50 recipe (the official runs share main.py's defaults) with ResNet18 widths.
# Other budgets: budget='1/4x' / '1/2x' (drop path 0 upstream) / '2x' / '4x'.
_base_ = ['./kw1x-resnet50_32xb128_in1k.py']
model = dict(backbone=dict(depth=18), head=dict(in_channels=512))
