"""What the KernelWarehouse backbones share (Li & Yao, "KernelWarehouse: Rethinking the
Design of Dynamic Convolution", ICML 2024): KW-ResNet (:mod:`.kw_resnet`), KW-MobileNetV2
(:mod:`.kw_mobilenet_v2`) and KW-ConvNeXt (:mod:`.kw_convnext`), one file per network as
mmpretrain keeps them.

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
from typing import List, Sequence

from torch import nn

from mmlk.ops.kernel_warehouse import (KWAttention, KWConvNd, WarehouseManager,
                                       set_kw_temperature)


__all__ = ['KWBackboneMixin']

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
