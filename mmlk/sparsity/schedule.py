"""The sparse-training schedule: options checked up front, initial layer-wise densities
(SNIP's scores, ERK or uniform) and the cosine prune rate (Liu et al., ICLR 2023, after
GraNet/ITOP)."""
import math
from typing import List, Optional, Sequence

import torch
from torch import Tensor

from mmlk.core.validation import check_range

from .targets import SparseTarget

__all__ = ['allocate_densities', 'check_sparse_options', 'cosine_prune_rate']

_GROWTH = ('random', 'gradient')
_INIT = ('snip', 'ERK', 'uniform', 'dense_pattern')


def check_sparse_options(init: str, growth: str, sparsity: float, prune_rate: float,
                         final_prune_rate: float = 0.005,
                         update_interval: Optional[int] = 100,
                         regrow_just_pruned: bool = True, tie_every: int = 1) -> None:
    """Raise a TypeError/ValueError naming the accepted values for any unknown, mistyped or
    out-of-range option (``update_interval`` None or 0: static masks)."""
    if init not in _INIT:
        raise ValueError(f'unknown sparse init {init!r}; choose from {list(_INIT)}')
    if growth not in _GROWTH:
        raise ValueError(f'unknown growth {growth!r}; choose from {list(_GROWTH)}')
    # 0 would be dense training (remove the hook instead)
    check_range(sparsity, 'sparsity', 0, 1, low_open=True, high_open=True)
    check_range(prune_rate, 'prune_rate', 0, 1, high_open=True)
    check_range(final_prune_rate, 'final_prune_rate', 0, 1, high_open=True)
    if update_interval is not None:
        check_range(update_interval, 'update_interval (optimizer steps between updates; 0 or '
                    'None: static masks)', 0, integer=True)
    if not isinstance(regrow_just_pruned, bool):
        raise TypeError('regrow_just_pruned must be True (the official engine: growth may pick '
                        'units pruned in the same update) or False (only units inactive before '
                        f'the update), got {regrow_just_pruned!r}')
    check_range(tie_every, 'tie_every', 1, integer=True)


def cosine_prune_rate(step: int, total_steps: int, initial: float, final: float = 0.005) -> float:
    """The official schedule: cosine from ``initial`` to ``final`` over ``total_steps``."""
    progress = min(max(step, 0), total_steps) / max(total_steps, 1)
    return final + (initial - final) * (1 + math.cos(math.pi * progress)) / 2


def allocate_densities(targets: Sequence[SparseTarget], density: float, mode: str,
                       scores: Optional[Sequence[Tensor]] = None) -> List[float]:
    """Per-layer densities whose unit-weighted mean is ``density``.

    * ``uniform``: every layer gets ``density``.
    * ``ERK``: Erdos-Renyi-Kernel, density proportional to ``sum(shape) / prod(shape)``, with
      layers that would exceed 1 made dense and the rest rescaled (Evci et al. 2020).
    * ``snip``: SNIP scores ``|w * dL/dw|`` (per unit) ranked globally; a layer's density is the
      fraction of its units in the global top ``density`` (Lee et al. 2019, as SLaK uses it).
    """
    if not 0 < density <= 1:
        raise ValueError(f'density must be in (0, 1], got {density}')
    sizes = [t.num_units for t in targets]
    if mode == 'uniform':
        return [density] * len(targets)
    if mode == 'ERK':
        dense = set()
        while True:
            budget = density * sum(sizes) - sum(sizes[i] for i in dense)
            raw = {i: sum(t.unit_shape) / t.num_units
                   for i, t in enumerate(targets) if i not in dense}
            scale = budget / sum(raw[i] * sizes[i] for i in raw)
            over = [i for i in raw if raw[i] * scale > 1]
            if not over:
                return [1.0 if i in dense else raw[i] * scale for i in range(len(targets))]
            dense.update(over)
    if mode == 'snip':
        if scores is None:
            raise ValueError('snip allocation needs scores')
        flat = torch.cat([s.flatten().float() for s in scores])
        keep = int(round(density * flat.numel()))
        if keep == 0:
            return [0.0] * len(targets)
        threshold = torch.topk(flat, keep, sorted=True).values[-1]
        return [float((s.float() >= threshold).float().mean()) for s in scores]
    raise ValueError(f'unknown density allocation {mode!r}; choose from {list(_INIT)}')
