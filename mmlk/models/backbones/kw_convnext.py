"""KW-ConvNeXt (Li & Yao, "KernelWarehouse: Rethinking the Design of Dynamic Convolution", ICML
2024); warehouse keys and freezing: :mod:`.kw_base`."""
import re
from typing import Dict, Union

from mmengine.model.weight_init import trunc_normal_
from torch import Tensor, nn

from mmlk.ops import LayerNorm2d
from mmlk.ops.kernel_warehouse import WarehouseManager
from mmlk.registry import MODELS

from .convnext_skeleton import ConvNeXtBlock, ConvNeXtSkeleton, resolve_arch
from .kw_base import _BUDGET_KEYS, KWBackboneMixin

__all__ = ['KWConvNeXt', 'KWConvNeXtBlock']


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
