"""The one place a backend is chosen for a call of :func:`depthwise_conv2d`.

``MMLK_DW_IMPL`` (read at every call) names a backend of :data:`BACKENDS` to use for every
call, or ``auto`` (default) for the first backend of the table that supports the call:

==============  ========  =====================  =========  ==================================
backend         devices   dtypes                 min. taps  chosen by ``auto``
==============  ========  =====================  =========  ==================================
``triton``      cuda      float32/16, bfloat16   25         when Triton imports and compiles
``cpu_kernel``  cpu       floating               25         when a gradient is needed
``aten``        any       any                    1          otherwise (``F.conv2d``)
==============  ========  =====================  =========  ==================================

Kernels with fewer taps than 5x5 keep aten's backward, which is faster there. A backend named
explicitly runs every call (``triton`` on CPU tensors needs ``TRITON_INTERPRET=1``: slow, for
tests). Where Triton fails to compile under ``auto`` (a GPU it does not know), one warning is
given and the next backend is used from then on. Graph capture (``torch.export``,
``torch.compile``, ``torch.jit.trace``, ONNX export) always sees plain ``F.conv2d``, so deploy
forms export as before. Autocast follows ``F.conv2d``'s rule (convolutions run in the autocast
dtype).
"""
import contextlib
import os
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, Tuple

import torch
from torch import Tensor

from mmlk.compat import autocast_dtype, is_autocast_enabled, is_capturing

from . import cpu_kernel
from .aten import aten_forward
from .function import DepthwiseConvFunction, DepthwiseKernels

__all__ = ['BACKENDS', 'Backend', 'IMPLS', 'choose_backend', 'depthwise_conv2d',
           'depthwise_impl']

ENV = 'MMLK_DW_IMPL'
ANY = ('*', )
# 0.2's names, refused with the new one (a renamed value must not silently mean another).
RENAMED = {'native': 'aten'}


def _load_triton() -> Optional[DepthwiseKernels]:
    try:
        from .triton_kernels import KERNELS  # imports triton: only where a backend asks
    except ImportError:
        return None
    return KERNELS


@dataclass
class Backend:
    """One way to compute the op and the calls it supports under ``auto``."""
    name: str
    devices: Tuple[str, ...]
    dtypes: Tuple[torch.dtype, ...]
    min_taps: int
    only_for_gradients: bool  # without a gradient to compute, aten's forward is the same op
    load: Optional[Callable[[], Optional[DepthwiseKernels]]]  # None: aten's F.conv2d
    usable: Optional[bool] = None  # None: not loaded yet; False: missing or failed
    _kernels: Optional[DepthwiseKernels] = field(default=None, repr=False)

    def kernels(self) -> Optional[DepthwiseKernels]:
        """The backend's kernels, loaded once (None for aten, or where it is unusable)."""
        if self.usable is None and self.load is not None:
            self._kernels = self.load()
            self.usable = self._kernels is not None
        return self._kernels if self.usable else None

    def supports(self, x: Tensor, taps: int, needs_grad: bool) -> bool:
        return ((self.devices == ANY or x.device.type in self.devices)
                and (self.dtypes == ANY or x.dtype in self.dtypes) and taps >= self.min_taps
                and (needs_grad or not self.only_for_gradients) and self.usable is not False)


_FLOATING = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
BACKENDS: Tuple[Backend, ...] = (
    Backend('triton', ('cuda', ), (torch.float32, torch.float16, torch.bfloat16), 25, False,
            _load_triton),
    Backend('cpu_kernel', ('cpu', ), _FLOATING, 25, True, lambda: cpu_kernel.KERNELS),
    Backend('aten', ANY, ANY, 1, False, None),
)
_BY_NAME = {backend.name: backend for backend in BACKENDS}
IMPLS = ('auto', ) + tuple(_BY_NAME)


def _check_impl(impl: str, source: str) -> str:
    if impl in RENAMED:
        raise ValueError(f'{source}={impl!r} was renamed: use {RENAMED[impl]!r} '
                         f'(accepted: {", ".join(IMPLS)})')
    if impl not in IMPLS:
        raise ValueError(f'{source}={impl!r} is not a backend of mmlk\'s depthwise op; '
                         f'accepted: {", ".join(IMPLS)}')
    return impl


def current_impl() -> str:
    return _check_impl(os.environ.get(ENV, 'auto'), ENV)


@contextlib.contextmanager
def depthwise_impl(impl: str) -> Iterator[None]:
    """Run a block with ``MMLK_DW_IMPL=impl`` (benchmarks and tests)."""
    _check_impl(impl, 'depthwise_impl')
    old = os.environ.get(ENV)
    os.environ[ENV] = impl
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = old


def choose_backend(x: Tensor, taps: int, needs_grad: bool, impl: str = 'auto') -> Backend:
    """The backend ``impl`` names, or under ``auto`` the first of :data:`BACKENDS` that
    supports the call and loads."""
    if impl != 'auto':
        return _BY_NAME[impl]
    for backend in BACKENDS:
        if backend.supports(x, taps, needs_grad) and (backend.load is None
                                                      or backend.kernels() is not None):
            return backend
    raise AssertionError('aten supports every call')  # the table's last entry


def depthwise_conv2d(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
                     padding: Optional[Tuple[int, int]] = None) -> Tensor:
    """``F.conv2d(x, weight, bias, padding=(kh // 2, kw // 2), groups=C)`` for a depthwise
    ``weight`` of shape ``(C, 1, kh, kw)`` with odd ``kh``, ``kw``, computed by the backend
    ``MMLK_DW_IMPL`` selects (module docstring). The result and its gradients equal aten's
    within floating-point rounding."""
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
        return aten_forward(x, weight, bias)
    impl = current_impl()
    if impl == 'aten':
        return aten_forward(x, weight, bias)
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
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad or (
        bias is not None and bias.requires_grad))
    with torch.autocast(device, enabled=False):
        while True:
            backend = choose_backend(x, kh * kw, needs_grad, impl)
            if backend.load is None:
                return aten_forward(x, weight, bias)
            kernels = backend.kernels()
            if kernels is None:
                raise RuntimeError(f'{ENV}={impl}: the {backend.name} backend is not available '
                                   f'here (is its package installed?); accepted: '
                                   f'{", ".join(IMPLS)}')
            try:
                return DepthwiseConvFunction.apply(x, weight, bias, kernels)
            except Exception as err:  # e.g. a GPU Triton cannot compile for
                if impl != 'auto':
                    raise
                backend.usable = False
                warnings.warn(f'mmlk depthwise op: the {backend.name} backend failed '
                              f'({type(err).__name__}: {err}); using the next backend from now '
                              f'on ({ENV}=aten silences this)')
