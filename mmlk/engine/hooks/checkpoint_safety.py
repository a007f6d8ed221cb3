"""Checkpoints that are never half-loaded and never half-written.

mmengine's Runner loads ``load_from`` / ``--resume`` / ``tools/test.py`` checkpoints with
``strict=False``: a checkpoint of another model evaluates a randomly initialised one with a
warning, an official ``{'model': ...}`` file loads nothing. And its ``CheckpointHook`` writes
``iter_N.pth`` in place, so a crash during the save leaves a truncated file under a checkpoint
name. The two hooks here close both holes; mmlk's tools install them in every config.
"""
import logging
import os.path as osp
import re
from typing import Callable, List, Optional, Sequence, Tuple, Union

from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook, Hook

from mmlk.core.checkpoint_io import (CheckpointMismatchError, atomic_write_bytes,
                                          compare_state_dicts, state_dict_container)
from mmlk.core.validation import as_patterns
from mmlk.registry import HOOKS

from ..model_wrappers import unwrap_model

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'StrictLoadHook', 'checkpoint_being_loaded'
]

ATOMIC_BACKEND = 'mmlk_atomic_local'


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic ``put``/``put_text``: write a temporary file in
    the same directory, fsync, rename (:func:`mmlk.core.checkpoint_io.atomic_write_bytes`)."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write_bytes(obj, str(filepath))

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write_bytes(obj.encode(encoding), str(filepath))


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


class _DeferredRemovals:
    """A file backend whose ``remove``/``rmtree`` are recorded instead of done."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self.pending: List[Tuple[str, str]] = []

    def __getattr__(self, name: str):
        return getattr(self._backend, name)

    def remove(self, filepath) -> None:
        self.pending.append(('remove', str(filepath)))

    def rmtree(self, dir_path) -> None:
        self.pending.append(('rmtree', str(dir_path)))


class _DropMessages(logging.Filter):
    """Drops log records whose message starts with one of ``prefixes``."""

    def __init__(self, *prefixes: str) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` (same arguments, same files) whose checkpoints, best
    checkpoints and ``last_checkpoint`` pointer are written atomically when they go to a local
    directory: a crash or ``kill -9`` during a save leaves the previous checkpoint and pointer
    intact and never a partial file under a checkpoint name. Remote ``out_dir`` (``s3://``...)
    and explicit ``backend_args`` are left to their own backends.

    mmengine deletes the oldest checkpoint (``max_keep_ckpts``) and the previous best
    (``save_best``) *before* it writes the new one; here those deletions wait until the new
    file is in place and ``last_checkpoint`` names it, so a kill or a full disk during a save
    never leaves the work dir without a complete checkpoint. (A kill right after the new file
    landed can leave one old file more than ``max_keep_ckpts``; never one less.)
    """
    _quiet = _DropMessages('"FileClient" will be deprecated', '"HardDiskBackend" is the alias')

    def before_train(self, runner) -> None:
        out_dir = self.out_dir if self.out_dir is not None else runner.work_dir
        if (self.backend_args is None and self.file_client_args is None
                and '://' not in str(out_dir)):
            self.backend_args = dict(backend=ATOMIC_BACKEND)
        # mmengine 0.10's CheckpointHook and save_checkpoint build a FileClient they never use
        # when file_client_args is None (kept "until MMEngine 1.0"), which logs deprecation
        # warnings no user can act on; with file_client_args given they stay (the user's then).
        if self.file_client_args is None:
            runner.logger.addFilter(self._quiet)
        super().before_train(runner)

    def after_run(self, runner) -> None:
        runner.logger.removeFilter(self._quiet)
        super().after_run(runner)

    def _removing_after(self, save: Callable[[], None]) -> None:
        """Run mmengine's ``save`` with its file removals deferred until it has returned: if
        the save fails (a full disk, a kill), the old and best files stay."""
        backend = self.file_backend
        deferred = _DeferredRemovals(backend)
        self.file_backend = deferred
        try:
            save()
        finally:
            self.file_backend = backend
        for operation, path in deferred.pending:
            if operation == 'remove' and backend.isfile(path):
                backend.remove(path)
            elif operation == 'rmtree' and backend.isdir(path):
                backend.rmtree(path)

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        def save() -> None:
            super(AtomicCheckpointHook, self)._save_checkpoint_with_step(runner, step, meta)
            # mmengine rewrote the pointer in place; make the final content land atomically
            # (a reader that finds it broken falls back to the newest readable checkpoint
            # anyway: mmlk.utils.resolve_resume_checkpoint).
            if is_main_process():
                atomic_write_bytes(str(self.last_ckpt).encode(),
                                   osp.join(runner.work_dir, 'last_checkpoint'))
        self._removing_after(save)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        self._removing_after(lambda: super(AtomicCheckpointHook, self)._save_best_checkpoint(
            runner, metrics))


