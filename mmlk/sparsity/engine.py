"""Dynamic sparse training engine (SLaK's, made exact, rank-consistent and checkpointable).

Liu et al., ICLR 2023, train SLaK with the sparse-training schedule of their earlier work
(SET/ITOP/GraNet lineage): layer-wise densities from SNIP, ERK or uniform; every ``f``
optimizer steps each layer prunes its ``p * nnz`` smallest-magnitude active weights and grows
as many inactive ones (random or largest gradient); ``p`` follows a cosine from ``p0`` to
0.005 over training. This module is plain PyTorch (no Runner) so it can be driven and tested
directly; :class:`mmlk.engine.hooks.SparseTrainingHook` wires it into mmengine.

Differences from the official engine (``sparse_core.py``/``funcs.py``), all deliberate; the
growth rule itself (candidates, values of regrown units) is the official one by default:

* exact counts: initial masks keep exactly ``round(density * n)`` units per layer and growth
  adds exactly as many units as were pruned (the official code draws Bernoulli masks);
* a unit grown from long ago (inactive before the update) starts at zero with its optimizer
  state (momentum, Adam moments) reset; the official engine zeroes only SGD's momentum and
  keeps AdamW's stale moments for it. Growth itself follows the official
  ``truncate_weights``: the candidates are the zeros of the mask *after* pruning, so a unit
  pruned in this very update can be chosen again and then keeps its value and optimizer state
  (the mask is applied only after growth);
  ``regrow_just_pruned=False`` is mmlk's stricter variant, which grows only among units that
  were inactive before the update;
* a layer's pruned weights are exactly those of its mask; the official code re-derives the
  mask from ``|w|`` (masked entries are zero, so they sort first: the same set unless an active
  weight is exactly 0);
* masks are re-applied after every real optimizer step, AMP included (the official AMP path
  skips masking entirely), and are part of the checkpoint, with the step counter;
* randomness comes from a generator seeded by (seed, step, layer), so every rank draws the
  same masks; masks are broadcast from rank 0 after every change (the official code
  broadcasts every mask at every step), and gradient growth reads the all-reduced gradient;
* the step counter and the prune-rate schedule continue on resume (the official counter
  restarts at 0); the official ``>= 0.99`` dense-layer rule is kept and checkpointed;
* a layer whose initial density rounds to no unit keeps one (with a warning naming it): the
  official masks can cut a layer off for the whole run at high sparsity;
* scores are NaN-safe (NaN counts as 0, inf as the largest finite value), so a non-finite
  weight or gradient cannot grow an active unit or break the counts;
* a second granularity: ``block_shape`` makes one mask bit cover a block of weights (e.g. a
  whole ``k x k`` kernel tile), scored by the block's L1 norm; element masks are the case
  ``block_shape = (1, ..., 1)``.
"""
import math
import re
import warnings
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import Tensor

from mmlk.core.validation import as_patterns

from .schedule import allocate_densities, check_sparse_options, cosine_prune_rate
from .targets import SparseTarget

__all__ = ['SparseEngine']

def _smallest(values: Tensor, k: int) -> Tensor:
    """Indices of the ``k`` smallest values (1-D), ties at the threshold broken by index.

    ``topk`` breaks ties in an order that depends on the other values, and exact ties are
    common here (weights that never receive gradient stay 0, e.g. kernel taps that never
    overlap a small feature map), so floating-point noise elsewhere would change which tied
    units are pruned. A k-th value threshold plus index order is deterministic and linear-time
    (a full sort of SLaK-T's 50M weights took seconds per update).
    """
    if k <= 0:
        return values.new_zeros(0, dtype=torch.long)
    if k >= values.numel():
        return torch.arange(values.numel(), device=values.device)
    threshold = torch.kthvalue(values, k).values
    below = torch.nonzero(values < threshold).flatten()
    ties = torch.nonzero(values == threshold).flatten()[:k - below.numel()]
    return torch.cat([below, ties])


