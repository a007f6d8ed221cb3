"""Reading official checkpoints: one place for container unwrapping and key reporting.

Official large-kernel checkpoints are ``{'model': ..., 'optimizer': ..., 'args': Namespace}``
(ConvNeXt/SLaK/RepLKNet training scripts), mmseg/mmdet ones are ``{'state_dict': ...}`` with a
``backbone.`` prefix, DDP ones carry ``module.``. mmengine's ``Pretrained`` init only unwraps
``state_dict`` and loads with ``strict=False``, so an official file would load *nothing* with
only a warning. Everything here refuses to do that.
"""
import io
import os
import os.path as osp
import pickle
import time
import zipfile
from collections import OrderedDict
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from .atomic_io import atomic_write_bytes, remove_stale_partial_files
from .safe_load import UnsafeCheckpointError, safe_torch_load, save_safetensors

__all__ = [
    'CheckpointMismatchError', 'CheckpointReadError', 'atomic_write_bytes', 'check_checkpoint_file',
    'remove_stale_partial_files', 'load_local_checkpoint',
    'UnsafeCheckpointFileError',
    'save_checkpoint_file', 'state_dict_container', 'load_checkpoint_file', 'unwrap_state_dict',
    'strip_prefix', 'compare_state_dicts', 'load_state_dict_checked', 'convert_to_mmlk'
]

_CONTAINER_KEYS = ('state_dict', 'model', 'model_ema', 'module')


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model: wrong keys or wrong shapes.

    ``num_problems`` counts the offending keys, so that a caller trying several archs can
    report the closest one."""

    def __init__(self, message: str, num_problems: int = 0) -> None:
        super().__init__(message)
        self.num_problems = num_problems


class CheckpointReadError(ValueError):
    """A file given as a checkpoint is empty, truncated or not a checkpoint at all."""


class UnsafeCheckpointFileError(CheckpointReadError):
    """A checkpoint names a global outside the allow-list (nothing of it ran): the tools
    print it as one line; ``--trust-checkpoint`` is the explicit opt-in."""


# torch.save writes a zip archive since torch 1.6; older files are a bare pickle stream.
_PICKLE_PROTOCOL_2_PLUS = b'\x80'
# (real path, size, mtime) of zip checkpoints whose CRCs matched in this process
_CRC_VERIFIED: set = set()
_RACY_NS = 2_000_000_000


def check_checkpoint_file(path: str, verify_crc: bool = True) -> None:
    """Raise :class:`CheckpointReadError` naming ``path`` if it cannot be a complete,
    intact checkpoint.

    A zip archive (what ``torch.save`` writes) keeps its directory at the very end, so reading
    it detects a truncated file (a crash during a non-atomic save). With ``verify_crc`` every
    record is also read and checked against the CRC-32 the archive stores for it: a flipped
    byte inside a tensor (a bad disk, a broken copy) would otherwise load as silently wrong
    weights. That reads the file once more (a 330 MB SLaK-T training checkpoint: about 0.3 s,
    :func:`zipfile.ZipFile.testzip`), once per process: a resume checks its file when choosing
    it, when reading its seed, before the Runner and in mmengine's load, so a file verified
    unchanged (same size and modification time, last modified well before the check, the
    "racily clean" rule of git) is not read again. The pickle stream of legacy files has no
    checksum.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}')
    stat = os.stat(path)
    identity = (osp.realpath(path), stat.st_size, stat.st_mtime_ns)
    if verify_crc and identity in _CRC_VERIFIED:
        return
    size = stat.st_size
    if size == 0:
        raise CheckpointReadError(f'{path}: truncated or not a checkpoint (the file is empty)')
    if path.endswith('.safetensors'):
        _check_safetensors_file(path, size)
        return
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                corrupt = archive.testzip() if verify_crc else None
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise CheckpointReadError(f'{path}: truncated or not a checkpoint ({size} bytes; '
                                      f'{err})') from None
        if corrupt is not None:
            raise CheckpointReadError(
                f'{path}: corrupted: the record {corrupt} does not match the CRC-32 stored in '
                'the archive (the bytes changed after the file was written: a bad disk or an '
                'incomplete copy). Use another copy of the checkpoint.')
        if not any(n.endswith('/data.pkl') or n == 'data.pkl' for n in names):
            raise CheckpointReadError(
                f'{path}: a zip archive but not a torch checkpoint (no data.pkl record; '
                f'records: {names[:5]})')
        # A file modified within the last seconds could change again within the timestamp's
        # granularity without its identity changing: verify such files every time.
        if verify_crc and time.time_ns() - stat.st_mtime_ns > _RACY_NS:
            _CRC_VERIFIED.add(identity)
        return
    with open(path, 'rb') as f:
        head = f.read(1)
    if head != _PICKLE_PROTOCOL_2_PLUS:
        raise CheckpointReadError(
            f'{path}: truncated or not a checkpoint ({size} bytes, neither a torch zip archive '
            'nor a pickle; an incomplete zip archive looks like this too)')


