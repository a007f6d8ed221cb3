from .base import LargeKernelBackbone
from .convnext_skeleton import ConvNeXtBlock, ConvNeXtSkeleton
from .replknet import RepLKNet
from .shift_wise import ShiftWiseConvNeXt, ShiftWiseNet
from .slak import SLaK

__all__ = ['ConvNeXtBlock', 'ConvNeXtSkeleton', 'LargeKernelBackbone', 'RepLKNet', 'SLaK',
           'ShiftWiseConvNeXt', 'ShiftWiseNet']