def _finite_scores(scores: Tensor) -> Tensor:
    """Non-negative unit scores with NaN as 0 and +inf as the largest finite value, so that
    the +-inf written over the ineligible units is the only infinity: a NaN or inf weight or
    gradient can then neither make :func:`_smallest` pick an ineligible unit (a pruned unit
    pruned again, an active one grown) nor break the exact counts. (Training stops on
    non-finite gradients before an update can see them, ``mmlk.NonFiniteGuardHook``; this keeps
    the engine's invariants when it is driven directly.)"""
    return torch.nan_to_num(scores, nan=0.0, posinf=torch.finfo(scores.dtype).max, neginf=0.0)


class SparseEngine:
    r"""Masks, schedule and prune/grow updates for a set of :class:`SparseTarget`.

    Args:
        targets: the sparse parameters.
        sparsity: global target sparsity (fraction of zero units), e.g. 0.4.
        init: ``'snip'``, ``'ERK'``, ``'uniform'`` or ``'dense_pattern'`` (masks = existing
            non-zeros, e.g. a sparse pretrained checkpoint).
        growth: ``'random'`` or ``'gradient'``.
        prune_rate: initial fraction ``p0`` of active units exchanged per update.
        update_interval: optimizer steps between updates; ``None`` or 0 = static masks.
        total_steps: optimizer steps of the whole run (for the cosine decay of ``p``).
        final_prune_rate: ``p`` at the end of the cosine.
        dense_threshold: layers whose initial density is at least this stay dense (and are
            dropped from the engine), as the official code does with 0.99.
        seed: base seed of every random draw (same on every rank).
        tie: regular expressions whose first group, removed from a target's name, names a group
            of parallel copies sharing one mask (ShiftwiseConv's N_path tile convs:
            ``r'large_kernel\.LoRAs\.(\d+)\.'``). The first member of a group leads: the
            group starts from its mask, and at every ``tie_every``-th update the leader is
            pruned on the members' summed magnitude and its new mask copied to the others
            (the official ``--sparse_gap``); at other updates members evolve independently.
        tie_every: see ``tie`` (1: the copies always share one mask).
        regrow_just_pruned: True (the official engine): growth picks among every zero of the
            mask after pruning, units pruned in the same update included, which come back
            with their value and optimizer state. False: growth picks only among units that
            were inactive before the update, so a pruned unit stays out for at least one
            update interval (mmlk's earlier behaviour).
    """

    def __init__(self,
                 targets: Sequence[SparseTarget],
                 sparsity: float = 0.4,
                 init: str = 'snip',
                 growth: str = 'random',
                 prune_rate: float = 0.3,
                 update_interval: Optional[int] = 100,
                 total_steps: int = 1,
                 final_prune_rate: float = 0.005,
                 dense_threshold: float = 0.99,
                 seed: int = 0,
                 tie: Sequence[str] = (),
                 tie_every: int = 1,
                 regrow_just_pruned: bool = True) -> None:
        check_sparse_options(init, growth, sparsity, prune_rate, final_prune_rate, update_interval,
                             regrow_just_pruned, tie_every)
        tie = as_patterns(tie, 'tie')
        if not targets:
            raise ValueError('no parameter matched the sparse-training selection')
        self.targets = list(targets)
        self.sparsity = sparsity
        self.init = init
        self.growth = growth
        self.initial_prune_rate = prune_rate
        self.final_prune_rate = final_prune_rate
        self.update_interval = update_interval or 0
        self.total_steps = max(int(total_steps), 1)
        self.dense_threshold = dense_threshold
        self.seed = seed
        self.tie = [re.compile(p) for p in tie]
        self.tie_every = tie_every
        self.regrow_just_pruned = regrow_just_pruned
        self.step = 0
        self.last_update: Dict[str, float] = {}
        # Layers made dense at initialisation (name -> units): they count towards the global
        # sparsity as fully active, so sparsity is reported over everything that was selected.
        self.dense_layers: Dict[str, int] = {}
        # Parameter-shaped float masks for the per-step multiply, rebuilt only when masks change.
        self._dense_masks: Optional[List[Tensor]] = None

    # ------------------------------------------------------------------ helpers
    def _generator(self, *salt: int) -> torch.Generator:
        # Combine into one 63-bit seed; CPU generator so every rank and device agrees.
        value = self.seed
        for s in salt:
            value = (value * 1_000_003 + s) % (2**63 - 1)
        return torch.Generator().manual_seed(value)

    def _random_scores(self, target: SparseTarget, *salt: int) -> Tensor:
        return torch.rand(target.unit_shape, generator=self._generator(*salt)).to(
            target.mask.device)

    def tied_groups(self) -> List[List[SparseTarget]]:
        """Groups (leader first) of targets sharing a mask under ``tie``; singletons omitted."""
        groups: Dict[str, List[SparseTarget]] = {}
        for t in self.targets:
            for pattern in self.tie:
                match = pattern.search(t.name)
                if match:
                    key = t.name[:match.start(1)] + '*' + t.name[match.end(1):]
                    groups.setdefault(key, []).append(t)
                    break
        for key, members in groups.items():
            shapes = {m.unit_shape for m in members}
            if len(shapes) > 1:
                raise ValueError(f'tied copies {key} have different mask shapes {sorted(shapes)}')
        return [g for g in groups.values() if len(g) > 1]

    def _share_leader_masks(self, optimizer=None) -> None:
        for leader, *followers in self.tied_groups():
            for t in followers:
                changed = t.mask != leader.mask
                t.mask = leader.mask.clone()
                self._reset_state(t, optimizer, t.expand(changed & t.mask))

    @property
    def prune_rate(self) -> float:
        return cosine_prune_rate(self.step, self.total_steps, self.initial_prune_rate,
                                 self.final_prune_rate)

    # ------------------------------------------------------------------ initialisation
    def init_masks(self, snip_scores: Optional[Sequence[Tensor]] = None) -> List[float]:
        """Draw the initial masks; return the per-layer densities. SNIP needs per-parameter
        ``|w * grad|`` tensors (parameter-shaped) in target order."""
        density = 1 - self.sparsity
        if self.init == 'dense_pattern':
            for t in self.targets:
                t.mask = self.targets_nonzero(t)
            densities = [float(t.mask.float().mean()) for t in self.targets]
        else:
            unit_scores = None
            if self.init == 'snip':
                if snip_scores is None:
                    raise ValueError('init="snip" needs SNIP scores (one batch of gradients)')
                unit_scores = [t.reduce(s) for t, s in zip(self.targets, snip_scores)]
            densities = allocate_densities(self.targets, density, self.init, unit_scores)
            emptied = []
            for index, (t, d) in enumerate(zip(self.targets, densities)):
                keep = int(round(d * t.num_units))
                if keep == 0:
                    # A layer without an active unit would be cut from the network for good
                    # (updates prune and grow among active units): keep one to regrow from.
                    keep = 1
                    emptied.append(t.name)
                scores = self._random_scores(t, 0, index).flatten()
                mask = torch.zeros(t.num_units, dtype=torch.bool, device=t.mask.device)
                mask[torch.topk(scores, keep).indices] = True
                t.mask = mask.reshape(t.unit_shape)
            if emptied:
                warnings.warn(
                    f'sparse init {self.init!r} at sparsity {self.sparsity} gives {len(emptied)} '
                    f'layer(s) no weight at all: {", ".join(emptied)}. Each keeps 1 unit so '
                    'that prune/grow can revive it (a fully pruned layer would block its path '
                    'through the network for the whole run); a lower sparsity or init="ERK" '
                    'spreads the budget more evenly.', stacklevel=2)
        # Layers (almost) dense at init stay dense and leave the engine, as in the official code.
        kept = [(t, d) for t, d in zip(self.targets, densities) if d < self.dense_threshold]
        self.dense_layers = {t.name: t.num_units for t, d in zip(self.targets, densities)
                             if d >= self.dense_threshold}
        if not kept:
            hint = (' SNIP scores |w * grad| were zero for most weights: layers whose gradient '
                    'is exactly zero at initialisation (e.g. residual branches behind a '
                    'zero-initialised BN, mmdet ResNet zero_init_residual=True) all look '
                    'important; use init="ERK" or "uniform", or start from trained weights.'
                    if self.init == 'snip' else '')
            raise ValueError(f'every selected layer is at least {self.dense_threshold:.0%} dense '
                             'after initialisation: nothing to train sparse.' + hint)
        self.targets = [t for t, _ in kept]
        self._share_leader_masks()  # the copies start from their leader's mask
        self.masks_changed()
        self.apply()
        return [self.layer_density(t) for t in self.targets]

    @staticmethod
    def layer_density(t: SparseTarget) -> float:
        return float(t.mask.float().mean())

    @staticmethod
    def targets_nonzero(t: SparseTarget) -> Tensor:
        return t.reduce(t.param.detach()) != 0

    # ------------------------------------------------------------------ every step
    def masks_changed(self) -> None:
        """Drop cached per-step state; call after any change of ``t.mask``."""
        self._dense_masks = None

    @torch.no_grad()
    def apply(self) -> None:
        """Zero every pruned weight (after each optimizer step)."""
        if self._dense_masks is None or any(
                m.dtype != t.param.dtype or m.device != t.param.device
                for m, t in zip(self._dense_masks, self.targets)):
            self._dense_masks = [t.dense_mask(t.param.dtype) for t in self.targets]
        torch._foreach_mul_([t.param.data for t in self.targets], self._dense_masks)

    def on_optimizer_step(self, optimizer: Optional[torch.optim.Optimizer] = None) -> bool:
        """Call after every real optimizer step. Returns True if masks were updated."""
        self.apply()
        self.step += 1
        if self.update_interval and self.step % self.update_interval == 0 \
                and self.step < self.total_steps:
            self.update(optimizer)
            return True
        return False

    # ------------------------------------------------------------------ prune and grow
    @torch.no_grad()
    def update(self, optimizer: Optional[torch.optim.Optimizer] = None) -> Dict[str, float]:
        """Prune the ``p * nnz`` smallest-magnitude active units of each layer and grow as many.

        Gradient growth reads ``param.grad``: call before the gradients are zeroed.
        """
        rate = self.prune_rate
        total_pruned = total_grown = 0
        update_index = self.step // max(self.update_interval, 1)
        shared = bool(self.tie) and update_index % self.tie_every == 0
        groups = {id(g[0]): g for g in self.tied_groups()} if shared else {}
        followers = {id(t) for g in groups.values() for t in g[1:]}
        for index, t in enumerate(self.targets):
            if id(t) in followers:
                continue  # takes its leader's new mask below
            flat_mask = t.mask.flatten()
            active = int(flat_mask.sum())
            num_remove = min(int(math.ceil(rate * active)), active)
            if not self.regrow_just_pruned:  # grown units must come from the old zeros
                num_remove = min(num_remove, t.num_units - active)
            if num_remove == 0:
                continue
            members = groups.get(id(t), [t])  # a leader is pruned on the summed magnitude
            magnitude = _finite_scores(
                sum(m.reduce(m.param.detach()).flatten().float() for m in members))
            magnitude[~flat_mask] = float('inf')  # only active units can be pruned
            pruned = _smallest(magnitude, num_remove)
            pruned_mask = flat_mask.clone()
            pruned_mask[pruned] = False
            # Growth candidates: the official engine grows among the zeros of the pruned mask
            # (a just-pruned unit may come back); the strict variant among the old zeros.
            candidate_mask = ~(pruned_mask if self.regrow_just_pruned else flat_mask)
            if self.growth == 'gradient':
                if t.param.grad is None:
                    raise RuntimeError(f'gradient growth needs {t.name}.grad, which is None; '
                                       'the update must run before zero_grad')
                grow_score = _finite_scores(t.reduce(t.param.grad.detach()).flatten().float())
                grow_score[~candidate_mask] = -float('inf')  # only candidates can grow
                grown = _smallest(-grow_score, num_remove)
            else:
                candidates = torch.nonzero(candidate_mask).flatten()
                order = torch.randperm(candidates.numel(),
                                       generator=self._generator(self.step, index))
                grown = candidates[order[:num_remove].to(candidates.device)]
            new_mask = pruned_mask
            new_mask[grown] = True
            # Units whose value and optimizer state restart: pruned for good, or grown from
            # an old zero. A just-pruned unit grown back keeps both (official: the weights are
            # masked only after growth).
            changed = new_mask != flat_mask
            t.mask = new_mask.reshape(t.unit_shape)
            self._reset_state(t, optimizer, t.expand(changed.reshape(t.unit_shape)))
            total_pruned += num_remove
            total_grown += num_remove
        if shared:
            self._share_leader_masks(optimizer)
        self.masks_changed()
        self.apply()
        self.last_update = dict(prune_rate=rate, num_pruned=total_pruned, num_grown=total_grown)
        return self.last_update

    @staticmethod
    def _reset_state(t: SparseTarget, optimizer, changed: Tensor) -> None:
        """Grown units start from zero with fresh optimizer state; pruned ones keep none."""
        t.param.data[changed] = 0
        if optimizer is None:
            return
        state = optimizer.state.get(t.param, {})
        for value in state.values():
            if isinstance(value, Tensor) and value.shape == t.param.shape:
                value[changed] = 0

    # ------------------------------------------------------------------ reporting / state
    def layer_sparsity(self) -> Dict[str, float]:
        sparsity = {t.name: 1 - float(t.mask.float().mean()) for t in self.targets}
        sparsity.update({name: 0.0 for name in self.dense_layers})
        return sparsity

    def overall_sparsity(self) -> float:
        """Fraction of zero units over every selected layer, dense ones included (exact)."""
        dense = sum(self.dense_layers.values())
        total = sum(t.num_units for t in self.targets) + dense
        active = sum(int(t.mask.sum()) for t in self.targets) + dense
        return 1 - active / total

    def state_dict(self) -> dict:
        return dict(step=self.step, masks={t.name: t.mask.cpu() for t in self.targets},
                    block_shapes={t.name: t.block_shape for t in self.targets},
                    dense_layers=dict(self.dense_layers))

    def load_state_dict(self, state: dict) -> None:
        """Restore masks and the step counter; targets that were dense in the saved run (not in
        ``masks``) leave the engine, exactly as at initialisation."""
        masks = state['masks']
        unknown = set(masks) - {t.name for t in self.targets}
        if unknown:
            raise KeyError(f'saved sparse masks for parameters that are not selected: '
                           f'{sorted(unknown)[:5]}')
        kept = []
        self.dense_layers = dict(state.get('dense_layers', {}))
        for t in self.targets:
            if t.name not in masks:
                self.dense_layers.setdefault(t.name, t.num_units)
                continue
            mask = masks[t.name]
            if tuple(mask.shape) != t.unit_shape:
                raise ValueError(f'saved mask of {t.name} has shape {tuple(mask.shape)}, '
                                 f'expected {t.unit_shape}')
            t.mask = mask.to(device=t.param.device, dtype=torch.bool)
            kept.append(t)
        self.targets = kept
        self.step = int(state['step'])
        self.masks_changed()

    def broadcast_masks(self, broadcast: Callable[[Tensor], None]) -> None:
        """Make every rank hold rank 0's masks (``broadcast`` is in-place, src=0)."""
        for t in self.targets:
            as_uint8 = t.mask.to(torch.uint8)
            broadcast(as_uint8)
            t.mask = as_uint8.bool()
        self.masks_changed()