def load_checkpoint_file(path: str, trust: Optional[bool] = None) -> dict:
    """Load a local checkpoint on CPU through :func:`load_local_checkpoint` (the allow-list
    unpickler of :mod:`.safe_load`, or ``.safetensors``); ``trust=True`` is the explicit
    opt-in to plain ``torch.load`` for a file the user trusts."""
    return load_local_checkpoint(path, 'cpu', trust=trust)


def _check_safetensors_file(path: str, size: int) -> None:
    """A safetensors file: 8-byte header length, JSON header, then the data it describes."""
    import json
    import struct
    with open(path, 'rb') as f:
        head = f.read(8)
        length = struct.unpack('<Q', head)[0] if len(head) == 8 else -1
        try:
            header = json.loads(f.read(length)) if 0 < length <= size - 8 else None
        except ValueError:
            header = None
    if not isinstance(header, dict):
        raise CheckpointReadError(f'{path}: truncated or not a safetensors file ({size} bytes)')
    end = max((v['data_offsets'][1] for k, v in header.items() if k != '__metadata__'),
              default=0)
    if 8 + length + end > size:
        raise CheckpointReadError(f'{path}: truncated: the header describes {8 + length + end} '
                                  f'bytes, the file has {size}')


def load_local_checkpoint(filename: str, map_location=None, trust: Optional[bool] = None,
                          **load_kwargs):
    """The one checkpoint loader of mmlk, also mmengine's for local files (``load_from``,
    ``--resume``, test checkpoints, ``load_checkpoint``, ``Pretrained`` inits) once
    :func:`mmlk.core.mmengine_loader.register_as_mmengine_loader` ran (``import mmlk`` does).

    Loads without running code (:func:`.safe_load.safe_torch_load`: an allow-list of the
    types real checkpoints hold; ``.safetensors`` files hold none), unless ``trust`` (or the
    process-wide ``--trust-checkpoint``) says the file is trusted. Every way a file can fail
    is one line naming it: missing, empty, truncated, corrupted (zip CRC), a zip that is no
    torch archive, an unreadable pickle (a half-written legacy file, a class from a module
    that is not installed) raise :class:`CheckpointReadError`; a file naming a global outside
    the allow-list raises :class:`.safe_load.UnsafeCheckpointError` (a subclass) before
    anything of it runs."""
    filename = osp.expanduser(str(filename))
    check_checkpoint_file(filename)
    load_kwargs.pop('weights_only', None)  # the allow-list decides, not the caller
    try:
        return safe_torch_load(filename, map_location=map_location, trust=trust, **load_kwargs)
    except UnsafeCheckpointError as err:
        raise UnsafeCheckpointFileError(str(err)) from None
    except (EOFError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, ImportError,
            AttributeError, ValueError) as err:
        raise CheckpointReadError(f'{filename}: cannot be read as a checkpoint '
                                  f'({osp.getsize(filename)} bytes; {type(err).__name__}: '
                                  f'{str(err).splitlines()[0] if str(err) else ""})') from None


def save_checkpoint_file(checkpoint: Mapping, path: str) -> None:
    """``torch.save`` ``checkpoint`` to ``path`` atomically (see :func:`atomic_write_bytes`);
    a ``.safetensors`` path gets the state dict as safetensors (meta as JSON metadata)."""
    if str(path).endswith('.safetensors'):
        save_safetensors(dict(checkpoint), str(path))
        return
    with io.BytesIO() as buffer:
        torch.save(checkpoint, buffer)
        atomic_write_bytes(buffer.getvalue(), path)


