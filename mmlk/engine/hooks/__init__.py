from .checkpoint_safety import AtomicCheckpointHook, StrictLoadHook
from .kw_temperature import KWTemperatureHook, kw_temperature
from .rng_state import RNGStateHook
from .sparse_training import SparseTrainingHook

__all__ = [
    'AtomicCheckpointHook', 'KWTemperatureHook', 'RNGStateHook', 'SparseTrainingHook',
    'StrictLoadHook', 'kw_temperature'
]
