from .kw_temperature import KWTemperatureHook, kw_temperature
from .sparse_training import SparseTrainingHook

__all__ = ['KWTemperatureHook', 'SparseTrainingHook', 'kw_temperature']