def state_dict_container(checkpoint: Mapping, use_ema: bool = False) -> Optional[str]:
    """The key of ``checkpoint`` holding the weights (``model_ema`` if asked for and present,
    else the first of ``state_dict``, ``model``, ``model_ema``, ``module``), or None for a bare
    state dict."""
    if use_ema and isinstance(checkpoint.get('model_ema'), Mapping):
        return 'model_ema'
    return next((k for k in _CONTAINER_KEYS if isinstance(checkpoint.get(k), Mapping)), None)


def unwrap_state_dict(checkpoint: Mapping, use_ema: bool = False) -> 'OrderedDict[str, Tensor]':
    """Return the tensor dict inside any of the known containers, without ``module.`` prefixes.

    Args:
        checkpoint: a loaded checkpoint: a plain state dict, or a dict holding one under
            ``state_dict`` (mmengine, mmseg, mmdet), ``model`` (official training scripts) or
            ``model_ema``.
        use_ema: take ``model_ema`` when present instead of ``model``.
    """
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f'a checkpoint must be a dict, got {type(checkpoint).__name__}')
    container = state_dict_container(checkpoint, use_ema)
    state = checkpoint if container is None else checkpoint[container]
    tensors = OrderedDict((k, v) for k, v in state.items() if isinstance(v, Tensor))
    if not tensors:
        raise CheckpointMismatchError(
            'no tensors found in the checkpoint; expected a state dict, or one under any of '
            f'{list(_CONTAINER_KEYS)}; top-level keys are {sorted(checkpoint)[:10]}')
    if all(k.startswith('module.') for k in tensors):
        tensors = OrderedDict((k[len('module.'):], v) for k, v in tensors.items())
    return tensors


def strip_prefix(state_dict: Mapping[str, Tensor], prefix: str) -> 'OrderedDict[str, Tensor]':
    """Keep the entries under ``prefix`` (e.g. ``'backbone.'``) with the prefix removed.

    If no key has the prefix, the dict is returned unchanged (a bare backbone state dict).
    """
    if not prefix or not any(k.startswith(prefix) for k in state_dict):
        return OrderedDict(state_dict)
    return OrderedDict((k[len(prefix):], v) for k, v in state_dict.items() if k.startswith(prefix))


def _summarise(keys: Sequence[str], limit: int = 12) -> str:
    keys = sorted(keys)
    more = f' ... (+{len(keys) - limit} more)' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def compare_state_dicts(
    expected: Mapping[str, Tensor],
    given: Mapping[str, Tensor],
    allowed_missing: Callable[[str], bool] = lambda k: False,
    ignored_unexpected: Callable[[str], bool] = lambda k: False,
) -> Tuple[List[str], List[str]]:
    """Check ``given`` against ``expected`` and raise :class:`CheckpointMismatchError` if it does
    not fit: any shape mismatch (naming both shapes), missing keys that are not allowed, or
    checkpoint keys the model has no place for (unless ``ignored_unexpected`` names them: a
    checkpoint with *more* tensors than the model is for another arch, e.g. more blocks).

    Returns ``(missing, ignored)``: the allowed-missing keys and the ignored checkpoint keys,
    for the caller to report.
    """
    shape_errors = [
        f'{k}: checkpoint {tuple(given[k].shape)} vs model {tuple(v.shape)}'
        for k, v in expected.items() if k in given and tuple(given[k].shape) != tuple(v.shape)
    ]
    missing = [k for k in expected if k not in given]
    extra = [k for k in given if k not in expected]
    ignored = [k for k in extra if ignored_unexpected(k)]
    unexpected = [k for k in extra if not ignored_unexpected(k)]
    bad_missing = [k for k in missing if not allowed_missing(k)]
    problems = []
    if shape_errors:
        problems.append(f'{len(shape_errors)} shape mismatch(es), e.g. the checkpoint is for '
                        'another arch or kernel size:\n  ' + '\n  '.join(shape_errors[:12]))
    if bad_missing:
        problems.append(f'{len(bad_missing)} key(s) missing from the checkpoint: '
                        f'{_summarise(bad_missing)}')
    if unexpected:
        problems.append(f'{len(unexpected)} checkpoint key(s) have no place in the model (a '
                        f'checkpoint of another arch, e.g. with more blocks): '
                        f'{_summarise(unexpected)}')
    if problems:
        raise CheckpointMismatchError('checkpoint does not fit the model:\n' + '\n'.join(problems),
                                      num_problems=len(shape_errors) + len(bad_missing)
                                      + len(unexpected))
    return missing, ignored


