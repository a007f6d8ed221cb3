"""The ``cpu_kernel`` backend: aten's forward (oneDNN's, fast) and a fast weight gradient.

PyTorch's CPU weight gradient of a depthwise conv (aten ``convolution_backward``) is 5-55x
slower than its forward for SLaK's 51x5 / 5x51 and RepLKNet's 31x31 kernels (200x for 31x31
on 128x128 maps), so training spent most of its time there. This backend computes

    dL/dw[c, i, j] = sum_{n,h,w} x_pad[n, c, h + i, w + j] * g[n, c, h, w]

in float32 with mmlk's compiled kernel (``csrc/depthwise_grad_weight.cpp``: a register tile
of kernel taps per vector of channels, as fast as oneDNN's forward). Other dtypes (float64
gradcheck, bf16), and machines where the kernel cannot be compiled, use the same sum as one
grouped convolution with the operands swapped (:func:`grad_weight_grouped`, 1.7-4x slower),

    = conv2d(x_pad[n] as (1, C, Hp, Wp), g[n] as (C, 1, H, W), groups=C)[c, i, j]

over the samples ``n`` and bands of 8 output rows (the band's input stays in cache).

The kernel is built on first use with the machine's C++ compiler and called through
``ctypes`` (which releases the GIL).

Why not a torch C++ extension: the kernel needs nothing from torch but data pointers and
strides, so it compiles in about a second with no torch headers, for the CPU it runs on
(``-march=native``), and needs no build step at install time. The shared library is cached
under ``$MMLK_CACHE_DIR`` (default ``~/.cache/mmlk``)``/kernels``, keyed by the source, the
compiler, its flags and the CPU's instruction sets, so a cluster's nodes of different CPU
types sharing a home directory each get their own build; it is written to a temporary name
and renamed, so concurrent ranks or test workers never load a half-written file.
Nothing in a build depends on the torch stack: no torch header is used, and the library links
OpenMP as ``libgomp.so.1`` by soname, which the loader resolves to the runtime torch already
loaded (torch 2.14's ``torch/lib/libgomp.so.1``, or torch 2.1's bundled
``libgomp-<hash>.so.1``, whose soname is the same), so one cached build serves both supported
stacks and the process keeps one OpenMP team (tests/test_depthwise_op.py checks both).

Where no compiler is found or the build fails, :func:`load` warns once and returns ``None``:
the op then computes the gradient with its grouped-convolution formulation (same numbers,
slower).
"""
import ctypes
import hashlib
import os
import os.path as osp
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .aten import aten_forward
from .function import DepthwiseKernels

__all__ = ['KERNELS', 'grad_weight', 'grad_weight_grouped', 'load']

SOURCE = osp.join(osp.dirname(osp.abspath(__file__)), 'csrc', 'depthwise_grad_weight.cpp')
FLAGS = ('-O3', '-std=c++17', '-shared', '-fPIC')
# Tried in order: the CPU's own vector units (-march=native) and torch's OpenMP team
# (-fopenmp: libgomp.so.1, already loaded by torch, is the library the kernel links; see the
# source); then without either, for compilers that lack them (one thread, baseline ISA).
_VARIANTS = (('-march=native', '-fopenmp'), ('-fopenmp', ), ('-march=native', ), ())

_lock = threading.Lock()
_library: Optional[ctypes.CDLL] = None
_failed = False


def cache_dir() -> str:
    root = os.environ.get('MMLK_CACHE_DIR') or osp.join(osp.expanduser('~'), '.cache', 'mmlk')
    return osp.join(root, 'kernels')


def _cpu_signature() -> str:
    """The CPU's model and instruction-set flags (what ``-march=native`` compiles for)."""
    try:
        with open('/proc/cpuinfo') as f:
            lines = [line for line in f if line.startswith(('flags', 'model name', 'Features'))]
        return ''.join(sorted(set(lines)))
    except OSError:
        return platform.processor()


