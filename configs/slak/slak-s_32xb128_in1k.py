# SLaK-S on ImageNet-1k, 300 epochs (paper: 83.8 top-1). Official: drop path 0.4, sparse
# updates every 100 optimizer steps with prune rate 0.3.
_base_ = ['./slak-t_32xb128_in1k.py']
model = dict(backbone=dict(arch='small', drop_path_rate=0.4))
custom_hooks = [
    dict(type='mmlk.SparseTrainingHook', sparsity=0.4, init='snip', growth='random',
         prune_rate=0.3, update_interval=100, scope='model'),
    dict(type='EMAHook', ema_type='mmlk.SparseEMA', momentum=1e-4, priority='ABOVE_NORMAL'),
]
