"""Classification heads. Imported on demand (``custom_imports=['mmlk.models.heads']``), not by
``mmlk.models``, because they subclass mmpretrain's heads and ``import mmlk`` stays light."""
from .kw_cls_head import KWLinearClsHead

__all__ = ['KWLinearClsHead']
