"""KernelWarehouse backbones (Li & Yao, "KernelWarehouse: Rethinking the Design of Dynamic
Convolution", ICML 2024): KW-ResNet, KW-MobileNetV2 and KW-ConvNeXt.

Each network reserves its KW layers from one :class:`~mmlk.ops.WarehouseManager` with explicit
warehouse keys, then stores and allocates the warehouses at the end of its constructor, so
mmengine builds, initialises and loads checkpoints as for any backbone. Keys reproduce the
official groups and warehouse order (``warehouse_manager.weights.i``):

* ResNet: one warehouse per stage, ``('stage', s)``; the first block of stage s puts its
  ``conv1`` and strided downsample into stage s - 1 (the official hand-over).
* MobileNetV2: the stem alone, then per KW stage either one point-wise and one depth-wise
  warehouse (1x) or one per layer type ``pwconv0``/``dwconv0``/``pwconv1`` (4x, 1/2x); the
  first block of a new stage belongs to the previous one.
* ConvNeXt: stem and each downsampler alone, then per stage a depth-wise and a point-wise
  warehouse (``pwconv1`` and ``pwconv2`` together).

Freezing with shared warehouses: ``frozen_stages`` freezes the listed stages' norms, attentions
and plain convs. The warehouses belong to the manager, not to any stage, so the official
detection backbones never freeze them: every warehouse keeps training and its frozen layers'
kernels change with it (``freeze_warehouses=False``, used by the configs that reproduce the
paper). mmlk's rule (``freeze_warehouses=True``, the backbones' default) also freezes a
warehouse when *every* layer mixing from it is frozen; with the hand-over, warehouse s still
serves stage s + 1's first block, so it trains while stage s + 1 does.
"""
import re
from typing import Dict, Hashable, List, Optional, Sequence, Tuple, Union

from mmlk.models.utils.activation_checkpoint import checkpointed
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor, nn

from mmlk.ops import LayerNorm2d
from mmlk.ops.kernel_warehouse import (KWAttention, KWConvNd, WarehouseManager,
                                       set_kw_temperature)
from mmlk.registry import MODELS
from .base import LargeKernelBackbone, require_upstream_value
from .convnext_skeleton import ConvNeXtBlock, ConvNeXtSkeleton, resolve_arch

__all__ = ['KWResNet', 'KWMobileNetV2', 'KWConvNeXt', 'KWConvNeXtBlock']

_BUDGET_KEYS = ('cell_num_ratio', )


class KWBackboneMixin:
    """What every KW backbone adds to :class:`LargeKernelBackbone`: the warehouse manager's
    two-phase build, the temperature, warehouse-aware freezing and an init that leaves the
    KW attentions and warehouses as ``allocate`` initialised them."""

    converter = 'tools/model_converters/kw_to_mmlk.py'

    warehouse_manager: WarehouseManager

    def _build_warehouses(self, temperature: float) -> None:
        self.warehouse_manager.store()
        self.warehouse_manager.allocate(self)
        self.net_update_temperature(temperature)

    def net_update_temperature(self, temperature: float) -> None:
        """Set tau of every KW attention (1: the static initial network, 0: fully dynamic)."""
        set_kw_temperature(self, temperature)

    @property
    def warehouse_table(self) -> List[dict]:
        return self.warehouse_manager.warehouse_table

    freeze_warehouses: bool = True

    def _freeze_modules(self, modules: Sequence[nn.Module]) -> None:
        for module in modules:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False
        if not self.freeze_warehouses:
            return  # the official rule: the manager's warehouses always train
        # mmlk's rule: a warehouse stops training only when no trainable layer mixes from it.
        trainable = set()
        for layer in self.modules():
            if isinstance(layer, KWConvNd) and layer.attention is not None and any(
                    p.requires_grad for p in layer.attention.parameters()):
                trainable.add(layer.warehouse_id)
        if self.warehouse_manager.weights is not None:
            for index, weight in enumerate(self.warehouse_manager.weights):
                if index not in trainable and modules:
                    weight.requires_grad = False

    def _default_init_skipping_kw(self, init_fn) -> None:
        """Apply ``init_fn`` to every module outside the KW attentions (whose init, like the
        warehouses', is KernelWarehouse's own, done by ``allocate``)."""
        skip = {id(m) for a in self.modules() if isinstance(a, KWAttention) for m in a.modules()}
        for module in self.modules():
            if id(module) not in skip:
                init_fn(module)


