from .convnext_skeleton import ConvNeXtBlock, ConvNeXtSkeleton
from .slak import SLaK

__all__ = ['ConvNeXtBlock', 'ConvNeXtSkeleton', 'SLaK']
