from .checkpoint_safety import AtomicCheckpointHook, StrictLoadHook
from .kw_temperature import KWTemperatureHook, kw_temperature
from .non_finite import NonFiniteGradientError, NonFiniteGuardHook
from .rng_state import RNGStateHook
from .sparse_training import SparseTrainingHook

__all__ = [
    'AtomicCheckpointHook', 'KWTemperatureHook', 'NonFiniteGradientError', 'NonFiniteGuardHook',
    'RNGStateHook', 'SparseTrainingHook', 'StrictLoadHook', 'kw_temperature'
]
