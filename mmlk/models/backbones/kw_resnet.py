"""KW-ResNet (Li & Yao, "KernelWarehouse: Rethinking the Design of Dynamic Convolution", ICML
2024); warehouse keys and freezing: :mod:`.kw_base`."""
import re
from typing import List, Optional, Sequence, Tuple, Union

from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmlk.ops.kernel_warehouse import WarehouseManager
from mmlk.registry import MODELS

from ..utils import checkpointed
from .base import LargeKernelBackbone, require_upstream_value
from .convnext_skeleton import resolve_arch
from .kw_base import _BUDGET_KEYS, KWBackboneMixin

__all__ = ['KWResNet']


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
