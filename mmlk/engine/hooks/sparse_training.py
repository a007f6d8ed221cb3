"""Dynamic sparse training (SLaK, ICLR 2023) as an mmengine hook, for any model."""
import copy
import logging
import math
import re
from collections import defaultdict
from typing import Dict, Optional, Sequence

import torch
from mmengine.dist import broadcast
from mmengine.hooks import Hook

from mmlk.compat import register_step_post_hook
from mmlk.core.validation import as_patterns, check_range
from mmlk.registry import HOOKS
from mmlk.sparsity import SparseEngine, check_sparse_options, select_sparse_targets

from ..model_wrappers import unwrap_model

__all__ = ['SparseTrainingHook']

CHECKPOINT_KEY = 'sparse_training'


def _loads_weights(runner) -> bool:
    """Whether this run starts from loaded weights: ``load_from``, or a ``Pretrained``
    ``init_cfg`` anywhere in the model."""
    if runner.cfg.get('load_from'):
        return True
    model = unwrap_model(runner.model)
    for module in model.modules():
        init_cfg = getattr(module, 'init_cfg', None)
        for cfg in init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]:
            if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
                return True
    return False


@HOOKS.register_module()
class SparseTrainingHook(Hook):
    """Train the conv/linear weights of any mmdet, mmseg or mmpretrain model sparse.

    SLaK's recipe: ``sparsity=0.4, init='snip', growth='random'``, ``prune_rate`` 0.5 and
    ``update_interval`` 2000 for SLaK-T (0.3 / 100 for S and B), the prune rate decaying by a
    cosine to 0.005 over training. ``frozen=True`` is the official downstream mode: the zero
    pattern of the loaded (sparse ImageNet) weights becomes a fixed mask.

    Masks are applied after every *real* optimizer step through an optimizer step post-hook,
    so they hold with gradient accumulation, AMP (GradScaler skips the step, and with it the
    hook, on overflow), momentum and decoupled weight decay. Masks and the step counter are
    saved in checkpoints (``checkpoint['sparse_training']``) and restored on resume; the
    pruned weights are exactly zero in the saved state dict, so a checkpoint loads as the sparse
    model without this hook. Mask changes are broadcast from rank 0, and every random draw is
    seeded by (seed, step, layer), so all ranks agree.

    Logged: ``train/sparsity`` (overall), ``train/sparsity_<group>`` per stage,
    ``train/prune_rate``, ``train/num_pruned``, ``train/num_grown``; per-layer sparsity is
    written to the log at initialisation and at every update.

    Args:
        sparsity: global fraction of zero weights among the selected ones.
        init: ``'snip'`` (one batch of gradients gives the layer-wise densities), ``'ERK'``,
            ``'uniform'``, or ``'dense_pattern'`` (masks = the non-zeros of the loaded weights,
            then updated as usual: the official ``--sparse_init resume``).
        growth: ``'random'`` or ``'gradient'`` (largest dense gradient magnitude).
        prune_rate: initial fraction of active weights exchanged per update.
        update_interval: optimizer steps between prune/grow updates.
        final_prune_rate: end value of the cosine decay.
        total_steps: optimizer steps of the cosine; default: the run's iterations divided by
            the gradient-accumulation count.
        scope: ``'backbone'`` or ``'model'`` (every layer, head included, as the official
            ImageNet engine).
        only_large_kernels, include, exclude: parameter selection, see
            :func:`mmlk.sparsity.select_sparse_targets`.
        tie, tie_every: parallel copies sharing one mask (ShiftwiseConv's N_path tile convs and
            its ``--sparse_gap``), see :class:`~mmlk.sparsity.SparseEngine`.
        block_shapes: ``{regex: block_shape}`` for structured (group) sparsity: one mask bit
            per block, blocks scored by their L1 norm.
        frozen: keep the zero pattern of the initial weights fixed (no updates).
        dense_threshold: layers at least this dense after initialisation stay dense.
        seed: base seed of the random draws; default: the run's ``randomness.seed`` (0 if
            the run has none), so runs with other seeds draw other masks.
        regrow_just_pruned: True (official): growth picks among all zeros of the pruned mask,
            so a unit pruned in the same update can come back with its value; False: only
            among units inactive before the update. See
            :class:`~mmlk.sparsity.SparseEngine`.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self,
                 sparsity: float = 0.4,
                 init: str = 'snip',
                 growth: str = 'random',
                 prune_rate: float = 0.3,
                 update_interval: int = 100,
                 final_prune_rate: float = 0.005,
                 total_steps: Optional[int] = None,
                 scope: str = 'backbone',
                 only_large_kernels: bool = False,
                 include: Optional[Sequence[str]] = None,
                 exclude: Optional[Sequence[str]] = None,
                 block_shapes: Optional[Dict[str, Sequence[int]]] = None,
                 frozen: bool = False,
                 dense_threshold: float = 0.99,
                 seed: Optional[int] = None,
                 tie: Sequence[str] = (),
                 tie_every: int = 1,
                 regrow_just_pruned: bool = True) -> None:
        self.engine_args = dict(
            sparsity=sparsity, init='dense_pattern' if frozen else init, growth=growth,
            prune_rate=prune_rate, update_interval=0 if frozen else update_interval,
            final_prune_rate=final_prune_rate, dense_threshold=dense_threshold, seed=seed,
            tie=as_patterns(tie, 'tie'), tie_every=tie_every, regrow_just_pruned=regrow_just_pruned)
        # Fail on bad values when the config is built, not after the data has loaded.
        check_sparse_options(init, growth, sparsity, prune_rate, final_prune_rate,
                             0 if frozen else update_interval, regrow_just_pruned, tie_every)
        if seed is not None:
            check_range(seed, 'seed', integer=True)
        if total_steps is not None:
            check_range(total_steps, 'total_steps', 1, integer=True)
        # Validated here too, so that include='pwconv' is one pattern from the start.
        include, exclude = as_patterns(include, 'include'), as_patterns(exclude, 'exclude')
        self.total_steps = total_steps
        self.selection = dict(scope=scope, only_large_kernels=only_large_kernels,
                              include=include, exclude=exclude, block_shapes=block_shapes)
        self.frozen = frozen
        self.engine: Optional[SparseEngine] = None
        self._saved_state: Optional[dict] = None
        self._handle = None
        self._runner = None
        self._scalars: Optional[dict] = None

    # ------------------------------------------------------------------ set-up
    def before_train(self, runner) -> None:
        model = unwrap_model(runner.model)
        targets = select_sparse_targets(model, **self.selection)
        total = self.total_steps
        if total is None:
            accumulate = getattr(runner.optim_wrapper, '_accumulative_counts', 1) or 1
            total = math.ceil(runner.max_iters / accumulate)
        args = dict(self.engine_args)
        if args['seed'] is None:
            args['seed'] = runner.seed if runner.seed is not None else 0
        self.engine = SparseEngine(targets, total_steps=total, **args)
        if self._saved_state is not None:
            self.engine.load_state_dict(self._saved_state)
            self.engine.apply()
            how = f'restored from the checkpoint at optimizer step {self.engine.step}'
        elif self.frozen and all(
                float((t.param != 0).float().mean()) >= self.engine.dense_threshold
                for t in targets):
            # Downstream configs freeze the zero pattern of sparse ImageNet weights; trained
            # from scratch or from dense weights there is no pattern (a random init has only
            # the odd exact zero), and training is dense.
            # A warning only where weights were loaded (they were expected to be sparse); a
            # run from scratch (the demos) trains dense as intended: one info line.
            level = logging.WARNING if _loads_weights(runner) else logging.INFO
            runner.logger.log(level, 'SparseTrainingHook(frozen=True): the initial weights are '
                                     'dense (no sparse checkpoint loaded); training dense.')
            self.engine = None
            return
        else:
            scores = self._snip_scores(runner, model, targets) \
                if self.engine.init == 'snip' else None
            self.engine.init_masks(scores)
            how = f'initialised ({self.engine.init})'
        self._sync()
        optimizer = runner.optim_wrapper.optimizer
        # through compat: on torch 2.1 a torch.compile/export anywhere in the process would
        # otherwise silence the hook, and the masks would stop being applied
        self._handle = register_step_post_hook(optimizer, self._after_optimizer_step)
        self._runner = runner
        runner.logger.info(
            f'SparseTrainingHook: masks {how}; {len(self.engine.targets)} sparse layers, '
            f'overall sparsity {self.engine.overall_sparsity():.4f}; '
            + ('frozen pattern' if self.frozen else
               f'update every {self.engine.update_interval} of {total} optimizer steps'))
        self._log(runner, layers=True)

    @staticmethod
    def _snip_scores(runner, model, targets):
        """``|w * dL/dw|`` from one training batch on a copy of the model (SNIP), so the real
        model's BN statistics and gradients are untouched."""
        probe = copy.deepcopy(model)
        probe.train()
        # Index the dataset directly: iterating the loader again would draw from the
        # InfiniteSampler generator that the train loop already consumes.
        loader = runner.train_dataloader
        size = min(loader.batch_size or 1, len(loader.dataset))
        batch = loader.collate_fn([loader.dataset[i] for i in range(size)])
        data = probe.data_preprocessor(batch, True)
        losses = probe._run_forward(data, mode='loss')
        loss, _ = probe.parse_losses(losses)
        loss.backward()
        params = dict(probe.named_parameters())
        scores = []
        for t in targets:
            p = params[t.name]
            grad = p.grad if p.grad is not None else torch.zeros_like(p)
            scores.append((p.detach() * grad).abs())
        return scores

    def _sync(self) -> None:
        self.engine.broadcast_masks(lambda tensor: broadcast(tensor, src=0))
        self.engine.apply()

    # ------------------------------------------------------------------ every optimizer step
    def _after_optimizer_step(self, optimizer, args, kwargs) -> None:
        if self.engine.on_optimizer_step(optimizer):
            self._sync()
            runner = self._runner
            update = self.engine.last_update
            runner.logger.info(
                f'SparseTrainingHook: update at optimizer step {self.engine.step}: pruned '
                f'{update["num_pruned"]}, grown {update["num_grown"]}, prune rate '
                f'{update["prune_rate"]:.4f}, sparsity {self.engine.overall_sparsity():.4f}')
            self._log(runner, layers=True)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if self.engine is not None:
            self._log(runner, layers=False)

    def _log(self, runner, layers: bool) -> None:
        """Push the scalars every iteration; recount masks only when they changed (``layers``),
        since summing every mask costs as much as applying them."""
        if layers or self._scalars is None:
            groups = defaultdict(lambda: [0, 0])
            for t in self.engine.targets:
                match = re.search(r'stages\.(\d+)', t.name)
                group = groups[f'stage{match.group(1)}' if match else 'other']
                group[0] += t.num_units - int(t.mask.sum())
                group[1] += t.num_units
            self._scalars = {f'train/sparsity_{name}': zeros / total
                             for name, (zeros, total) in sorted(groups.items())}
            self._scalars['train/sparsity'] = self.engine.overall_sparsity()
            for key in ('num_pruned', 'num_grown'):
                self._scalars[f'train/{key}'] = self.engine.last_update.get(key, 0)
        hub = runner.message_hub
        for key, value in self._scalars.items():
            hub.update_scalar(key, value)
        hub.update_scalar('train/prune_rate', self.engine.prune_rate)
        if layers:
            text = ', '.join(f'{n}: {s:.3f}' for n, s in self.engine.layer_sparsity().items())
            runner.logger.info(f'SparseTrainingHook: per-layer sparsity: {text}')

    def after_train(self, runner) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    # ------------------------------------------------------------------ checkpoints
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.engine is not None:
            checkpoint[CHECKPOINT_KEY] = self.engine.state_dict()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # Only a resumed run continues the saved masks and schedule; a checkpoint used as
        # ``load_from`` initialisation (or for testing) is just weights.
        if runner._resume and CHECKPOINT_KEY in checkpoint:
            self._saved_state = checkpoint[CHECKPOINT_KEY]
