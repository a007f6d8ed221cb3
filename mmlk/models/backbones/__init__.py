from .base import LargeKernelBackbone
from .convnext_skeleton import ConvNeXtBlock, ConvNeXtSkeleton
from .kernel_warehouse import KWConvNeXt, KWMobileNetV2, KWResNet
from .replknet import RepLKNet
from .shift_wise import ShiftWiseConvNeXt, ShiftWiseNet
from .slak import SLaK

__all__ = ['ConvNeXtBlock', 'ConvNeXtSkeleton', 'KWConvNeXt', 'KWMobileNetV2', 'KWResNet',
           'LargeKernelBackbone', 'RepLKNet', 'SLaK',
           'ShiftWiseConvNeXt', 'ShiftWiseNet']
