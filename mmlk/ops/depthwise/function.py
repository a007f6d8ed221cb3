"""The op's autograd, written once for every backend that brings its own kernels."""
from typing import Callable, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

__all__ = ['DepthwiseConvFunction', 'DepthwiseKernels']


class DepthwiseKernels(NamedTuple):
    """How a backend computes the op: ``forward(x, weight, bias)`` ("same" padding, stride 1,
    odd kernel) and ``weight_grad(x, grad, kernel_size)`` (float32 or the input dtype)."""
    forward: Callable[[Tensor, Tensor, Optional[Tensor]], Tensor]
    weight_grad: Callable[[Tensor, Tensor, Tuple[int, int]], Tensor]


class DepthwiseConvFunction(torch.autograd.Function):
    """Forward and backward of the op through a backend's :class:`DepthwiseKernels`.

    The input gradient of a "same"-padded stride-1 convolution with an odd kernel is the
    correlation with the flipped kernel, i.e. the backend's forward on the flipped weights, so
    a backend provides two kernels, not three."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor],
                kernels: DepthwiseKernels) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.kernels, ctx.has_bias = kernels, bias is not None
        return kernels.forward(x, weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = ctx.kernels.forward(grad, weight.flip(-2, -1), None)
        if ctx.needs_input_grad[1]:
            grad_w = ctx.kernels.weight_grad(x, grad, weight.shape[-2:]).to(weight.dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3), dtype=torch.float32).to(grad.dtype)
        return grad_x, grad_w, grad_b, None
