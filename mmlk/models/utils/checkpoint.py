"""Reading official checkpoints: one place for container unwrapping and key reporting.

Official large-kernel checkpoints are ``{'model': ..., 'optimizer': ..., 'args': Namespace}``
(ConvNeXt/SLaK/RepLKNet training scripts), mmseg/mmdet ones are ``{'state_dict': ...}`` with a
``backbone.`` prefix, DDP ones carry ``module.``. mmengine's ``Pretrained`` init only unwraps
``state_dict`` and loads with ``strict=False``, so an official file would load *nothing* with
only a warning. Everything here refuses to do that.
"""
import os
from collections import OrderedDict
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

__all__ = [
    'CheckpointMismatchError', 'load_checkpoint_file', 'unwrap_state_dict', 'strip_prefix',
    'compare_state_dicts', 'load_state_dict_checked', 'convert_to_mmlk'
]

_CONTAINER_KEYS = ('state_dict', 'model', 'model_ema', 'module')


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model: wrong keys or wrong shapes."""


def load_checkpoint_file(path: str) -> dict:
    """``torch.load`` a local checkpoint on CPU, including official files that pickle
    ``argparse.Namespace`` (which ``weights_only=True`` rejects)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}')
    return torch.load(path, map_location='cpu', weights_only=False)


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
    if use_ema and 'model_ema' in checkpoint:
        state = checkpoint['model_ema']
    else:
        state = checkpoint
        for key in _CONTAINER_KEYS:
            if key in checkpoint and isinstance(checkpoint[key], Mapping):
                state = checkpoint[key]
                break
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
    not fit: any shape mismatch (naming both shapes), or missing keys that are not allowed.

    Returns ``(missing, unexpected)``: the allowed-missing keys and the unexpected keys that
    were not ignored, for the caller to report.
    """
    shape_errors = [
        f'{k}: checkpoint {tuple(given[k].shape)} vs model {tuple(v.shape)}'
        for k, v in expected.items() if k in given and tuple(given[k].shape) != tuple(v.shape)
    ]
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected and not ignored_unexpected(k)]
    bad_missing = [k for k in missing if not allowed_missing(k)]
    problems = []
    if shape_errors:
        problems.append(f'{len(shape_errors)} shape mismatch(es), e.g. the checkpoint is for '
                        'another arch or kernel size:\n  ' + '\n  '.join(shape_errors[:12]))
    if bad_missing:
        problems.append(f'{len(bad_missing)} key(s) missing from the checkpoint: '
                        f'{_summarise(bad_missing)}')
    if problems:
        if unexpected:
            problems.append(f'{len(unexpected)} unexpected key(s) in the checkpoint: '
                            f'{_summarise(unexpected)}')
        raise CheckpointMismatchError('checkpoint does not fit the model:\n' + '\n'.join(problems))
    return missing, unexpected


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
    missing, unexpected = compare_state_dicts(expected, state_dict, allowed_missing,
                                              ignored_unexpected)
    module.load_state_dict({k: v for k, v in state_dict.items() if k in expected}, strict=False)
    if logger is not None:
        logger.info(f'loaded {len(expected) - len(missing)}/{len(expected)} tensors from checkpoint')
        if missing:
            logger.warning(f'keys kept at their initialisation (not in checkpoint): '
                           f'{_summarise(missing)}')
        if unexpected:
            logger.warning(f'unused checkpoint keys: {_summarise(unexpected)}')
    return missing, unexpected


def convert_to_mmlk(checkpoint: Mapping,
                    build_backbone: Callable[[Dict[str, Tensor], bool], nn.Module],
                    use_ema: bool = False,
                    head_renames: Mapping[str, str] = {'head.': 'head.fc.'},
                    ) -> Tuple['OrderedDict[str, Tensor]', List[str]]:
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
    tensors must then be found with the same shape, else :class:`CheckpointMismatchError` names
    the keys and both shapes. The result loads into an ``ImageClassifier`` or, through a
    ``Pretrained`` init with ``prefix='backbone.'``, into any detector or segmentor.

    Returns ``(converted, unused_keys)``; unused backbone keys are reported, never written.
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
    _, unexpected = compare_state_dicts(backbone.state_dict(), body)
    converted = OrderedDict(
        ('backbone.' + k, v) for k, v in body.items() if k not in set(unexpected))
    converted.update(others)
    return converted, unexpected
