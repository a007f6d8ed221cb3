"""What trains sparse: a parameter with its mask and mask granularity (:class:`SparseTarget`),
and which parameters of a model are chosen (:func:`select_sparse_targets`)."""
import math
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from mmlk.core.validation import as_patterns

__all__ = ['SparseTarget', 'select_sparse_targets']

@dataclass
class SparseTarget:
    """One sparse parameter: its name, the tensor, and the mask granularity."""
    name: str
    param: nn.Parameter
    block_shape: Tuple[int, ...]
    mask: Tensor = field(default=None, repr=False)   # bool, shape = unit_shape

    def __post_init__(self) -> None:
        shape = tuple(self.param.shape)
        if len(self.block_shape) != len(shape):
            raise ValueError(f'{self.name}: block_shape {self.block_shape} does not match the '
                             f'parameter rank {len(shape)} (shape {shape})')
        bad = [(s, b) for s, b in zip(shape, self.block_shape) if b < 1 or s % b]
        if bad:
            raise ValueError(f'{self.name}: block_shape {self.block_shape} must divide the '
                             f'parameter shape {shape}')
        if self.mask is None:
            self.mask = torch.ones(self.unit_shape, dtype=torch.bool, device=self.param.device)

    @property
    def unit_shape(self) -> Tuple[int, ...]:
        return tuple(s // b for s, b in zip(self.param.shape, self.block_shape))

    @property
    def num_units(self) -> int:
        return math.prod(self.unit_shape)

    @property
    def is_elementwise(self) -> bool:
        return all(b == 1 for b in self.block_shape)

    def expand(self, unit_tensor: Tensor) -> Tensor:
        """A unit-shaped tensor broadcast to the parameter's shape."""
        if self.is_elementwise:
            return unit_tensor
        out = unit_tensor
        for dim, size in enumerate(self.block_shape):
            if size > 1:
                out = out.repeat_interleave(size, dim=dim)
        return out

    def reduce(self, tensor: Tensor) -> Tensor:
        """Sum of ``|tensor|`` over each block: the unit-level magnitude score."""
        if self.is_elementwise:
            return tensor.abs()
        view = []
        for units, size in zip(self.unit_shape, self.block_shape):
            view += [units, size]
        return tensor.abs().reshape(view).sum(dim=tuple(range(1, 2 * len(self.block_shape), 2)))

    def dense_mask(self, dtype: torch.dtype) -> Tensor:
        return self.expand(self.mask).to(dtype)


_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def select_sparse_targets(model: nn.Module,
                          scope: str = 'backbone',
                          only_large_kernels: bool = False,
                          include: Optional[Sequence[str]] = None,
                          exclude: Optional[Sequence[str]] = None,
                          block_shapes: Optional[Dict[str, Sequence[int]]] = None
                          ) -> List[SparseTarget]:
    """The weights of every conv and linear layer under ``scope``, filtered.

    Args:
        model: the (unwrapped) model; names are relative to it (``backbone.stages...``).
        scope: ``'backbone'`` (the default: SLaK's sparse layers are the backbone's) or
            ``'model'`` (every layer, head included, as the official ImageNet engine does).
        only_large_kernels: keep only the large-kernel branches (official ``--only-L``: names
            containing ``large_kernel.LoRA``).
        include / exclude: a regular expression or a list of them, searched in the parameter
            name; a parameter is kept if it matches any ``include`` (when given) and no
            ``exclude``. An empty selection is an error naming the patterns and some names.
        block_shapes: ``{regex: block_shape}``; the first matching pattern gives the mask
            granularity of a parameter (structured sparsity); others are element-wise.
    """
    include = as_patterns(include, 'include')
    exclude = as_patterns(exclude, 'exclude')
    if scope not in ('backbone', 'model'):
        raise ValueError(f"scope must be 'backbone' or 'model', got {scope!r}")
    prefix = 'backbone.' if scope == 'backbone' else ''
    if scope == 'backbone' and not hasattr(model, 'backbone'):
        raise ValueError(f'{type(model).__name__} has no .backbone; use scope="model"')
    block_shapes = {re.compile(k): tuple(v) for k, v in (block_shapes or {}).items()}
    targets = []
    for module_name, module in model.named_modules():
        if not isinstance(module, _WEIGHTED) or not module.weight.requires_grad:
            continue
        name = f'{module_name}.weight'
        if not name.startswith(prefix):
            continue
        if only_large_kernels and 'large_kernel.LoRA' not in name:
            continue
        if include and not any(re.search(p, name) for p in include):
            continue
        if exclude and any(re.search(p, name) for p in exclude):
            continue
        block: Tuple[int, ...] = (1, ) * module.weight.dim()
        for pattern, shape in block_shapes.items():
            if pattern.search(name):
                block = shape
                break
        targets.append(SparseTarget(name, module.weight, block))
    if not targets:
        candidates = [f'{n}.weight' for n, m in model.named_modules()
                      if isinstance(m, _WEIGHTED) and f'{n}.weight'.startswith(prefix)]
        raise ValueError(
            f'no parameter matched the sparse-training selection (scope={scope!r}, '
            f'only_large_kernels={only_large_kernels}, include={include}, exclude={exclude}); '
            f'{len(candidates)} conv/linear weights are in scope'
            + (f', e.g. {", ".join(candidates[:4])}' if candidates else '')
            + '. include/exclude are regular expressions searched in these names.')
    return targets
