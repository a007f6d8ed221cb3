# KW-MobileNetV2 1.0x with KW 1/2x on ImageNet-1k, 150 epochs (paper: 72.59 top-1, 2.65M
# parameters): the 1x recipe with the hard-coded 1/2x model (plain point-wise convs in stages
# 1-5) and its KW classifier, dropout 0 (main.py's --dropout; the model file's 0.1 is
# overridden), no label smoothing ("smoothing": 0).
_base_ = ['./kw1x-mobilenetv2-100_8xb32_in1k.py']
custom_imports = dict(imports=['mmlk', 'mmlk.models.heads'], allow_failed_imports=False)
model = dict(
    backbone=dict(budget='1/2x'),
    head=dict(_delete_=True, type='mmlk.KWLinearClsHead', num_classes=1000, in_channels=1280,
              dropout=0.0, loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, 5)))
