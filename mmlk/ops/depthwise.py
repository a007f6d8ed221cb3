"""One op for the large depthwise kernels of every mmlk family: "same"-padded, stride-1
depthwise convolution with odd (square or rectangular) kernels, whose backward is fast.

Why an op of our own: PyTorch's CPU weight gradient of a depthwise conv (aten
``convolution_backward``) is 5-55x slower than its forward for SLaK's 51x5 / 5x51 and
RepLKNet's 31x31 kernels (200x for 31x31 on 128x128 maps), so training spent most of its time
there. The op's backward computes

    dL/dw[c, i, j] = sum_{n,h,w} x_pad[n, c, h + i, w + j] * g[n, c, h, w]

in float32 with mmlk's compiled CPU kernel (:mod:`mmlk.ops.native`: a register tile of kernel
taps per vector of channels, as fast as oneDNN's forward, 1.7-4x faster than the
formulation below). Other dtypes (float64 gradcheck, bf16), and machines where the kernel
cannot be compiled, use the same sum as one grouped convolution with the operands swapped,

    = conv2d(x_pad[n] as (1, C, Hp, Wp), g[n] as (C, 1, H, W), groups=C)[c, i, j]

over the samples ``n`` and bands of 8 output rows (the band's input stays in cache). The input
gradient of a "same" stride-1 conv with an odd kernel is the forward conv of ``g`` with the
flipped kernel, which runs on the fast forward path. Kernels smaller than 5x5 keep aten's
backward, which is faster there. Per layer: ``benchmarks/bench_depthwise.py``.

:func:`depthwise_conv2d` is the functional form and :class:`DepthwiseConv2d` the module
(an ``nn.Conv2d``, so state dicts, re-parameterisation and the sparse engine see a conv).

``MMLK_DW_IMPL`` selects the implementation, read at every call:

* ``auto`` (default): the backward above on CPU; on CUDA the Triton kernels of
  :mod:`mmlk.ops.triton_depthwise` (forward, input and weight gradient) for kernels of 5x5
  taps and more, aten for smaller ones and where Triton is not importable or fails to compile
  (with one warning);
* ``native``: aten's ``F.conv2d`` everywhere (to compare, or to rule the op out);
* ``triton``: the Triton kernels for every tensor, CPU ones included when Triton's interpreter
  runs them (``TRITON_INTERPRET=1``; slow, for tests).

Autocast follows ``F.conv2d``'s rule (convolutions run in the autocast dtype). Graph capture
(``torch.export``, ``torch.compile``, ``torch.jit.trace``, ONNX export) always sees plain
``F.conv2d``, so deploy forms export as before.
"""
import contextlib
import os
import warnings
from typing import Callable, Iterator, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlk.compat import autocast_dtype, is_autocast_enabled, is_capturing
from . import native

__all__ = ['DepthwiseConv2d', 'depthwise_conv2d', 'depthwise_impl', 'IMPLS', 'is_same_depthwise']

IMPLS = ('auto', 'native', 'triton')
ENV = 'MMLK_DW_IMPL'
# Kernels with fewer taps than this keep aten's backward (faster there: 3x3 on CPU).
MIN_TAPS = 25
# The weight gradient is computed 8 output rows at a time: the rows' input band stays in cache
# (measured 1.5-3x faster than whole maps for 51x5, 5x51 and 31x31 on 128x128 maps).
ROWS_PER_CALL = 8


def current_impl() -> str:
    impl = os.environ.get(ENV, 'auto')
    if impl not in IMPLS:
        raise ValueError(f'{ENV}={impl!r} is not an implementation of mmlk\'s depthwise op; '
                         f'accepted: {", ".join(IMPLS)}')
    return impl


@contextlib.contextmanager
def depthwise_impl(impl: str) -> Iterator[None]:
    """Run a block with ``MMLK_DW_IMPL=impl`` (benchmarks and tests)."""
    if impl not in IMPLS:
        raise ValueError(f'depthwise impl must be one of {IMPLS}, got {impl!r}')
    old = os.environ.get(ENV)
    os.environ[ENV] = impl
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = old


