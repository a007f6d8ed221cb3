"""Shift-wise backbones (Li et al.): the 2024 "Shift-ConvNets" design on SLaK's network
(:class:`ShiftWiseConvNeXt`) and the released CVPR 2025 "ShiftwiseConv" SW-T
(:class:`ShiftWiseNet`). Both use the shared ConvNeXt skeleton's stage layout and API."""
import copy
from typing import Optional, Sequence, Union

import torch
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmlk.ops import DecomposedLargeKernelConv, LayerNorm2d, ShiftWiseLargeKernelConv
from mmlk.ops.shift_wise import ShiftWiseConv
from mmlk.registry import MODELS

from ..utils import GRN, SEBlock, checkpointed
from .convnext_skeleton import ConvNeXtSkeleton, resolve_arch, split_kernel_sizes
from .slak import SLaK

__all__ = ['ShiftWiseConvNeXt', 'ShiftWiseNet', 'ShiftWiseBlock']


@MODELS.register_module()
class ShiftWiseConvNeXt(SLaK):
    """SLaK's network (the shared ConvNeXt skeleton, widths x1.3, kernels 51/49/47/13) whose
    long strips are realised shift-wise: ``ceil(M / k)`` k x k tiles in one grouped conv, shifted
    and added (:class:`~mmlk.ops.ShiftWiseLargeKernelConv`).

    With the official anchor and ``k = 5`` this is "equ-SLaK": :meth:`from_slak` converts a
    trained SLaK into this network with identical outputs. Arguments are SLaK's
    (``arch`` tiny = SW-T [3, 3, 9, 3], small/base [3, 3, 27, 3]; ``kernel_size`` =
    ``(M0, M1, M2, M3, k)``) plus ``anchor`` (``'official'`` or ``'centred'`` footprint) and
    ``impl`` (``'dense'`` or ``'shift_add'`` execution of the tiles, same sums; see
    :class:`~mmlk.ops.ShiftWiseLargeKernelConv`).
    """

    converter = 'tools/model_converters/slak_to_mmlk.py --to shiftwise-convnext'

    def __init__(self, *args, anchor: str = 'official', impl: str = 'dense', **kwargs) -> None:
        self.anchor, self.impl = anchor, impl
        super().__init__(*args, **kwargs)

    def build_large_kernel(self, channels: int, long_side: int, short_side: int,
                           norm_cfg: Optional[dict], deploy: bool) -> nn.Module:
        return ShiftWiseLargeKernelConv(channels, long_side, short_side, anchor=self.anchor,
                                        norm_cfg=norm_cfg, deploy=deploy, impl=self.impl)

    @classmethod
    def from_slak(cls, slak: SLaK) -> 'ShiftWiseConvNeXt':
        """The equ-SLaK network: every decomposed kernel converted exactly, everything else
        copied. ``slak`` must be in training form."""
        converted = copy.deepcopy(slak)
        converted.__class__ = cls
        converted.anchor, converted.impl = 'official', 'dense'
        for stage in converted.stages:
            for block in stage:
                if not isinstance(block.large_kernel, DecomposedLargeKernelConv):
                    raise TypeError(f'expected SLaK kernels, got {type(block.large_kernel)}')
                block.large_kernel = ShiftWiseLargeKernelConv.from_decomposed(block.large_kernel)
        return converted


