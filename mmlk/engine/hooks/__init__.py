from .sparse_training import SparseTrainingHook

__all__ = ['SparseTrainingHook']
