"""Mask-aware exponential moving average for sparse training."""
from mmengine.model import ExponentialMovingAverage
from torch import Tensor

from mmlk.registry import MODELS

__all__ = ['SparseEMA']


@MODELS.register_module()
class SparseEMA(ExponentialMovingAverage):
    """EMA whose conv/linear weights follow the live model's sparsity pattern.

    The official SLaK EMA (``model_sema.py``): entries pruned in the model are zeroed in the
    average, and entries that become active again are reset to the model's current value
    instead of blending with a stale average. The pattern is read from the model's weights
    (pruned entries are exactly zero after every step under :class:`SparseTrainingHook`), so
    no mask needs to be shared. Use with mmengine's ``EMAHook(ema_type='mmlk.SparseEMA')``.
    """

    def avg_func(self, averaged_param: Tensor, source_param: Tensor, steps: int) -> None:
        if averaged_param.dim() < 2:  # biases, norms, layer scale: dense
            super().avg_func(averaged_param, source_param, steps)
            return
        active = source_param != 0
        regrown = active & (averaged_param == 0)
        averaged_param.lerp_(source_param, self.momentum)
        averaged_param.mul_(active)
        averaged_param[regrown] = source_param[regrown]
