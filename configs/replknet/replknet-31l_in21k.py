# RepLKNet-31L on ImageNet-22K (21841 classes) at 224: the official 22K-pretrained checkpoint
# as it is, head included, for evaluation or as a starting point (paper: 22K pretraining with
# drop path 0.1, 90 epochs, 5 warm-up epochs, batch 4096). The 22K head no longer fails with
# "size mismatch for head.fc.weight": this config has 21841 outputs. For 1K fine-tuning use
# replknet-31l_in21k-pre_32xb64_in1k-384px.py, which loads the backbone only.
_base_ = ['./replknet-31b_32xb64_in1k.py']
model = dict(
    backbone=dict(arch='31L', drop_path_rate=0.1),
    head=dict(num_classes=21841, in_channels=1536))
data_preprocessor = dict(num_classes=21841)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=5),
]
train_cfg = dict(by_epoch=True, max_epochs=90, val_interval=1)