class _ToChannelsLast(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.permute(0, 2, 3, 1)


class _ToChannelsFirst(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.permute(0, 3, 1, 2)


class ShiftWiseBlock(BaseModule):
    """The CVPR 2025 SW block: ``x + drop_path(gamma * BN(Linear(GRN(GELU(Linear(SE(BN(
    SW(x)))))))))`` with the released code's module names (``large_kernel``, ``norm``, ``se``,
    ``pwconv1.1``, ``act.1``, ``pwconv2.0``/``pwconv2.2``, ``gamma``)."""

    def __init__(self,
                 channels: int,
                 mixer: nn.Module,
                 mlp_ratio: float = 4.,
                 drop_path: float = 0.,
                 layer_scale_init_value: float = 1e-6,
                 with_cp: bool = False,
                 norm_cfg: dict = dict(type='BN')) -> None:
        super().__init__()
        hidden = int(mlp_ratio * channels)
        self.large_kernel = mixer
        self.norm = build_norm_layer(norm_cfg, channels)[1]
        self.se = SEBlock(channels, channels // 4)
        self.pwconv1 = nn.Sequential(_ToChannelsLast(), nn.Linear(channels, hidden))
        self.act = nn.Sequential(nn.GELU(), GRN(hidden))
        self.pwconv2 = nn.Sequential(nn.Linear(hidden, channels, bias=False), _ToChannelsFirst(),
                                     build_norm_layer(norm_cfg, channels)[1])
        self.gamma = nn.Parameter(torch.full((channels, ), float(layer_scale_init_value)))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.with_cp = with_cp

    def _residual(self, x: Tensor) -> Tensor:
        y = self.se(self.norm(self.large_kernel(x)))
        y = self.pwconv2(self.act(self.pwconv1(y)))
        return self.drop_path(self.gamma.view(1, -1, 1, 1) * y)

    def forward(self, x: Tensor) -> Tensor:
        return x + checkpointed(self._residual, x, self.with_cp)


@MODELS.register_module()
class ShiftWiseNet(ConvNeXtSkeleton):
    """The released CVPR 2025 ShiftwiseConv network (SW-T): UniRepLKNet's macro design with
    the shift-wise operator (:class:`~mmlk.ops.shift_wise.ShiftWiseConv`).

    Stem: 3x3 s2 conv (to C/2) - LN - GELU - 3x3 s2 conv - LN; downsampling: 3x3 s2 conv - LN;
    blocks: :class:`ShiftWiseBlock`. Module names equal the released ``ShiftWise_v2`` so its
    checkpoint (``{'model': ...}``) loads by key; the ghost split and replica tables it lacks are
    regenerated from the same seeds. Downstream API as the other mmlk backbones.

    Args:
        arch: ``'tiny'`` (SW-T: [3, 3, 18, 3], [80, 160, 320, 640]), ``'small'``, ``'base'`` or
            a dict with ``depths`` and ``dims``.
        kernel_size: ``(M0, M1, M2, M3, k)``; the release uses ``(51, 49, 47, 13, 3)``.
        ghost_ratio, num_paths, num_replicas, anchor: the operator's (0.23, 2, 4, official).
        impl: the operator's execution, ``'dense'`` (default, fastest measured on CPU) or
            ``'shift_add'`` (the released code's), the same sums.
        norm_cfg: the operator's and block's BNs (SyncBN in the release).
        deploy: build the operators' inference form (paths and replicas merged, branch BNs and
            the identity folded; :meth:`ShiftWiseConv.switch_to_deploy`).
        **kwargs: the shared ConvNeXt arguments (``out_indices``, ``drop_path_rate``,
            ``layer_scale_init_value``, ``frozen_stages``, ``norm_eval``, ``with_cp``,
            ``gap_before_final_norm``, ``init_cfg``).
    """

    converter = 'tools/model_converters/shiftwise_to_mmlk.py'
    arch_zoo = {
        'tiny': dict(depths=[3, 3, 18, 3], dims=[80, 160, 320, 640]),
        'small': dict(depths=[3, 3, 27, 3], dims=[96, 192, 384, 768]),
        'base': dict(depths=[3, 3, 27, 3], dims=[128, 256, 512, 1024]),
    }
    _table_buffers = ('rep_index', 'ghost_index', 'index_h', 'index_v', 'index_small')

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 kernel_size: Sequence[int] = (51, 49, 47, 13, 3),
                 ghost_ratio: float = 0.23,
                 num_paths: int = 2,
                 num_replicas: int = 4,
                 anchor: str = 'official',
                 norm_cfg: dict = dict(type='BN'),
                 deploy: bool = False,
                 impl: str = 'dense',
                 **kwargs) -> None:
        arch = resolve_arch(arch, self.arch_zoo, ('depths', 'dims'), 'ShiftWiseNet')
        long_sides, small = split_kernel_sizes(kernel_size, self.num_stages, '(51, 49, 47, 13, 3)')
        kernel_size = [*long_sides, small]
        self.arch, self.kernel_size, self.norm_cfg = arch, kernel_size, norm_cfg
        self.deploy = deploy

        def mixer(channels: int, stage: int) -> nn.Module:
            return ShiftWiseConv(channels, long_sides[stage], small, ghost_ratio=ghost_ratio,
                                 num_paths=num_paths, num_replicas=num_replicas, anchor=anchor,
                                 norm_cfg=norm_cfg, deploy=deploy, impl=impl)

        super().__init__(arch['depths'], arch['dims'], mixer, **kwargs)

    def build_stem(self, in_channels: int, channels: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(in_channels, channels // 2, 3, stride=2, padding=1),
            LayerNorm2d(channels // 2), nn.GELU(),
            nn.Conv2d(channels // 2, channels, 3, stride=2, padding=1), LayerNorm2d(channels))

    def build_downsample(self, in_channels: int, channels: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(in_channels, channels, 3, stride=2, padding=1),
                             LayerNorm2d(channels))

    def build_block(self, channels: int, mixer: nn.Module, stage_index: int,
                    **kwargs) -> nn.Module:
        return ShiftWiseBlock(channels, mixer, norm_cfg=self.norm_cfg, **kwargs)

    def convert_official_keys(self, state_dict):
        """Besides ConvNeXt's renames: the release has no ghost/replica tables; ours were
        generated from the same seeds by the constructor, so they are filled in from here."""
        state_dict = dict(super().convert_official_keys(state_dict))
        for key, value in self.state_dict().items():
            if key.rsplit('.', 1)[-1] in self._table_buffers and key not in state_dict:
                state_dict[key] = value
        return state_dict
