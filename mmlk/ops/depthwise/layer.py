"""The op as an ``nn.Conv2d``, so that state dicts, re-parameterisation and the sparse engine
see a plain conv."""
from typing import Sequence, Union

import torch
from torch import Tensor, nn

from mmlk.core.validation import check_odd_kernel

from .dispatch import depthwise_conv2d

__all__ = ['DepthwiseConv2d', 'is_same_depthwise', 'same_depthwise', 'to_depthwise_layout']


def is_same_depthwise(channels_in: int, channels_out: int, groups: int,
                      kernel_size: Sequence[int], stride, padding, dilation) -> bool:
    """True for the convolutions the op computes: depthwise, stride 1, no dilation, odd
    kernel, "same" padding."""
    kh, kw = kernel_size
    return (groups == channels_in == channels_out and tuple(stride) == (1, 1)
            and tuple(dilation) == (1, 1) and kh % 2 == 1 and kw % 2 == 1
            and tuple(padding) == (kh // 2, kw // 2))


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
    """A "same"-padded depthwise :class:`DepthwiseConv2d` (odd kernel sides)."""
    kh, kw = check_odd_kernel(kernel_size, 'kernel_size')
    return DepthwiseConv2d(channels, channels, (kh, kw), padding=(kh // 2, kw // 2),
                           groups=channels, bias=bias)


def to_depthwise_layout(x: Tensor) -> Tensor:
    """Return ``x`` channels-last (a no-op when it already is).

    oneDNN's CPU depthwise convolution is 3-4x faster on channels-last data for SLaK's M x 5 /
    5 x M kernels and 7-10x for RepLKNet's 13x13...31x31 ones (benchmarks/bench_slak.py,
    benchmarks/bench_replknet.py). The following 1x1 convs, BNs and ConvNeXt's NHWC linears
    keep or want that layout, so a backbone pays the copy once, at its first large kernel.
    """
    return x.contiguous(memory_format=torch.channels_last)