def checkpoint_being_loaded(runner) -> str:
    """The file the Runner is loading: the resume target, else ``load_from``."""
    from mmengine.runner import find_latest_checkpoint
    if runner._resume and runner._load_from is None:
        return str(find_latest_checkpoint(runner.work_dir))
    return str(runner._load_from)


@HOOKS.register_module()
class StrictLoadHook(Hook):
    """Refuse a ``load_from``/``--resume``/test checkpoint that does not fit the model.

    Runs on the loaded checkpoint before the Runner copies it into the model: every model
    tensor must be in ``checkpoint['state_dict']`` with the same shape, and every checkpoint
    tensor must have a place in the model, except those matching a regular expression of
    ``ignore_keys`` (the explicit partial load). Otherwise the run stops with the key/shape
    report, naming the file; an official training-script file (``{'model': ...}``) is told
    which converter to run.

    Args:
        ignore_keys: regular expressions of checkpoint keys to leave out of the check (they
            are then loaded where they fit and dropped where they do not, as mmengine does).
        allow_missing: regular expressions of model keys the checkpoint may lack (they keep
            their initialisation).
    """

    priority = 'HIGHEST'

    def __init__(self, ignore_keys: Union[str, Sequence[str]] = (),
                 allow_missing: Union[str, Sequence[str]] = ()) -> None:
        self.ignore_keys = [re.compile(p) for p in as_patterns(ignore_keys, 'ignore_keys')]
        self.allow_missing = [re.compile(p) for p in as_patterns(allow_missing, 'allow_missing')]

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        path = checkpoint_being_loaded(runner)
        model = unwrap_model(runner.model)
        if not isinstance(checkpoint.get('state_dict'), dict):
            raise CheckpointMismatchError(
                f'{path} is not an mmengine checkpoint (it has no state_dict; top-level keys: '
                f'{sorted(checkpoint)[:8]}).' + self._conversion_hint(model, checkpoint))
        state = checkpoint['state_dict']
        if state and all(k.startswith('module.') for k in state):
            state = {k[len('module.'):]: v for k, v in state.items()}
        try:
            compare_state_dicts(
                model.state_dict(), state,
                allowed_missing=lambda k: any(p.search(k) for p in self.allow_missing),
                ignored_unexpected=lambda k: any(p.search(k) for p in self.ignore_keys))
        except CheckpointMismatchError as err:
            raise CheckpointMismatchError(
                f'{path} does not fit the model of this config; nothing was loaded.\n{err}\n'
                'To load only what fits, pass --non-strict to the tool (or set strict_load = '
                'False in the config, or list keys in StrictLoadHook(ignore_keys=...)).',
                num_problems=err.num_problems) from None

    @staticmethod
    def _conversion_hint(model, checkpoint: dict) -> str:
        converter: Optional[str] = getattr(getattr(model, 'backbone', None), 'converter', None)
        if state_dict_container(checkpoint) is None and not any(
                hasattr(v, 'shape') for v in checkpoint.values()):
            return ''
        if converter:
            return (f' It looks like an official checkpoint: convert it first with python '
                    f'{converter} SRC DST.')
        return ' It looks like an official checkpoint: convert it with tools/model_converters/.'