def is_same_depthwise(channels_in: int, channels_out: int, groups: int,
                      kernel_size: Sequence[int], stride, padding, dilation) -> bool:
    """True for the convolutions this op computes: depthwise, stride 1, no dilation, odd
    kernel, "same" padding."""
    kh, kw = kernel_size
    return (groups == channels_in == channels_out and tuple(stride) == (1, 1)
            and tuple(dilation) == (1, 1) and kh % 2 == 1 and kw % 2 == 1
            and tuple(padding) == (kh // 2, kw // 2))


def _grad_weight(x: Tensor, grad: Tensor, kernel_size: Tuple[int, int]) -> Tensor:
    if x.dtype == grad.dtype == torch.float32 and x.device.type == 'cpu':
        result = native.grad_weight(x, grad, kernel_size)
        if result is not None:
            return result
    return _grad_weight_grouped(x, grad, kernel_size)


def _grad_weight_grouped(x: Tensor, grad: Tensor, kernel_size: Tuple[int, int]) -> Tensor:
    kh, kw = kernel_size
    channels, height = x.shape[1], x.shape[2]
    padded = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2))
    total = None
    for n in range(x.shape[0]):
        for top in range(0, height, ROWS_PER_CALL):
            bottom = min(height, top + ROWS_PER_CALL)
            # rows top..bottom of sample n: input (1, C, rows + kh - 1, Wp), "kernel" the
            # gradient rows as (C, 1, rows, W) -> their share of dL/dw, (1, C, kh, kw)
            part = F.conv2d(padded[n:n + 1, :, top:bottom + kh - 1],
                            grad[n, :, top:bottom].unsqueeze(1), groups=channels)
            part = part.float() if part.dtype in (torch.float16, torch.bfloat16) else part
            total = part if total is None else total.add_(part)
    return total.reshape(channels, 1, kh, kw)


class DepthwiseBackend(NamedTuple):
    """How one implementation computes the op: ``forward(x, weight, bias)`` ("same" padding)
    and ``weight_grad(x, grad, kernel_size)`` (float32 or the input dtype)."""
    forward: Callable[[Tensor, Tensor, Optional[Tensor]], Tensor]
    weight_grad: Callable[[Tensor, Tensor, Tuple[int, int]], Tensor]