def _compiler() -> Optional[str]:
    for name in (os.environ.get('CXX'), 'c++', 'g++', 'clang++'):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _build(compiler: str) -> str:
    with open(SOURCE, 'rb') as f:
        source = f.read()
    version = subprocess.run([compiler, '--version'], capture_output=True, text=True).stdout
    machine = (_cpu_signature() + platform.machine()).encode()
    errors = []
    for variant in _VARIANTS:
        flags = FLAGS + variant
        key = hashlib.sha256(b'\0'.join([
            source, version.encode(), ' '.join(flags).encode(), machine])).hexdigest()[:16]
        target = osp.join(cache_dir(), f'depthwise_grad_weight-{key}.so')
        if osp.exists(target):
            return target
        os.makedirs(cache_dir(), exist_ok=True)
        fd, partial = tempfile.mkstemp(suffix='.so', dir=cache_dir())
        os.close(fd)
        result = subprocess.run([compiler, *flags, '-o', partial, SOURCE], capture_output=True,
                                text=True)
        if result.returncode == 0:
            os.replace(partial, target)  # atomic: other processes see all of it or nothing
            return target
        os.unlink(partial)
        errors.append(f'{" ".join(flags)}: {result.stderr.strip()[-500:]}')
    raise RuntimeError('; '.join(errors))


def load() -> Optional[ctypes.CDLL]:
    """The compiled kernel library, built on first call; ``None`` if it cannot be built."""
    global _library, _failed
    if _library is not None or _failed:
        return _library
    with _lock:
        if _library is None and not _failed:
            compiler = _compiler()
            try:
                if compiler is None:
                    raise RuntimeError('no C++ compiler (c++, g++, clang++ or $CXX) on PATH')
                library = ctypes.CDLL(_build(compiler))
                library.mmlk_dw_grad_weight.restype = ctypes.c_int
                library.mmlk_dw_grad_weight.argtypes = [
                    ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64), ctypes.c_void_p,
                    ctypes.POINTER(ctypes.c_int64)] + [ctypes.c_int64] * 7 + [ctypes.c_void_p]
                _library = library
            except (OSError, RuntimeError, subprocess.SubprocessError) as err:
                _failed = True
                warnings.warn(f'mmlk depthwise op: the CPU weight-gradient kernel could not be '
                              f'built ({err}); using the grouped-convolution formulation '
                              '(same gradients, slower)')
    return _library


def grad_weight(x: Tensor, grad: Tensor, kernel_size: Tuple[int, int]) -> Optional[Tensor]:
    """``dL/dw`` of the "same"-padded stride-1 depthwise conv of float32 CPU tensors ``x`` and
    ``grad`` (N, C, H, W; any strides, fastest channels-last), as (C, 1, kh, kw) float32; or
    ``None`` when the kernel is unavailable."""
    library = load()
    if library is None:
        return None
    kh, kw = kernel_size
    n, channels, height, width = x.shape
    out = torch.empty(channels, 1, kh, kw)
    code = library.mmlk_dw_grad_weight(
        x.data_ptr(), (ctypes.c_int64 * 4)(*x.stride()), grad.data_ptr(),
        (ctypes.c_int64 * 4)(*grad.stride()), n, channels, height, width, kh, kw,
        torch.get_num_threads(), out.data_ptr())
    if code:
        raise RuntimeError(f'mmlk depthwise weight-gradient kernel failed (code {code}) for '
                           f'x {tuple(x.shape)}, kernel {kh}x{kw}')
    return out


# The weight gradient is computed 8 output rows at a time: the rows' input band stays in cache
# (measured 1.5-3x faster than whole maps for 51x5, 5x51 and 31x31 on 128x128 maps).
ROWS_PER_CALL = 8


def grad_weight_grouped(x: Tensor, grad: Tensor, kernel_size: Tuple[int, int]) -> Tensor:
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


def _weight_grad(x: Tensor, grad: Tensor, kernel_size: Tuple[int, int]) -> Tensor:
    if x.dtype == grad.dtype == torch.float32 and x.device.type == 'cpu':
        result = grad_weight(x, grad, kernel_size)
        if result is not None:
            return result
    return grad_weight_grouped(x, grad, kernel_size)


KERNELS = DepthwiseKernels(aten_forward, _weight_grad)
