"""Test-only hook for tests/test_distributed.py: every rank writes what the tests compare
(imported by the test configs through ``custom_imports``; ``tests/`` is on PYTHONPATH there).

``rank{r}.pth`` in the work dir holds the rank's parameters, its sparse masks, its KW
temperatures, its per-iteration local losses, and for each mask update of
``mmlk.SparseTrainingHook`` the (unit-reduced) gradient the update saw and the masks it
computed *before* they were broadcast from rank 0.
"""
import os.path as osp

import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmlk.registry import HOOKS


@HOOKS.register_module()
class RankStateProbe(Hook):
    priority = 'LOWEST'  # before_train after SparseTrainingHook has built its engine

    def before_train(self, runner) -> None:
        self.updates, self.losses = [], []
        sparse = next((h for h in runner.hooks if type(h).__name__ == 'SparseTrainingHook'),
                      None)
        engine = getattr(sparse, 'engine', None)
        if engine is None:
            return
        original = engine.update

        def update(optimizer=None):
            record = dict(
                step=engine.step,
                grads={t.name: t.reduce(t.param.grad.detach()).clone()
                       for t in engine.targets if t.param.grad is not None},
                before={t.name: t.mask.clone() for t in engine.targets})
            result = original(optimizer)
            record['after'] = {t.name: t.mask.clone() for t in engine.targets}
            self.updates.append(record)
            return result

        engine.update = update

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.losses.append(float(outputs['loss']))

    def after_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        sparse = next((h for h in runner.hooks if type(h).__name__ == 'SparseTrainingHook'),
                      None)
        engine = getattr(sparse, 'engine', None)
        torch.save(dict(
            world_size=get_world_size(),
            wrapped=type(runner.model).__name__,
            params={n: p.detach().clone() for n, p in model.named_parameters()},
            masks={t.name: t.mask.clone() for t in engine.targets} if engine else {},
            temperatures=[float(m.temperature) for m in model.modules()
                          if type(m).__name__ == 'KWAttention'],
            updates=self.updates, losses=self.losses),
            osp.join(runner.work_dir, f'rank{get_rank()}.pth'))
