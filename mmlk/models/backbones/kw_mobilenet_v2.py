"""KW-MobileNetV2 (Li & Yao, "KernelWarehouse: Rethinking the Design of Dynamic Convolution", ICML
2024); warehouse keys and freezing: :mod:`.kw_base`."""
import re
from typing import Dict, Hashable, List, Optional, Sequence, Tuple, Union

from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmlk.ops.kernel_warehouse import WarehouseManager
from mmlk.registry import MODELS

from ..utils import checkpointed, make_divisible
from .base import LargeKernelBackbone, require_upstream_value
from .convnext_skeleton import resolve_arch
from .kw_base import KWBackboneMixin

__all__ = ['KWMobileNetV2']


class _ConvBNReLU6(nn.Sequential):
    def __init__(self, conv: nn.Module, channels: int, norm_cfg: dict) -> None:
        super().__init__(conv, build_norm_layer(norm_cfg, channels)[1], nn.ReLU6(inplace=True))


class KWInvertedResidual(BaseModule):
    """MobileNetV2 inverted residual whose convs are reserved from the warehouse manager
    (official layout ``conv.{0: pw, 1: dw, 2: pw-linear, 3: bn}``)."""

    def __init__(self, manager: WarehouseManager, in_channels: int, out_channels: int,
                 stride: int, expand_ratio: int, keys: Dict[str, Hashable], kw_pointwise: bool,
                 norm_cfg: dict, with_cp: bool) -> None:
        super().__init__()
        hidden = int(round(in_channels * expand_ratio))
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers = []
        if expand_ratio != 1:
            layers.append(_ConvBNReLU6(
                manager.reserve(in_channels, hidden, 1, key=keys['pwconv0'],
                                enabled=kw_pointwise), hidden, norm_cfg))
        layers += [
            _ConvBNReLU6(manager.reserve(hidden, hidden, 3, stride, 1, groups=hidden,
                                         key=keys['dwconv0']), hidden, norm_cfg),
            manager.reserve(hidden, out_channels, 1, key=keys['pwconv1'], enabled=kw_pointwise),
            build_norm_layer(norm_cfg, out_channels)[1],
        ]
        self.conv = nn.Sequential(*layers)
        self.with_cp = with_cp

    def forward(self, x: Tensor) -> Tensor:
        out = checkpointed(self.conv, x, self.with_cp)
        return x + out if self.use_res_connect else out


