"""Shift-wise ConvNeXt: the 2024 Shift-ConvNets design (Li et al., "Shift-ConvNets: Small
Convolutional Kernel with Large Kernel Effects", arXiv 2401.12736 v1)."""
from typing import Optional

from torch import nn

from mmlk.ops import ShiftWiseLargeKernelConv
from mmlk.registry import MODELS
from .slak import SLaK

__all__ = ['ShiftWiseConvNeXt']


@MODELS.register_module()
class ShiftWiseConvNeXt(SLaK):
    """SLaK's network (the shared ConvNeXt skeleton, widths x1.3, kernels 51/49/47/13) whose
    long strips are realised shift-wise: ``ceil(M / k)`` k x k tiles in one grouped conv, shifted
    and added (:class:`~mmlk.ops.ShiftWiseLargeKernelConv`).

    With the official anchor and ``k = 5`` this is "equ-SLaK": :meth:`from_slak` converts a
    trained SLaK into this network with identical outputs. Arguments are SLaK's
    (``arch`` tiny = SW-T [3, 3, 9, 3], small/base [3, 3, 27, 3]; ``kernel_size`` =
    ``(M0, M1, M2, M3, k)``) plus ``anchor`` (``'official'`` or ``'centred'`` footprint).
    """

    def __init__(self, *args, anchor: str = 'official', **kwargs) -> None:
        self.anchor = anchor
        super().__init__(*args, **kwargs)

    def build_large_kernel(self, channels: int, long_side: int, short_side: int,
                           norm_cfg: Optional[dict], deploy: bool) -> nn.Module:
        return ShiftWiseLargeKernelConv(channels, long_side, short_side, anchor=self.anchor,
                                        norm_cfg=norm_cfg, deploy=deploy)

    @classmethod
    def from_slak(cls, slak: SLaK) -> 'ShiftWiseConvNeXt':
        """The equ-SLaK network: every decomposed kernel converted exactly, everything else
        copied. ``slak`` must be in training form."""
        import copy
        from mmlk.ops import DecomposedLargeKernelConv
        converted = copy.deepcopy(slak)
        converted.__class__ = cls
        converted.anchor = 'official'
        for stage in converted.stages:
            for block in stage:
                if not isinstance(block.large_kernel, DecomposedLargeKernelConv):
                    raise TypeError(f'expected SLaK kernels, got {type(block.large_kernel)}')
                block.large_kernel = ShiftWiseLargeKernelConv.from_decomposed(block.large_kernel)
        return converted
