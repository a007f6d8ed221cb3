"""mmlk: large-kernel ConvNets (SLaK, RepLKNet, shift-wise conv, KernelWarehouse) for OpenMMLab 2.x.

Importing ``mmlk`` is cheap and never imports mmdet or mmseg: configs refer to our classes by
scoped names (``type='mmlk.SLaK'``) and the registries in :mod:`mmlk.registry` import the
implementing modules on first use.
"""
from .config_prefix import install as _install_config_prefix
from .version import __version__

_install_config_prefix()  # `mmlk::` configs for mmengine and mim (mmlk/config_prefix.py)

__all__ = ['__version__']
