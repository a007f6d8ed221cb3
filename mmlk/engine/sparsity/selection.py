"""Which parameters train sparse."""
import re
from typing import Dict, List, Optional, Sequence, Tuple

from torch import nn

from mmlk.core.validation import as_patterns
from .masks import SparseTarget

__all__ = ['select_sparse_targets']

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