def load_state_dict_checked(module: nn.Module,
                            state_dict: Mapping[str, Tensor],
                            allowed_missing: Callable[[str], bool] = lambda k: False,
                            ignored_unexpected: Callable[[str], bool] = lambda k: False,
                            logger=None) -> Tuple[List[str], List[str]]:
    """Load ``state_dict`` into ``module`` after :func:`compare_state_dicts`; report the rest.

    Nothing is loaded if the check fails, so a model is never left half-initialised from a
    checkpoint that does not fit it.
    """
    expected = module.state_dict()
    missing, ignored = compare_state_dicts(expected, state_dict, allowed_missing,
                                           ignored_unexpected)
    module.load_state_dict({k: v for k, v in state_dict.items() if k in expected}, strict=False)
    if logger is not None:
        logger.info(f'loaded {len(expected) - len(missing)}/{len(expected)} tensors from '
                    'checkpoint')
        if missing:
            logger.warning(f'keys kept at their initialisation (not in checkpoint): '
                           f'{_summarise(missing)}')
        if ignored:
            logger.info(f'checkpoint keys ignored as asked (no place in this module): '
                        f'{_summarise(ignored)}')
    return missing, ignored


def convert_to_mmlk(checkpoint: Mapping,
                    build_backbone: Callable[[Dict[str, Tensor], bool], nn.Module],
                    use_ema: bool = False,
                    head_renames: Mapping[str, str] = {'head.': 'head.fc.'},
                    ) -> 'OrderedDict[str, Tensor]':
    """Map an official checkpoint onto mmlk model keys, strictly.

    Two layouts are recognised:

    * an ImageNet file (raw, ``{'model': ...}`` or ``{'module': ...}``): backbone keys at top
      level and a classifier ``head.*``, renamed by ``head_renames`` (mmpretrain's
      ``head.fc.``);
    * a packed model (mmseg 0.x / mmdet 2.x, mmpretrain, mmlk): ``backbone.*`` plus head/neck
      keys, which pass through unchanged (OpenMMLab 2.x kept the UPerHead/FCNHead/FPN/RoI-head
      parameter names).

    ``build_backbone(backbone_state, is_classifier)`` returns the mmlk backbone the checkpoint
    should fit; its ``convert_official_keys`` renames backbone keys, and every one of its
    tensors must then be found with the same shape, and every backbone tensor of the checkpoint
    must have a place in it, else :class:`CheckpointMismatchError` names the keys and both
    shapes (a checkpoint with more blocks than the arch is refused, not cut down). The result
    loads into an ``ImageClassifier`` or, through a ``Pretrained`` init with
    ``prefix='backbone.'``, into any detector or segmentor.

    Returns the converted state dict.
    """
    state = unwrap_state_dict(checkpoint, use_ema=use_ema)
    if any(k.startswith('backbone.') for k in state):
        body = strip_prefix(state, 'backbone.')
        others = OrderedDict((k, v) for k, v in state.items() if not k.startswith('backbone.'))
    else:
        others = OrderedDict()
        for key, value in state.items():
            for old, new in head_renames.items():
                if key.startswith(old):
                    others[new + key[len(old):]] = value
                    break
        body = OrderedDict((k, v) for k, v in state.items()
                           if not k.startswith(tuple(head_renames)))
    backbone = build_backbone(body, any(k.startswith('head.') for k in others))
    body = backbone.convert_official_keys(body)
    compare_state_dicts(backbone.state_dict(), body)
    converted = OrderedDict(('backbone.' + k, v) for k, v in body.items())
    converted.update(others)
    return converted
