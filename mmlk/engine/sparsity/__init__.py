from .ema import SparseEMA
from .masks import (SparseEngine, SparseTarget, allocate_densities, check_sparse_options,
                    cosine_prune_rate)
from .selection import select_sparse_targets

__all__ = [
    'SparseEMA', 'SparseEngine', 'SparseTarget', 'allocate_densities', 'check_sparse_options',
    'cosine_prune_rate',
    'select_sparse_targets'
]
