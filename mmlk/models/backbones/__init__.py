from .base import LargeKernelBackbone
from .convnext_skeleton import ConvNeXtBlock, ConvNeXtSkeleton
from .kw_convnext import KWConvNeXt
from .kw_mobilenet_v2 import KWMobileNetV2
from .kw_resnet import KWResNet
from .replknet import RepLKNet
from .shift_wise import ShiftWiseConvNeXt, ShiftWiseNet
from .slak import SLaK

__all__ = ['ConvNeXtBlock', 'ConvNeXtSkeleton', 'KWConvNeXt', 'KWMobileNetV2', 'KWResNet',
           'LargeKernelBackbone', 'RepLKNet', 'SLaK',
           'ShiftWiseConvNeXt', 'ShiftWiseNet']