def _aten_forward(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    kh, kw = weight.shape[-2:]
    return F.conv2d(x, weight, bias, padding=(kh // 2, kw // 2), groups=weight.shape[0])


CPU_BACKEND = DepthwiseBackend(_aten_forward, _grad_weight)


class DepthwiseConvFunction(torch.autograd.Function):
    """The op's autograd, for any :class:`DepthwiseBackend` (CPU: aten's forward and the
    backward of the module docstring; GPU: the Triton kernels)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor],
                backend: DepthwiseBackend) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.backend, ctx.has_bias = backend, bias is not None
        return backend.forward(x, weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            # "same" stride-1 odd kernel: the adjoint is the correlation with the flipped
            # kernel, i.e. the forward on the flipped weights.
            grad_x = ctx.backend.forward(grad, weight.flip(-2, -1), None)
        if ctx.needs_input_grad[1]:
            grad_w = ctx.backend.weight_grad(x, grad, weight.shape[-2:]).to(weight.dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3), dtype=torch.float32).to(grad.dtype)
        return grad_x, grad_w, grad_b, None


def depthwise_conv2d(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
                     padding: Optional[Tuple[int, int]] = None) -> Tensor:
    """``F.conv2d(x, weight, bias, padding=(kh // 2, kw // 2), groups=C)`` for a depthwise
    ``weight`` of shape ``(C, 1, kh, kw)`` with odd ``kh``, ``kw``, computed by the
    implementation ``MMLK_DW_IMPL`` selects (module docstring). The result and its gradients
    equal aten's within floating-point rounding."""
    channels, per_group, kh, kw = weight.shape
    if per_group != 1 or kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f'depthwise_conv2d needs a (C, 1, kh, kw) kernel with odd kh, kw; got '
                         f'{tuple(weight.shape)}')
    same = (kh // 2, kw // 2)
    if padding is not None and tuple(padding) != same:
        raise ValueError(f'depthwise_conv2d computes "same" padding {same} for a {kh}x{kw} '
                         f'kernel, got padding={tuple(padding)}')
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f'depthwise_conv2d: input of shape {tuple(x.shape)} does not have the '
                         f'kernel\'s {channels} channels (N, C, H, W expected)')
    # Capture first: torch 2.1's dynamo (torch.export) cannot trace the os.environ lookup.
    if is_capturing():
        return _aten_forward(x, weight, bias)
    impl = current_impl()
    if impl == 'native':
        return _aten_forward(x, weight, bias)
    # Taps farther from the centre than the map is wide never meet a pixel: their products are
    # all with padding zeros. Crop them (exact, and their gradient is exactly 0, as aten's):
    # e.g. SLaK's 47x5 kernels on 8x8 maps compute as 15x5.
    reach_h, reach_w = min(kh, 2 * x.shape[2] - 1), min(kw, 2 * x.shape[3] - 1)
    if (reach_h, reach_w) != (kh, kw):
        top, left = (kh - reach_h) // 2, (kw - reach_w) // 2
        weight = weight[:, :, top:top + reach_h, left:left + reach_w]
        kh, kw = reach_h, reach_w
    device = x.device.type
    if is_autocast_enabled(device):
        # F.conv2d's autocast rule: run in the autocast dtype (the casts are differentiable).
        dtype = autocast_dtype(device)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
    large = kh * kw >= MIN_TAPS
    with torch.autocast(device, enabled=False):
        if impl == 'triton' or (device == 'cuda' and large and _triton_usable()):
            return _triton(x, weight, bias, forced=impl == 'triton')
        if device != 'cpu' or not large or not torch.is_grad_enabled() or not (
                x.requires_grad or weight.requires_grad
                or (bias is not None and bias.requires_grad)):
            return _aten_forward(x, weight, bias)
        return DepthwiseConvFunction.apply(x, weight, bias, CPU_BACKEND)


_TRITON: Optional[bool] = None  # None: not looked for yet; False: missing or failed once


def _triton(x: Tensor, weight: Tensor, bias: Optional[Tensor], forced: bool) -> Tensor:
    global _TRITON
    from .triton_depthwise import triton_depthwise_conv2d
    try:
        return triton_depthwise_conv2d(x, weight, bias)
    except Exception as err:  # e.g. a GPU Triton cannot compile for
        if forced:
            raise
        warnings.warn(f'mmlk depthwise op: the Triton kernels failed ({type(err).__name__}: '
                      f'{err}); using aten\'s convolution from now on (MMLK_DW_IMPL=native '
                      'silences this)')
        _TRITON = False
        return _aten_forward(x, weight, bias)


def _triton_usable() -> bool:
    global _TRITON
    if _TRITON is None:
        try:
            import triton  # noqa: F401
            _TRITON = True
        except ImportError:
            _TRITON = False
    return _TRITON


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose forward is :func:`depthwise_conv2d` when it is a "same"-padded,
    stride-1 depthwise conv with odd kernel sides (any other configuration runs
    ``nn.Conv2d``'s forward). Same arguments, parameters and state dict as ``nn.Conv2d``."""

    def forward(self, x: Tensor) -> Tensor:
        if self.padding_mode == 'zeros' and is_same_depthwise(
                self.in_channels, self.out_channels, self.groups, self.kernel_size,
                self.stride, self.padding, self.dilation):
            return depthwise_conv2d(x, self.weight, self.bias)
        return super().forward(x)


def same_depthwise(channels: int, kernel_size: Union[int, Sequence[int]],
                   bias: bool) -> DepthwiseConv2d:
    """A "same"-padded depthwise :class:`DepthwiseConv2d`."""
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    return DepthwiseConv2d(channels, channels, (kh, kw), padding=(kh // 2, kw // 2),
                           groups=channels, bias=bias)
