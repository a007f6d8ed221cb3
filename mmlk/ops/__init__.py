"""Building blocks shared by mmlk's backbones (plain PyTorch + mmcv's norm builders): the
depthwise op (a package of backends), the re-parameterisation utility, SLaK's decomposed and
RepLKNet's re-parameterisable large kernels, shift-wise convs, KernelWarehouse convs and
LayerNorm2d."""
from mmlk.core.validation import check_kernel_pair

from .depthwise import DepthwiseConv2d, depthwise_conv2d, depthwise_impl, to_depthwise_layout
from .kernel_warehouse import (KWAttention, KWConv1d, KWConv2d, KWConv3d, KWConvNd, KWLinear,
                               WarehouseManager, cell_assignment, set_kw_temperature)
from .large_kernel import DecomposedLargeKernelConv, ReparamLargeKernelConv
from .norm import LayerNorm2d
from .shift_wise import (ShiftWiseLargeKernelConv, shift_add_strip, strip_to_tiles, tile_starts,
                         tiles_to_strip)
from .reparam import (ConvBN, fold_conv_bn_state, fuse_conv_bn, merge_branches, pad_kernel_to,
                      switch_to_deploy)

__all__ = [
    'ConvBN', 'DecomposedLargeKernelConv', 'DepthwiseConv2d', 'depthwise_conv2d', 'depthwise_impl',
    'LayerNorm2d', 'ReparamLargeKernelConv',
    'check_kernel_pair', 'fold_conv_bn_state', 'fuse_conv_bn', 'merge_branches', 'pad_kernel_to',
    'switch_to_deploy', 'to_depthwise_layout', 'ShiftWiseLargeKernelConv', 'shift_add_strip',
    'strip_to_tiles', 'tile_starts', 'tiles_to_strip', 'KWAttention', 'KWConv1d', 'KWConv2d',
    'KWConv3d', 'KWConvNd', 'KWLinear', 'WarehouseManager', 'cell_assignment',
    'set_kw_temperature'
]
