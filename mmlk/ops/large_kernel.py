"""SLaK's decomposed large-kernel depthwise convolution.

Liu et al., "More ConvNets in the 2020s: Scaling up Kernels Beyond 51x51 using Sparsity",
ICLR 2023. An M x M depthwise kernel is replaced by an M x N ("tall") and an N x M ("wide")
depthwise kernel plus an N x N one, each followed by its own BN, summed.
"""
from typing import Optional

import torch
from torch import Tensor, nn

from .reparam import ConvBN, merge_branches

__all__ = ['DecomposedLargeKernelConv', 'check_kernel_pair']


def check_kernel_pair(long_side: int, short_side: int) -> None:
    """Raise a ValueError unless ``long_side > short_side`` are both odd positive ints.

    Odd sizes make "same" padding exact and centred, which the decomposition and its
    re-parameterisation rely on.
    """
    for name, k in (('long kernel side', long_side), ('short kernel side', short_side)):
        if not isinstance(k, int) or k <= 0 or k % 2 == 0:
            raise ValueError(f'{name} must be an odd positive int (e.g. 51, 13, 5), got {k!r}')
    if short_side >= long_side:
        raise ValueError(f'the short kernel side ({short_side}) must be smaller than the long '
                         f'side ({long_side}); SLaK uses e.g. long 51 with short 5')


class DecomposedLargeKernelConv(nn.Module):
    """Depthwise ``M x N`` + ``N x M`` + ``N x N`` conv-BN branches, summed (SLaK, ICLR 2023).

    Child names follow the official ``ReparamLargeKernelConv`` (``LoRA1`` = tall ``M x N``,
    ``LoRA2`` = wide ``N x M``, ``small_conv`` = ``N x N``, each with ``conv``/``bn``), so the
    official checkpoints load without renaming. Padding is "same" per axis, ``(M//2, N//2)`` and
    ``(N//2, M//2)``: the official scalar ``M//2`` only works with its CUDA op, which ignores it.

    ``switch_to_deploy()`` folds every BN into its conv and adds the ``N x N`` kernel into the
    tall kernel (both are ``N`` wide and centred), leaving two biased depthwise convs
    (``tall_conv``, ``wide_conv``) that compute the same function in eval mode.

    Args:
        channels: number of input (= output) channels.
        kernel_size: the long side ``M`` (odd).
        small_kernel: the short side ``N`` (odd, < ``M``).
        norm_cfg: norm after each branch; SyncBN in the official code.
        deploy: build the merged two-branch form directly.
    """

    def __init__(self,
                 channels: int,
                 kernel_size: int,
                 small_kernel: int = 5,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 deploy: bool = False) -> None:
        super().__init__()
        check_kernel_pair(kernel_size, small_kernel)
        self.channels = channels
        self.kernel_size = kernel_size
        self.small_kernel = small_kernel
        self.deploy = deploy
        tall, wide = (kernel_size, small_kernel), (small_kernel, kernel_size)
        if deploy:
            self.tall_conv = _depthwise(channels, tall, bias=True)
            self.wide_conv = _depthwise(channels, wide, bias=True)
        else:
            self.LoRA1 = ConvBN(channels, channels, tall, groups=channels, norm_cfg=norm_cfg)
            self.LoRA2 = ConvBN(channels, channels, wide, groups=channels, norm_cfg=norm_cfg)
            self.small_conv = ConvBN(channels, channels, small_kernel, groups=channels,
                                     norm_cfg=norm_cfg)

    def forward(self, x: Tensor) -> Tensor:
        # oneDNN's depthwise conv is 3-4x faster on channels-last data for these tall/wide
        # kernels on CPU (benchmarks/bench_slak.py); the ConvNeXt block permutes to NHWC right
        # after, for which channels-last is already the right layout. A no-op if it already is.
        x = x.contiguous(memory_format=torch.channels_last)
        if self.deploy:
            return self.tall_conv(x) + self.wide_conv(x)
        return self.LoRA1(x) + self.LoRA2(x) + self.small_conv(x)

    def switch_to_deploy(self) -> None:
        if self.deploy:
            return
        tall = merge_branches([self.LoRA1.fuse(), self.small_conv.fuse()],
                              size=(self.kernel_size, self.small_kernel))
        wide = self.LoRA2.fuse()
        self.tall_conv = _depthwise(self.channels, tall[0].shape[-2:], bias=True)
        self.wide_conv = _depthwise(self.channels, wide[0].shape[-2:], bias=True)
        for conv, (kernel, bias) in ((self.tall_conv, tall), (self.wide_conv, wide)):
            conv.to(kernel.device, kernel.dtype)
            conv.weight.data.copy_(kernel.detach())
            conv.bias.data.copy_(bias.detach())
        del self.LoRA1, self.LoRA2, self.small_conv
        self.deploy = True

    def extra_repr(self) -> str:
        return (f'channels={self.channels}, kernel_size=({self.kernel_size}, {self.small_kernel}), '
                f'deploy={self.deploy}')


def _depthwise(channels: int, kernel_size, bias: bool) -> nn.Conv2d:
    kh, kw = kernel_size
    return nn.Conv2d(channels, channels, (kh, kw), padding=(kh // 2, kw // 2), groups=channels,
                     bias=bias)
