"""Dynamic sparse training, plain PyTorch (no Runner): SLaK's engine, exact, rank-consistent
and checkpointable (:mod:`.engine` has the paper and the differences from the official code).
:class:`mmlk.engine.hooks.SparseTrainingHook` drives it from mmengine; it can be driven and
tested directly."""
from .engine import SparseEngine
from .schedule import allocate_densities, check_sparse_options, cosine_prune_rate
from .targets import SparseTarget, select_sparse_targets

__all__ = [
    'SparseEngine', 'SparseTarget', 'allocate_densities', 'check_sparse_options',
    'cosine_prune_rate', 'select_sparse_targets'
]
