"""Activation checkpointing (``with_cp``) for every mmlk block: one rule, one place."""
from typing import Callable

import torch.utils.checkpoint as cp
from torch import Tensor

from mmlk.compat import is_capturing

__all__ = ['checkpointed']


def checkpointed(function: Callable[[Tensor], Tensor], x: Tensor, with_cp: bool) -> Tensor:
    """``function(x)``, recomputed in the backward pass when ``with_cp``.

    Recomputation only pays off when a backward pass will come: not in eval without gradients,
    and not while the model is captured into a graph (ONNX export, torch.export: torch 2.1's
    export cannot trace ``checkpoint``), where the official unconditional checkpointing only
    costs time or breaks the export."""
    if with_cp and x.requires_grad and not is_capturing():
        return cp.checkpoint(function, x, use_reentrant=False)
    return function(x)
