"""What differs between the torch versions mmlk supports: the one place that knows.

Every other module calls these instead of testing ``torch.__version__`` or ``hasattr`` itself.
torch 2.1 (the newest torch mmcv 2.1.0 publishes wheels for) lacks
``torch.compiler.is_compiling``, the device-generic autocast queries
(``torch.is_autocast_enabled(device)``, ``torch.get_autocast_dtype(device)``) and
``torch.serialization.safe_globals``; newer releases deprecate the spellings 2.1 has.
Leaf module: imports nothing of mmlk and nothing of mmengine.
"""
from typing import Iterable

import torch

__all__ = ['HAS_SAFE_GLOBALS', 'autocast_dtype', 'is_autocast_enabled', 'is_compiling',
           'safe_globals']

# torch >= 2.4: an allow-list for torch's own weights-only unpickler.
HAS_SAFE_GLOBALS = hasattr(torch.serialization, 'safe_globals')


def is_compiling() -> bool:
    """True while torch.compile / dynamo traces the caller."""
    compiler = getattr(torch, 'compiler', None)
    if compiler is not None and hasattr(compiler, 'is_compiling'):
        return bool(compiler.is_compiling())
    dynamo = getattr(torch, '_dynamo', None)
    return bool(dynamo is not None and hasattr(dynamo, 'is_compiling') and dynamo.is_compiling())


def is_autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` ('cpu', 'cuda', ...)."""
    try:
        return bool(torch.is_autocast_enabled(device_type))
    except TypeError:  # torch < 2.4: no device argument
        if device_type == 'cpu':
            return bool(torch.is_autocast_cpu_enabled())
        return bool(torch.is_autocast_enabled())


def autocast_dtype(device_type: str) -> torch.dtype:
    """The dtype autocast casts to on ``device_type``."""
    if hasattr(torch, 'get_autocast_dtype'):
        return torch.get_autocast_dtype(device_type)
    if device_type == 'cpu':  # torch < 2.4
        return torch.get_autocast_cpu_dtype()
    return torch.get_autocast_gpu_dtype()


def safe_globals(objects: Iterable):
    """Context manager allowing ``objects`` in torch's weights-only unpickler (torch >= 2.4;
    callers use a restricted pickle module on older torch, see ``mmlk.models.utils``)."""
    if not HAS_SAFE_GLOBALS:
        raise RuntimeError('torch.serialization.safe_globals needs torch >= 2.4')
    return torch.serialization.safe_globals(list(objects))
