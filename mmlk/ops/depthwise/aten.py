"""The ``aten`` backend: PyTorch's own ``F.conv2d`` and its autograd (any device, any dtype).
The reference every other backend is tested against, and the last entry of the table."""
from typing import Optional

import torch.nn.functional as F
from torch import Tensor

__all__ = ['aten_forward']


def aten_forward(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """``F.conv2d`` with "same" padding and one group per channel."""
    kh, kw = weight.shape[-2:]
    return F.conv2d(x, weight, bias, padding=(kh // 2, kw // 2), groups=weight.shape[0])
