"""The KernelWarehouse classifier of KW-MobileNetV2 1/2x (Li & Yao, ICML 2024)."""
from typing import Optional, Tuple

from mmpretrain.models.heads import ClsHead
from torch import Tensor, nn

from mmlk.ops import WarehouseManager, set_kw_temperature
from mmlk.registry import MODELS

__all__ = ['KWLinearClsHead']


@MODELS.register_module()
class KWLinearClsHead(ClsHead):
    """mmpretrain ``LinearClsHead`` whose linear layer is a KW linear (a 1x1 KW conv) with a
    warehouse of its own, as the official KW-MobileNetV2 1/2x classifier (cells of
    ``C_out x int(0.025 * C_in)`` channels, ``n = M / 2``, attention reduction 1/32). Dropout
    defaults to 0 as in the official runs: the model file's own default is 0.1, but
    ``main.py`` passes ``--dropout`` (default 0) and the 1/2x JSON configs do not set it.

    The official classifier is alone in its warehouse, so a separate manager is the same model;
    :file:`tools/model_converters/kw_to_mmlk.py` maps ``classifier.1.conv.*`` and its warehouse
    onto ``head.fc.conv.*`` and ``head.warehouse_manager.weights.0``.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 cell_num_ratio: float = 0.5,
                 cell_inplane_ratio: float = 0.025,
                 cell_outplane_ratio: float = 1.0,
                 reduction: float = 1 / 32,
                 dropout: float = 0.0,
                 temperature: float = 0.0,
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(init_cfg=init_cfg, **kwargs)
        if num_classes <= 0:
            raise ValueError(f'num_classes={num_classes} must be a positive integer')
        self.num_classes, self.in_channels = num_classes, in_channels
        self.warehouse_manager = WarehouseManager(reduction, cell_num_ratio, cell_inplane_ratio,
                                                  cell_outplane_ratio, norm='bn')
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = self.warehouse_manager.reserve(in_channels, num_classes, bias=True,
                                                 key=('classifier', ), layer_type='linear')
        self.warehouse_manager.store()
        self.warehouse_manager.allocate(self)
        set_kw_temperature(self, temperature)

    def pre_logits(self, feats: Tuple[Tensor]) -> Tensor:
        return feats[-1]

    def forward(self, feats: Tuple[Tensor]) -> Tensor:
        return self.fc(self.dropout(self.pre_logits(feats)))
