"""One op for the large depthwise kernels of every mmlk family: "same"-padded, stride-1
depthwise convolution with odd (square or rectangular) kernels, whose backward is fast.

The package is a table of backends and one dispatcher (:mod:`.dispatch`, where the choice is
made and documented): ``aten`` (PyTorch's ``F.conv2d``, the reference), ``cpu_kernel`` (aten's
forward with mmlk's compiled weight gradient, :mod:`.cpu_kernel`) and ``triton`` (GPU kernels,
:mod:`.triton_kernels`); :mod:`.function` is the autograd they share and :mod:`.layer` the
``nn.Conv2d`` form. The dispatcher imports the backends; no backend imports it. Per layer:
``benchmarks/bench_depthwise.py`` (CPU) and ``benchmarks/bench_gpu_depthwise.py``.
"""
from .dispatch import BACKENDS, IMPLS, choose_backend, depthwise_conv2d, depthwise_impl
from .layer import DepthwiseConv2d, is_same_depthwise, same_depthwise, to_depthwise_layout

__all__ = ['BACKENDS', 'DepthwiseConv2d', 'IMPLS', 'choose_backend', 'depthwise_conv2d',
           'depthwise_impl', 'is_same_depthwise', 'same_depthwise', 'to_depthwise_layout']
