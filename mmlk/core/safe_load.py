"""Loading checkpoints without running their code: an allow-list unpickler, safetensors.

A ``.pth`` file is a pickle, and unpickling calls whatever callables the file names: a crafted
checkpoint runs any command. torch's ``weights_only=True`` allows tensors and containers only,
which refuses every real mmengine checkpoint (its meta holds mmengine's ``HistoryBuffer`` and
numpy objects). mmlk loads with an explicit allow-list of the types real checkpoints hold, each
entry with the file layout that needs it; a file naming any other global is refused before
anything from it runs, with the way to load a trusted file (``--trust-checkpoint``, or
``trust_checkpoint=True`` in an ``init_cfg`` or a config). ``.safetensors`` files hold no code
at all and are read with the ``safetensors`` package.

Mechanism by torch version (:mod:`mmlk.compat`): torch >= 2.4 runs its own weights-only
unpickler with the allow-list (``torch.serialization.safe_globals``); older torch (2.1 has no
way to extend that list) uses a restricted :class:`pickle.Unpickler` whose ``find_class``
resolves only allowed globals (the pattern of the Python documentation's "Restricting
Globals"). Both refuse the same files.
"""
import _compat_pickle
import functools
import importlib
import json
import pickle
import re
import types
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch

from mmlk.compat import HAS_SAFE_GLOBALS, safe_globals

from .atomic_io import atomic_write_bytes

__all__ = ['ALLOWED_GLOBALS', 'UnsafeCheckpointError', 'checkpoint_trusted', 'safe_torch_load',
           'load_safetensors', 'save_safetensors', 'trust_checkpoints']

ALLOWED_GLOBALS: Dict[str, str] = {
    # name in the pickle -> the checkpoint layout that needs it
    'mmengine.logging.history_buffer.HistoryBuffer':
        "every mmengine training checkpoint: meta['message_hub']['log_scalars'] values",
    'builtins.getattr':
        "mmengine's HistoryBuffer state pickles its statistics methods as getattr("
        "HistoryBuffer, 'min'|'max'|'mean'|'current'); only that form is resolved",
    'numpy.core.multiarray._reconstruct':
        'numpy arrays (numpy < 2): HistoryBuffer histories, numpy RNG state (RNGStateHook)',
    'numpy._core.multiarray._reconstruct':
        'numpy arrays (numpy >= 2): HistoryBuffer histories, numpy RNG state (RNGStateHook)',
    'numpy.ndarray': 'numpy arrays: HistoryBuffer histories, numpy RNG state',
    'numpy.dtype': 'numpy arrays and scalars: their dtypes',
    'numpy.core.multiarray.scalar':
        'numpy scalars (numpy < 2): logged values in meta (message hub runtime info, metrics)',
    'numpy._core.multiarray.scalar':
        'numpy scalars (numpy >= 2): logged values in meta (message hub runtime info, metrics)',
    '_codecs.encode':
        "numpy arrays' raw bytes in protocol-2 pickles (torch.save's default): "
        "_codecs.encode(text, 'latin1'); torch >= 2.4's own unpickler allows it too",
    'argparse.Namespace':
        "official SLaK/RepLKNet/ConvNeXt/KernelWarehouse training files: checkpoint['args']",
}
# numpy >= 1.25 pickles dtypes as instances of their classes (numpy.dtypes.Float64DType...).
_NUMPY_DTYPE_CLASS = re.compile(r'^numpy\.dtypes\.\w+DType$')

_TRUST = {'all': False}


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint names a global outside the allow-list; nothing of it was run."""


def trust_checkpoints(enabled: bool = True) -> None:
    """Load every checkpoint of this process with plain ``torch.load`` (the tools'
    ``--trust-checkpoint``): for files the user trusts, never on by default."""
    _TRUST['all'] = bool(enabled)


def checkpoint_trusted() -> bool:
    return _TRUST['all']


def _resolve(name: str):
    module, _, attr = name.rpartition('.')
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None


def _history_buffer_getattr(obj, name: str):
    """``getattr`` as HistoryBuffer's pickled state uses it, and nothing else."""
    from mmengine.logging.history_buffer import HistoryBuffer
    attr = HistoryBuffer.__dict__.get(name) if obj is HistoryBuffer else None
    if not isinstance(attr, types.FunctionType) or name.startswith('_'):
        raise UnsafeCheckpointError(f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint '
                                    "(only HistoryBuffer's statistics methods)")
    return attr


@functools.lru_cache(maxsize=None)
def _allowed_objects() -> Tuple[Tuple[object, str], ...]:
    objects = []
    for name in ALLOWED_GLOBALS:
        obj = _history_buffer_getattr if name == 'builtins.getattr' else _resolve(name)
        if obj is not None:
            objects.append((obj, name))
    import numpy
    for name in dir(getattr(numpy, 'dtypes', None) or ()):
        if _NUMPY_DTYPE_CLASS.match(f'numpy.dtypes.{name}'):
            objects.append((getattr(numpy.dtypes, name), f'numpy.dtypes.{name}'))
    return tuple(objects)