def _resnet_init(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
    elif isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)) and \
            not isinstance(module, nn.BatchNorm1d) and module.weight is not None:
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# ---------------------------------------------------------------------------------- ResNet
class KWBasicBlock(BaseModule):
    """ResNet basic block with KW 3x3 convs (official names ``conv1/bn1/conv2/bn2``)."""

    expansion = 1

    def __init__(self, manager: WarehouseManager, in_channels: int, planes: int, stride: int,
                 downsample: Optional[nn.Module], stage: int, handover: bool,
                 norm_cfg: dict, drop_path: float, with_cp: bool) -> None:
        super().__init__()
        self.conv1 = manager.reserve(in_channels, planes, 3, stride, 1,
                                     key=('stage', max(stage - 1, 0) if handover else stage))
        self.bn1 = build_norm_layer(norm_cfg, planes)[1]
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = manager.reserve(planes, planes, 3, 1, 1, key=('stage', stage))
        self.bn2 = build_norm_layer(norm_cfg, planes)[1]
        self.downsample = downsample
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.with_cp = with_cp

    def _residual(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = checkpointed(self._residual, x, self.with_cp)
        return self.relu(identity + self.drop_path(out))


class KWBottleneck(KWBasicBlock):
    """ResNet bottleneck with KW 1x1/3x3/1x1 convs (stride on the 3x3, as torchvision); the
    first block's ``conv1`` joins the previous stage's warehouse (plain in stage 0)."""

    expansion = 4

    def __init__(self, manager: WarehouseManager, in_channels: int, planes: int, stride: int,
                 downsample: Optional[nn.Module], stage: int, handover: bool,
                 norm_cfg: dict, drop_path: float, with_cp: bool) -> None:
        BaseModule.__init__(self)
        conv1_stage = stage - 1 if handover else stage
        self.conv1 = manager.reserve(in_channels, planes, 1, key=('stage', conv1_stage),
                                     enabled=conv1_stage >= 0)
        self.bn1 = build_norm_layer(norm_cfg, planes)[1]
        self.conv2 = manager.reserve(planes, planes, 3, stride, 1, key=('stage', stage))
        self.bn2 = build_norm_layer(norm_cfg, planes)[1]
        self.conv3 = manager.reserve(planes, planes * self.expansion, 1, key=('stage', stage))
        self.bn3 = build_norm_layer(norm_cfg, planes * self.expansion)[1]
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.with_cp = with_cp

    def _residual(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


@MODELS.register_module()
class KWResNet(KWBackboneMixin, LargeKernelBackbone):
    """ResNet-18/50 with KernelWarehouse convolutions (Li & Yao, ICML 2024).

    Every conv of the residual blocks and the strided downsamples is a KW conv; the 7x7 stem
    and stage 0's stride-1 downsample stay plain. Module names equal torchvision's / the
    official ``KW_ResNet``'s, so official checkpoints load by key.

    Args:
        depth: 18 or 50.
        budget: the parameter budget: ``'1/4x'``, ``'1/2x'``, ``'1x'``, ``'2x'``, ``'4x'`` (the
            released settings; ResNet50 has 1/2x, 1x and 4x) or a dict with
            ``cell_num_ratio`` and optionally ``cell_inplane_ratio``, ``cell_outplane_ratio``,
            ``nonlocal_basis_ratio`` and ``reduction``.
        base_channels: width of stage 0 (64).
        drop_path_rate: stochastic depth of every block (uniform, as upstream).
        out_indices: stages returned (0..3).
        frozen_stages: -1 nothing, 0 the stem, n the stem and stages 0..n-1 (mmpretrain's).
        freeze_warehouses: True (mmlk): ``frozen_stages`` also freezes a warehouse whose every
            layer is frozen; False (the official detection backbones): warehouses, held by
            the manager outside the frozen modules, always train.
        norm_eval: BatchNorms (the attentions' BatchNorm1d too) stay in eval mode.
        norm_cfg: the blocks' norm (the attentions always use BatchNorm1d).
        with_cp: gradient checkpointing of each block's residual branch.
        temperature: the initial tau (0 for fine-tuning, as the official detection code;
            :class:`~mmlk.engine.KWTemperatureHook` anneals it during ImageNet training).
        stem_channels, num_stages, strides, dilations, style, deep_stem, avg_down, conv_cfg,
            dcn, stage_with_dcn, plugins, zero_init_residual, pretrained: mmdet's ``ResNet``
            arguments with its defaults, so ``type='ResNet'`` -> ``type='mmlk.KWResNet'``
            swaps a KW backbone into any mmdet config (``out_indices=(0, 1, 2, 3)`` and
            ``norm_eval=True`` are mmdet's defaults too). ``stem_channels`` (the 7x7 stem's
            width, default ``base_channels``), ``zero_init_residual`` (the last BN of each
            block starts at 0 when ``init_cfg`` is None) and ``pretrained`` (a checkpoint
            path, the deprecated ``init_cfg``) are honoured; the others accept only the plain
            torchvision-style ResNet that KernelWarehouse dynamises (4 stages, strides
            ``(1, 2, 2, 2)``, no dilation, ``'pytorch'`` style, no deep stem / average-pool
            downsampling / DCN / plugins) and refuse any other value with a message.
    """

    arch_settings = {18: (KWBasicBlock, (2, 2, 2, 2)), 50: (KWBottleneck, (3, 4, 6, 3))}
    budgets = {
        18: {
            '1/4x': dict(cell_num_ratio=0.25, cell_inplane_ratio=0.5, cell_outplane_ratio=0.5),
            '1/2x': dict(cell_num_ratio=0.5, cell_inplane_ratio=0.5, cell_outplane_ratio=0.5),
            '1x': dict(cell_num_ratio=1),
            '2x': dict(cell_num_ratio=2),
            '4x': dict(cell_num_ratio=4),
        },
        50: {
            '1/2x': dict(cell_num_ratio=0.5, cell_inplane_ratio=0.5, cell_outplane_ratio=0.5,
                         nonlocal_basis_ratio=0.0625),
            '1x': dict(cell_num_ratio=1),
            '4x': dict(cell_num_ratio=4),
        },
    }
    num_stages = 4

    def __init__(self,
                 depth: int = 50,
                 budget: Union[str, dict] = '1x',
                 in_channels: int = 3,
                 stem_channels: Optional[int] = None,
                 base_channels: int = 64,
                 num_stages: int = 4,
                 strides: Sequence[int] = (1, 2, 2, 2),
                 dilations: Sequence[int] = (1, 1, 1, 1),
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 style: str = 'pytorch',
                 deep_stem: bool = False,
                 avg_down: bool = False,
                 frozen_stages: int = -1,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 norm_eval: bool = True,
                 dcn: Optional[dict] = None,
                 stage_with_dcn: Sequence[bool] = (False, False, False, False),
                 plugins: Optional[list] = None,
                 with_cp: bool = False,
                 zero_init_residual: bool = True,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 drop_path_rate: float = 0.,
                 freeze_warehouses: bool = True,
                 temperature: float = 0.0) -> None:
        super().__init__(init_cfg=init_cfg, pretrained=pretrained)
        self.freeze_warehouses = bool(freeze_warehouses)
        if depth not in self.arch_settings:
            raise ValueError(f'KWResNet depth must be one of {sorted(self.arch_settings)}, got '
                             f'{depth!r}')
        _check_plain_resnet(num_stages, strides, dilations, style, deep_stem, avg_down,
                            conv_cfg, dcn, stage_with_dcn, plugins)
        require_upstream_value('KWResNet', 'zero_init_residual', zero_init_residual,
                               [True, False], 'a bool')
        self.zero_init_residual = zero_init_residual
        stem_channels = base_channels if stem_channels is None else stem_channels
        budget = resolve_arch(budget, self.budgets[depth], _BUDGET_KEYS, f'KWResNet-{depth} budget')
        self.depth, self.budget = depth, budget
        self.out_indices = self._check_out_indices(out_indices)
        self.frozen_stages = self._check_frozen_stages(frozen_stages, self.num_stages)
        self._check_drop_path_rate(drop_path_rate)
        self.norm_eval = norm_eval
        block, self.stage_blocks = self.arch_settings[depth]
        self.warehouse_manager = WarehouseManager(norm='bn', **budget)

        self.conv1 = nn.Conv2d(in_channels, stem_channels, 7, 2, 3, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, stem_channels)[1]
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        channels = stem_channels
        self.out_channels = []
        for stage, blocks in enumerate(self.stage_blocks):
            planes = base_channels * 2**stage
            stride = 1 if stage == 0 else 2
            downsample = None
            if stride != 1 or channels != planes * block.expansion:
                downsample = nn.Sequential(
                    self.warehouse_manager.reserve(channels, planes * block.expansion, 1, stride,
                                                   key=('stage', stage - 1), enabled=stride != 1),
                    build_norm_layer(norm_cfg, planes * block.expansion)[1])
            layers = []
            for index in range(blocks):
                layers.append(block(self.warehouse_manager, channels, planes,
                                    stride if index == 0 else 1,
                                    downsample if index == 0 else None, stage, index == 0,
                                    norm_cfg, drop_path_rate, with_cp))
                channels = planes * block.expansion
            self.add_module(f'layer{stage + 1}', nn.Sequential(*layers))
            self.out_channels.append(channels)
        self.out_channels = [self.out_channels[i] for i in self.out_indices]
        self._default_init()  # upstream: model-level init first, then the KW init
        self._build_warehouses(temperature)
        self._freeze_stages()

    def _default_init(self) -> None:
        self._default_init_skipping_kw(_resnet_init)
        if self.zero_init_residual:  # mmdet/torchvision: each residual branch starts at 0
            for stage in range(self.num_stages):
                for block in getattr(self, f'layer{stage + 1}'):
                    last_norm = block.bn3 if isinstance(block, KWBottleneck) else block.bn2
                    nn.init.zeros_(last_norm.weight)

    def forward_stages(self, x: Tensor) -> Tuple[Tensor, ...]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for stage in range(self.num_stages):
            x = getattr(self, f'layer{stage + 1}')(x)
            if stage in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        modules = [self.conv1, self.bn1] + [getattr(self, f'layer{i + 1}')
                                            for i in range(self.frozen_stages)]
        self._freeze_modules(modules)

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """Layer id for layer-wise decay: the stem 0, block k of the network k + 1, everything
        else (warehouses, shared by several blocks, and the heads) the last id."""
        num_layers = sum(self.stage_blocks) + 2
        name = param_name[len(prefix):] if param_name.startswith(prefix) else None
        if name is None:
            return num_layers - 1, num_layers
        if name.startswith(('conv1.', 'bn1.')):
            return 0, num_layers
        match = re.match(r'layer(\d)\.(\d+)\.', name)
        if match is None:
            return num_layers - 1, num_layers
        stage, block = int(match.group(1)) - 1, int(match.group(2))
        return sum(self.stage_blocks[:stage]) + block + 1, num_layers

    def _may_ignore(self, key: str) -> bool:
        return key.startswith(('fc.', 'head.'))


def _check_plain_resnet(num_stages, strides, dilations, style, deep_stem, avg_down, conv_cfg,
                        dcn, stage_with_dcn, plugins) -> None:
    """mmdet ResNet arguments that KernelWarehouse's ResNet has one value for."""
    def require(name, value, accepted, meaning):
        require_upstream_value('KWResNet', name, value, accepted, meaning)
    require('num_stages', num_stages, [4], 'the KW warehouses are laid out for 4 stages; '
            'choose fewer outputs with out_indices')
    require('strides', strides, [(1, 2, 2, 2)], "torchvision's stage strides")
    require('dilations', dilations, [(1, 1, 1, 1)], 'dilated KW stages are not implemented')
    require('style', style, ['pytorch'], 'the stride sits on the 3x3 conv, as in the '
            "official KW-ResNet ('caffe' puts it on the first 1x1)")
    require('deep_stem', deep_stem, [False], 'the 7x7 stem of the official KW-ResNet')
    require('avg_down', avg_down, [False], 'strided 1x1 KW downsampling convs')
    require('conv_cfg', conv_cfg, [None, dict(type='Conv2d')], 'the convs are KW convs')
    require('dcn', dcn, [None], 'deformable KW convs are not implemented')
    require('stage_with_dcn', stage_with_dcn, [(False, False, False, False)],
            'deformable KW convs are not implemented')
    require('plugins', plugins, [None, ()], 'mmdet ResNet plugins are not implemented')


# ---------------------------------------------------------------------------- MobileNetV2
def make_divisible(value: float, divisor: int = 8) -> int:
    """The TF/torchvision MobileNet channel rounding (never more than 10% down)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


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


# ------------------------------------------------------------------------------- ConvNeXt
class KWConvNeXtBlock(ConvNeXtBlock):
    """The ConvNeXt block of KW-ConvNeXt: KW 7x7 depth-wise mixer, LN, KW 1x1 ``pwconv1``/
    ``pwconv2`` (convs on NCHW, as upstream) and layer scale; the rest is ConvNeXt's."""

    def __init__(self, channels: int, mixer: nn.Module, manager: WarehouseManager,
                 stage_index: int, mlp_ratio: float = 4., **kwargs) -> None:
        super().__init__(channels, mixer, mlp_ratio=mlp_ratio, **kwargs)
        hidden = int(mlp_ratio * channels)
        key = ('stage', stage_index, 'pw')
        self.pwconv1 = manager.reserve(channels, hidden, 1, bias=True, key=key)
        self.pwconv2 = manager.reserve(hidden, channels, 1, bias=True, key=key)

    def _residual(self, x: Tensor) -> Tensor:
        y = self.norm(self.large_kernel(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        y = self.pwconv2(self.act(self.pwconv1(y)))
        if self.gamma is not None:
            y = y * self.gamma.reshape(1, -1, 1, 1)
        return self.drop_path(y)


@MODELS.register_module()
class KWConvNeXt(KWBackboneMixin, ConvNeXtSkeleton):
    """ConvNeXt with KernelWarehouse convolutions (Li & Yao, ICML 2024): the shared ConvNeXt
    skeleton whose stem, downsamplers, 7x7 depth-wise and point-wise convs are KW convs with
    biases; the attentions use LayerNorm.

    Args:
        arch: ``'tiny'`` or a dict with ``depths`` and ``dims``.
        budget: ``'1x'`` (released) or a dict with ``cell_num_ratio`` (and cell ratios).
        kernel_size: the depth-wise kernel (7).
        temperature: the initial tau (see :class:`KWResNet`).
        freeze_warehouses: see :class:`KWResNet`.
        **kwargs: the shared ConvNeXt arguments (``out_indices``, ``drop_path_rate``,
            ``frozen_stages``, ``norm_eval``, ``with_cp``, ``gap_before_final_norm``,
            ``layer_scale_init_value``, ``init_cfg`` ...), see :class:`ConvNeXtSkeleton`.

    Official checkpoints (``dwconv`` for our ``large_kernel``, ``gamma`` as ``[1, C, 1, 1]``)
    are renamed on load (:meth:`convert_official_keys`).
    """

    arch_zoo = {'tiny': dict(depths=[3, 3, 9, 3], dims=[96, 192, 384, 768])}
    budgets = {'1x': dict(cell_num_ratio=1)}

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 budget: Union[str, dict] = '1x',
                 kernel_size: int = 7,
                 temperature: float = 0.0,
                 freeze_warehouses: bool = True,
                 **kwargs) -> None:
        self.freeze_warehouses = bool(freeze_warehouses)
        arch = resolve_arch(arch, self.arch_zoo, ('depths', 'dims'), 'KWConvNeXt')
        self._budget = resolve_arch(budget, self.budgets, _BUDGET_KEYS, 'KWConvNeXt budget')
        if kernel_size % 2 == 0 or kernel_size < 1:
            raise ValueError(f'KWConvNeXt kernel_size must be odd and positive, got {kernel_size}')
        self.arch, self.kernel_size, self._temperature = arch, kernel_size, temperature

        def mixer(channels: int, stage: int) -> nn.Module:
            return self.warehouse_manager.reserve(channels, channels, kernel_size, 1,
                                                  kernel_size // 2, groups=channels, bias=True,
                                                  key=('stage', stage, 'dw'))

        super().__init__(arch['depths'], arch['dims'], mixer, **kwargs)

    def begin_build(self) -> None:
        self.warehouse_manager = WarehouseManager(norm='ln', **self._budget)

    def finish_build(self) -> None:
        self._default_init()
        self._build_warehouses(self._temperature)

    def build_stem(self, in_channels: int, channels: int) -> nn.Module:
        return nn.Sequential(
            self.warehouse_manager.reserve(in_channels, channels, 4, 4, bias=True, key=('stem', )),
            LayerNorm2d(channels))

    def build_downsample(self, in_channels: int, channels: int) -> nn.Module:
        index = len(self.warehouse_manager.keys)  # stem, then one warehouse per downsampler
        return nn.Sequential(
            LayerNorm2d(in_channels),
            self.warehouse_manager.reserve(in_channels, channels, 2, 2, bias=True,
                                           key=('downsample', index - 1)))

    def build_block(self, channels: int, mixer: nn.Module, stage_index: int,
                    **kwargs) -> nn.Module:
        return KWConvNeXtBlock(channels, mixer, self.warehouse_manager, stage_index, **kwargs)

    def _freeze_stages(self) -> None:
        modules = self._frozen_modules()
        if modules:
            self._freeze_modules(modules)

    def _default_init(self) -> None:
        def init(module: nn.Module) -> None:
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                trunc_normal_(module.weight, std=.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        self._default_init_skipping_kw(init)

    def convert_official_keys(self, state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
        converted = {}
        for key, value in super().convert_official_keys(state_dict).items():
            key = re.sub(r'^(stages\.\d+\.\d+)\.dwconv\.', r'\1.large_kernel.', key)
            if re.match(r'stages\.\d+\.\d+\.gamma$', key) and value.dim() == 4:
                value = value.reshape(-1)
            converted[key] = value
        return converted
