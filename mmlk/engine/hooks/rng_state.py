"""Bitwise-exact resume: every random number generator's state goes into the checkpoint."""
import random
from typing import List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.runner import IterBasedTrainLoop

from mmlk.registry import HOOKS

__all__ = ['RNGStateHook', 'capture_rng_state', 'restore_rng_state']

CHECKPOINT_KEY = 'rng_state'


def capture_rng_state() -> dict:
    """The global python, numpy, torch CPU and (initialised) CUDA generator states."""
    state = dict(python=random.getstate(), numpy=np.random.get_state(),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


class _RestoreBeforeNextBatch:
    """Wraps the iteration loop's data iterator: lets the loop's own skip of the ``skip``
    already-trained batches through, then restores the generators just before the first new
    batch is loaded (with ``num_workers=0`` the transforms draw from the main process's
    generators, so restoring before the skip would let the replayed batches consume them)."""

    def __init__(self, loop, skip: int, state: dict) -> None:
        self._loop, self._iterator, self._skip, self._state = loop, loop.dataloader_iterator, \
            skip, state

    def __iter__(self):
        return self

    def __next__(self):
        if self._skip == 0:
            restore_rng_state(self._state)
            self._loop.dataloader_iterator = self._iterator  # done: unwrap
        else:
            self._skip -= 1
        return next(self._iterator)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Make ``--resume`` continue a run bitwise: weights, EMA, masks and optimizer state at
    iteration N of a resumed run equal those of the uninterrupted run.

    mmengine's checkpoints hold the seed but not the generators' states, so everything random
    after a resume (drop path, Mixup/CutMix, random crops, random mask growth seeded from the
    global generator...) draws other numbers than the uninterrupted run. This hook

    * captures the python/numpy/torch(/CUDA) states at the end of every training iteration and
      epoch (where the checkpoint hook saves; one state per rank, gathered under DDP) and saves
      them as ``checkpoint['rng_state']``;
    * on resume restores each rank's state exactly where the uninterrupted run would continue:
      for iteration loops after mmengine has skipped the trained batches and before the next
      batch is loaded, for epoch loops before the next epoch's data loader starts;
    * makes validation neutral: the states are put back after every validation, so a run that
      validates draws the same training randomness as one that resumes between validations.

    Exact for ``num_workers=0`` and for workers seeded by ``randomness.seed`` (mmengine's
    ``worker_init_fn``); an epoch-based run resumed from a mid-epoch checkpoint restarts that
    epoch (mmengine's behaviour) and is not exact: a warning says so.
    """

    priority = 'VERY_HIGH'  # capture before the checkpoint hook (VERY_LOW) saves

    def __init__(self) -> None:
        self._captured: Optional[List[dict]] = None
        self._pending: Optional[List[dict]] = None
        self._before_val: Optional[dict] = None

    # ------------------------------------------------------------------ capture and save
    def _capture(self) -> None:
        state = capture_rng_state()
        self._captured = all_gather_object(state) if get_world_size() > 1 else [state]

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._capture()

    def after_train_epoch(self, runner) -> None:
        self._capture()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = self._captured or [capture_rng_state()]

    # ------------------------------------------------------------------ validation is neutral
    def before_val(self, runner) -> None:
        self._before_val = capture_rng_state()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            restore_rng_state(self._before_val)
            self._before_val = None

    # ------------------------------------------------------------------ resume
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not runner._resume:
            return
        states = checkpoint.get(CHECKPOINT_KEY)
        if states is None:
            runner.logger.warning('RNGStateHook: the checkpoint holds no generator states (saved '
                                  'without this hook): the resumed run is not bitwise the '
                                  'uninterrupted one.')
            return
        world = get_world_size()
        if len(states) != world:
            runner.logger.warning(f'RNGStateHook: the checkpoint has generator states of '
                                  f'{len(states)} process(es), this run has {world}: resuming '
                                  'with the states of rank 0 (not exact).')
            states = [states[0]] * world
        self._pending = states

    def before_train(self, runner) -> None:
        if self._pending is None:
            return
        loop, state = runner.train_loop, self._pending[get_rank()]
        if isinstance(loop, IterBasedTrainLoop):
            loop.dataloader_iterator = _RestoreBeforeNextBatch(loop, loop.iter, state)
            self._pending = None

    def before_train_epoch(self, runner) -> None:
        if self._pending is None:
            return
        loop = runner.train_loop
        per_epoch = len(loop.dataloader)
        if runner.iter != runner.epoch * per_epoch:
            runner.logger.warning(
                f'RNGStateHook: resumed from a mid-epoch checkpoint (iteration {runner.iter}, '
                f'epoch {runner.epoch} of {per_epoch} iterations): mmengine restarts the epoch, '
                'so this run is not bitwise the uninterrupted one. Save epoch-based runs at '
                'epoch ends (checkpoint by_epoch=True) for an exact resume.')
        restore_rng_state(self._pending[get_rank()])
        self._pending = None
