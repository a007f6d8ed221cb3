"""mmlk's registry nodes.

Each node is a child of mmengine's root node with ``scope='mmlk'``. A config under any
``default_scope`` (mmdet, mmseg, mmpretrain) that writes ``type='mmlk.SLaK'`` makes mmengine
import ``mmlk.registry`` and then the ``locations`` below, so no ``custom_imports`` is needed.

Inside mmlk, sub-modules are built directly (plain Python classes), never by bare name through
these registries: a bare-name build is resolved in the *current* default scope's node, which is
mmdet's or mmseg's during training, and would not find mmlk's classes.
"""
# First, so that an unsupported torch/mmcv is refused in one line before any model is built.
import mmlk.compat  # noqa: F401
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import Registry

# mmlk.engine: SparseEMA, an averaged model built by mmengine's EMAHook
MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mmlk',
                  locations=['mmlk.models', 'mmlk.engine'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='mmlk', locations=['mmlk.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    scope='mmlk',
    locations=['mmlk.engine'])
OPTIM_WRAPPERS = Registry(
    'optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope='mmlk',
    locations=['mmlk.engine'])

__all__ = ['MODELS', 'HOOKS', 'OPTIM_WRAPPER_CONSTRUCTORS', 'OPTIM_WRAPPERS']