@MODELS.register_module()
class KWMobileNetV2(KWBackboneMixin, LargeKernelBackbone):
    """MobileNetV2 with KernelWarehouse convolutions (Li & Yao, ICML 2024).

    The stem, every expansion/depth-wise/projection conv and the final 1x1 conv are KW convs
    (1x and 4x); the 1/2x model keeps the point-wise convs of stages 1-5 plain and has its own
    per-warehouse ratios (its KW classifier is :class:`mmlk.KWLinearClsHead`). Names follow the
    official ``features.i`` layout.

    Args:
        widen_factor: width multiplier (1.0 or 0.5 released).
        budget: ``'1/2x'``, ``'1x'``, ``'4x'`` or a dict with ``cell_num_ratio``, ``sharing``
            (``'pw_dw'``: one point-wise + one depth-wise warehouse per stage; ``'layer_type'``:
            one per ``pwconv0``/``dwconv0``/``pwconv1``) and optionally the cell ratios,
            ``reduction`` and ``kw_pointwise_stages`` (KW stages whose point-wise convs are KW).
        out_indices: mmdet/mmpretrain's MobileNetV2 layer indices: i in 0..6 is the output of
            the i-th inverted-residual setting (``features`` 1, 3, 6, 10, 13, 16, 17; widths
            16/24/32/64/96/160/320 at 1.0x), 7 the final 1x1 conv (``features.18``, 1280).
            mmdet's default ``(1, 2, 4, 7)`` is the official KW detector's output set
            (24/32/96/1280); ImageNet classification uses ``(7, )``.
        frozen_stages: mmdet's MobileNetV2 convention (mmlk's one): -1 nothing, 0 the stem
            (``features.0``), k the stem and layers 1..k. The official KW detector's
            ``frozen_stages=1`` (``features[:4]``) is ``frozen_stages=2`` here.
        conv_cfg, act_cfg, pretrained: mmdet's MobileNetV2 arguments: plain convs and ReLU6
            only (anything else is refused), ``pretrained`` is the deprecated ``init_cfg``.
        freeze_warehouses, norm_eval, norm_cfg, with_cp, temperature: as :class:`KWResNet`.
    """

    settings = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
                [6, 160, 3, 2], [6, 320, 1, 1]]
    kw_stage_of_setting = [1, 2, 3, 4, 5, 6, 6]
    # The last ``features`` index of mmdet's layers 1..7 and of the final conv (out_indices).
    stage_ends = (1, 3, 6, 10, 13, 16, 17, 18)
    budgets = {
        '1x': dict(cell_num_ratio=1, sharing='pw_dw'),
        '4x': dict(cell_num_ratio=4, sharing='layer_type'),
        # Warehouses: stem, dw of stages 1-5, stage-6 pwconv0/dwconv0/pwconv1.
        '1/2x': dict(cell_num_ratio=(1, 1, 1, 1, 1, 1, 0.5, 1, 0.5),
                     cell_inplane_ratio=(1, 1, 1, 1, 1, 1, 0.5, 1, 0.5),
                     cell_outplane_ratio=(1, 1, 1, 1, 1, 1, 0.5, 1, 0.5),
                     reduction=1 / 32, sharing='layer_type', kw_pointwise_stages=(6, )),
    }
    num_stages = 8

    def __init__(self,
                 widen_factor: float = 1.0,
                 budget: Union[str, dict] = '1x',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (1, 2, 4, 7),
                 frozen_stages: int = -1,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 act_cfg: dict = dict(type='ReLU6'),
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 freeze_warehouses: bool = True,
                 temperature: float = 0.0) -> None:
        super().__init__(init_cfg=init_cfg, pretrained=pretrained)
        require_upstream_value('KWMobileNetV2', 'conv_cfg', conv_cfg,
                               [None, dict(type='Conv2d')], 'the convs are KW convs')
        require_upstream_value('KWMobileNetV2', 'act_cfg', act_cfg, [dict(type='ReLU6')],
                               "KernelWarehouse's MobileNetV2 uses ReLU6")
        self.freeze_warehouses = bool(freeze_warehouses)
        budget = resolve_arch(budget, self.budgets, ('cell_num_ratio', 'sharing'),
                              'KWMobileNetV2 budget')
        sharing = budget.pop('sharing')
        if sharing not in ('pw_dw', 'layer_type'):
            raise ValueError(f"KWMobileNetV2 sharing must be 'pw_dw' or 'layer_type', got "
                             f'{sharing!r}')
        kw_pointwise_stages = set(budget.pop('kw_pointwise_stages', range(1, 7)))
        if widen_factor <= 0:
            raise ValueError(f'widen_factor must be positive, got {widen_factor}')
        self.out_indices = self._check_out_indices(out_indices)
        self.frozen_stages = self._check_frozen_stages(frozen_stages, self.num_stages)
        self.norm_eval = norm_eval
        self.warehouse_manager = WarehouseManager(norm='bn', **budget)
        manager = self.warehouse_manager

        def keys(stage: int) -> Dict[str, Hashable]:
            if sharing == 'pw_dw':
                return dict(pwconv0=('stage', stage, 'pw'), dwconv0=('stage', stage, 'dw'),
                            pwconv1=('stage', stage, 'pw'))
            return {t: ('stage', stage, t) for t in ('pwconv0', 'dwconv0', 'pwconv1')}

        channels = make_divisible(32 * widen_factor)
        last_channels = make_divisible(1280 * max(1.0, widen_factor))
        features = [_ConvBNReLU6(manager.reserve(in_channels, channels, 3, 2, 1,
                                                 key=('stem', )), channels, norm_cfg)]
        widths = []
        for index, (t, c, n, s) in enumerate(self.settings):
            out_channels = make_divisible(c * widen_factor)
            kw_stage = self.kw_stage_of_setting[index]
            for i in range(n):
                handover = (i == 0 and index > 0
                            and kw_stage != self.kw_stage_of_setting[index - 1])
                stage = kw_stage - 1 if handover else kw_stage
                features.append(KWInvertedResidual(
                    manager, channels, out_channels, s if i == 0 else 1, t, keys(stage),
                    stage in kw_pointwise_stages, norm_cfg, with_cp))
                channels = out_channels
            widths.append(channels)
        features.append(_ConvBNReLU6(
            manager.reserve(channels, last_channels, 1, key=keys(self.kw_stage_of_setting[-1])
                            ['pwconv1']), last_channels, norm_cfg))
        self.features = nn.Sequential(*features)
        self.out_channels = [(widths + [last_channels])[i] for i in self.out_indices]
        self._default_init()
        self._build_warehouses(temperature)
        self._freeze_stages()

    def _default_init(self) -> None:
        def init(module: nn.Module) -> None:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode='fan_out')
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        self._default_init_skipping_kw(init)

    def forward_stages(self, x: Tensor) -> Tuple[Tensor, ...]:
        outs, start = [], 0
        for stage, end in enumerate(self.stage_ends):
            for index in range(start, end + 1):
                x = self.features[index](x)
            start = end + 1
            if stage in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        end = self.stage_ends[self.frozen_stages - 1] if self.frozen_stages else 0
        self._freeze_modules([self.features[i] for i in range(end + 1)])

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """``features.i`` -> i; warehouses and everything else the last id."""
        num_layers = len(self.features) + 1
        name = param_name[len(prefix):] if param_name.startswith(prefix) else ''
        match = re.match(r'features\.(\d+)\.', name)
        if match is None:
            return num_layers - 1, num_layers
        return int(match.group(1)), num_layers

    def _may_ignore(self, key: str) -> bool:
        return key.startswith(('classifier.', 'head.'))