@functools.lru_cache(maxsize=None)
def _restricted_table() -> Dict[str, object]:
    """Name -> object for the restricted unpickler: torch's own weights-only globals plus
    mmlk's allow-list."""
    from torch import _weights_only_unpickler
    table = dict(_weights_only_unpickler._get_allowed_globals())
    table.update({name: obj for obj, name in _allowed_objects()})
    return table


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves torch's own weights-only globals and mmlk's allow-list only (torch < 2.4)."""

    def find_class(self, module: str, name: str):
        # Python 2 names (protocol 2 pickles write __builtin__.getattr), as pickle maps them
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        full = f'{module}.{name}'
        table = _restricted_table()
        if full in table:
            return table[full]
        raise UnsafeCheckpointError(f'Unsupported global: GLOBAL {full}')


_restricted_pickle = types.ModuleType('mmlk_restricted_pickle')
_restricted_pickle.Unpickler = _RestrictedUnpickler
_restricted_pickle.load = lambda f, **kw: _RestrictedUnpickler(f, **kw).load()
_restricted_pickle.__name__ = 'mmlk_restricted_pickle'


def _refusal(path: str, err: Exception) -> UnsafeCheckpointError:
    text = str(err)
    call = re.search(r"getattr\([^)]*\)", text)
    match = re.search(r'GLOBAL ([\w.]+)', text)
    if call:
        found = f'the call {call.group(0)}'
    else:
        found = f'the global {match.group(1)}' if match else f'({text.splitlines()[0]})'
    return UnsafeCheckpointError(
        f'{path}: refused: it names {found}, which is not one of the types real '
        'checkpoints hold (mmlk.core.safe_load.ALLOWED_GLOBALS); unpickling it could '
        'run code, so nothing of it was run. If you trust this file (you wrote it, or its '
        'source is trusted), load it with --trust-checkpoint (tools and converters), or '
        "trust_checkpoint=True in the init_cfg / the config; or convert it to .safetensors.")


def safe_torch_load(path: str, map_location=None, trust: Optional[bool] = None, **kwargs):
    """``torch.load`` of a local ``.pth`` with the allow-list (``trust``: plain torch.load;
    default: the process-wide :func:`trust_checkpoints` setting)."""
    if path.endswith('.safetensors'):
        return load_safetensors(path, map_location)
    if trust if trust is not None else checkpoint_trusted():
        return torch.load(path, map_location=map_location, weights_only=False, **kwargs)
    if HAS_SAFE_GLOBALS:
        try:
            with safe_globals(_allowed_objects()):
                return torch.load(path, map_location=map_location, weights_only=True, **kwargs)
        except pickle.UnpicklingError as err:
            if 'GLOBAL' in str(err) or 'getattr' in str(err):
                raise _refusal(path, err) from None
            raise
    kwargs.pop('mmap', None)  # torch 2.1 has it for zip files only; keep the plain read
    try:
        return torch.load(path, map_location=map_location, pickle_module=_restricted_pickle,
                          weights_only=False, **kwargs)
    except UnsafeCheckpointError as err:
        raise _refusal(path, err) from None


# ---------------------------------------------------------------------------- safetensors
_META_KEY = 'mmlk_meta'


def save_safetensors(checkpoint: dict, path: str) -> None:
    """Write ``checkpoint['state_dict']`` (or a plain state dict) as safetensors, with
    ``checkpoint['meta']`` as JSON metadata where it is JSON-serialisable."""
    from safetensors.torch import save
    state = checkpoint.get('state_dict', checkpoint)
    tensors = OrderedDict((k, v.detach().cpu().contiguous().clone()) for k, v in state.items()
                          if isinstance(v, torch.Tensor))
    skipped = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if skipped:
        raise ValueError(f'safetensors holds tensors only; {path} would lose {skipped[:5]}')
    metadata = {}
    meta = checkpoint.get('meta') if 'state_dict' in checkpoint else None
    if meta is not None:
        metadata[_META_KEY] = json.dumps(meta, default=str)
    atomic_write_bytes(save(tensors, metadata=metadata), path)


def load_safetensors(path: str, map_location=None) -> dict:
    """``{'state_dict': tensors, 'meta': ...}`` from a ``.safetensors`` file (no code runs)."""
    from safetensors import safe_open
    from safetensors.torch import load_file
    device = map_location if isinstance(map_location, str) else 'cpu'
    state = OrderedDict(load_file(path, device=device))
    with safe_open(path, framework='pt') as f:
        metadata = f.metadata() or {}
    meta = json.loads(metadata[_META_KEY]) if _META_KEY in metadata else {}
    return {'state_dict': state, 'meta': meta}
