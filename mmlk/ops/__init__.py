"""Building blocks shared by mmlk's backbones."""
from .large_kernel import DecomposedLargeKernelConv, check_kernel_pair
from .norm import LayerNorm2d
from .reparam import ConvBN, fuse_conv_bn, merge_branches, pad_kernel_to, switch_to_deploy

__all__ = [
    'ConvBN', 'DecomposedLargeKernelConv', 'LayerNorm2d', 'check_kernel_pair', 'fuse_conv_bn',
    'merge_branches', 'pad_kernel_to', 'switch_to_deploy'
]
