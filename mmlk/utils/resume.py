"""Resuming a training run: which checkpoint, with which seed, and one run per work dir."""
import contextlib
import fcntl
import glob
import os
import os.path as osp
import zipfile
from typing import Optional

from mmengine.config import Config
from mmengine.logging import print_log

from mmlk.core.checkpoint_io import (CheckpointReadError, check_checkpoint_file,
                                     load_local_checkpoint)

__all__ = [
    'WorkDirBusyError', 'resolve_resume_checkpoint', 'use_seed_of_checkpoint', 'work_dir_lock'
]


def resolve_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` (without a path) continues from: the one ``last_checkpoint``
    names if it is complete, else the newest complete ``*.pth`` in ``work_dir`` (saying so);
    None if the work dir holds no checkpoint at all. A truncated, corrupted or missing file is
    never chosen, and a work dir that holds checkpoint files none of which is complete raises
    :class:`~mmlk.core.checkpoint_io.CheckpointReadError` instead of silently training from the
    start. Only files of ``work_dir`` are used: a ``last_checkpoint`` naming a file in another
    directory (a copied work dir) resumes from this directory's file of that name, or stops
    with the path so that the user can pass it explicitly."""
    candidates = []
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip()
        if named and osp.realpath(osp.dirname(osp.abspath(named))) != osp.realpath(work_dir):
            local = osp.join(work_dir, osp.basename(named))
            if not osp.isfile(local):
                raise CheckpointReadError(
                    f'--resume: {pointer} names {named}, which is outside the work dir '
                    f'{work_dir} (was the work dir copied or moved?). Resume from it explicitly '
                    f'with --resume {named}, or run in its own work dir.')
            print_log(f'--resume: {pointer} names {named}, outside this work dir; using this '
                      f'work dir\'s {local}', logger='current', level=30)
            named = local
        if named:
            candidates.append(named)
    candidates += sorted(glob.glob(osp.join(work_dir, '*.pth')), key=osp.getmtime, reverse=True)
    rejected = []
    for index, path in enumerate(candidates):
        try:
            check_checkpoint_file(path)
        except (FileNotFoundError, CheckpointReadError) as err:
            print_log(f'not resuming from {path}: {err}', logger='current', level=30)
            rejected.append(f'{path} ({err})')
            continue
        if index > 0 and candidates[0] != path:
            print_log(f'resuming from {path}, the newest complete checkpoint in {work_dir}',
                      logger='current', level=30)
        return path
    partial = glob.glob(osp.join(work_dir, '.*.partial-*'))
    if rejected or partial:
        raise CheckpointReadError(
            f'--resume: {work_dir} holds checkpoint files but none is complete; refusing to '
            'train from the start over them:\n  ' + '\n  '.join(rejected + partial) +
            '\nPass --resume PATH to choose one, or move them away (or use another '
            '--work-dir) to start a new run.')
    return None


def use_seed_of_checkpoint(cfg: Config, path: str) -> None:
    """Resume with the seed the checkpoint was trained with (``randomness.seed``).

    mmengine builds the data samplers (their shuffling seed) and the workers' ``worker_init_fn``
    from the run's seed *before* it reads the checkpoint; without a fixed seed in the config
    every run draws a new one, so a resumed run shuffles its data differently. Setting the seed
    before the Runner exists is what makes ``--resume`` exact (with ``mmlk.RNGStateHook``).
    Reads the checkpoint memory-mapped (tensors are not copied) through the one loader, so a
    file that is corrupted or runs code stops here, before the Runner is built.
    """
    # legacy (non-zip) files cannot be memory-mapped; read errors name the file either way
    mmap = dict(mmap=True) if zipfile.is_zipfile(path) else {}
    checkpoint = load_local_checkpoint(path, 'cpu', **mmap)
    meta = checkpoint.get('meta', {}) if isinstance(checkpoint, dict) else {}
    seed = meta.get('seed') if isinstance(meta, dict) else None
    if seed is None:
        return
    randomness = cfg.get('randomness') or {}
    if randomness.get('seed') not in (None, seed):
        print_log(f'resuming with the seed of {path} ({seed}), not the config\'s '
                  f'randomness.seed={randomness["seed"]}', logger='current', level=30)
    cfg.randomness = dict(randomness, seed=seed)


class WorkDirBusyError(RuntimeError):
    """Another training run holds the work dir."""


def _launch_rank() -> int:
    """This process's rank from the launcher's variables (0 without a launcher)."""
    for name in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):
        if os.environ.get(name, '').isdigit():
            return int(os.environ[name])
    return 0


@contextlib.contextmanager
def work_dir_lock(work_dir: str):
    """Hold an exclusive lock on ``work_dir`` for a training run (rank 0 takes it).

    Two runs writing one work dir overwrite each other's checkpoints and ``last_checkpoint``;
    the second one is refused with the first one's pid. The lock is ``flock`` on
    ``<work_dir>/.mmlk-train.lock``: the kernel drops it when its process dies, ``kill -9``
    included, so a crashed run never leaves the work dir locked.
    """
    if _launch_rank() != 0:
        yield
        return
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, '.mmlk-train.lock')
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors='replace').strip() or 'unknown'
            raise WorkDirBusyError(
                f'{work_dir} is in use by another training run (pid {holder}); two runs in one '
                'work dir would overwrite each other\'s checkpoints. Wait for it, stop it, or '
                'pass another --work-dir.') from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
