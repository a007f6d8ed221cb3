"""Stop (or skip) a training step whose gradients are not finite, before anything uses them.

mmengine applies whatever the backward produced: one NaN batch makes every weight NaN, the
sparse engine then prunes and grows on NaN scores, the EMA averages NaN in, the next
checkpoint stores it, and the run ends with ``loss: nan`` and exit code 0. The guard checks
the gradients inside ``optimizer.step``, before the update and before the optimizer's step
hooks (the sparse masks' update among them) run.
"""
from typing import Dict, List, Optional

import torch
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapperDict

from mmlk.registry import HOOKS

from ..model_wrappers import unwrap_model

__all__ = ['NonFiniteGradientError', 'NonFiniteGuardHook', 'first_non_finite_gradient']

_ACTIONS = ('raise', 'skip')


class NonFiniteGradientError(FloatingPointError):
    """A gradient held NaN or inf at an optimizer step (the step was not applied)."""


def first_non_finite_gradient(params: List[torch.Tensor]) -> Optional[int]:
    """Index into ``params`` of the first one whose gradient holds NaN/inf, else None.

    One fused norm per parameter and a single host sync in the common (finite) case."""
    with_grad = [i for i, p in enumerate(params) if p.grad is not None]
    if not with_grad:
        return None
    norms = torch._foreach_norm([params[i].grad.detach() for i in with_grad])
    finite = torch.isfinite(torch.stack([n.float() for n in norms]))
    if bool(finite.all()):
        return None
    return with_grad[int((~finite).nonzero()[0])]


@HOOKS.register_module()
class NonFiniteGuardHook(Hook):
    """Refuse optimizer steps on non-finite gradients (mmlk's tools install it in training).

    Every optimizer of the run gets a checked ``step``: when a gradient holds NaN or inf, the
    parameters, the optimizer state, the sparse masks (their update is an optimizer step hook)
    and, with ``action='raise'``, everything after it stay as they were.

    Args:
        action: ``'raise'`` (default): stop the run with a :class:`NonFiniteGradientError`
            naming the iteration and the parameter, before any checkpoint or EMA sees the step;
            ``'skip'``: log a warning and drop the step (the gradients are zeroed as usual by
            the next iteration), e.g. for rare overflow batches in long runs. With AMP the
            ``GradScaler`` already skips overflowed steps before this check runs.
    """

    priority = 'VERY_HIGH'

    def __init__(self, action: str = 'raise') -> None:
        if action not in _ACTIONS:
            raise ValueError(f'NonFiniteGuardHook action must be one of {list(_ACTIONS)}, got '
                             f'{action!r}')
        self.action = action
        self.skipped = 0

    def before_train(self, runner) -> None:
        model = unwrap_model(runner.model)
        names: Dict[int, str] = {id(p): n for n, p in model.named_parameters()}
        wrappers = (runner.optim_wrapper.values() if isinstance(runner.optim_wrapper,
                                                                OptimWrapperDict)
                    else [runner.optim_wrapper])
        for wrapper in wrappers:
            self._guard(wrapper.optimizer, runner, names)

    def _guard(self, optimizer: torch.optim.Optimizer, runner, names: Dict[int, str]) -> None:
        if getattr(optimizer, '_mmlk_non_finite_guard', False):
            return
        step = optimizer.step
        hook = self

        def checked_step(*args, **kwargs):
            params = [p for group in optimizer.param_groups for p in group['params']]
            bad = first_non_finite_gradient(params)
            if bad is None:
                return step(*args, **kwargs)
            name = names.get(id(params[bad]), f'parameter #{bad}')
            message = (f'non-finite gradient (NaN/inf) at iteration {runner.iter + 1} '
                       f'(epoch {runner.epoch + 1}) in {name}: the loss or a layer overflowed')
            if hook.action == 'raise':
                raise NonFiniteGradientError(
                    f'{message}. The step was not applied: weights, optimizer state, sparse '
                    'masks and EMA are those of the previous iteration, and no checkpoint was '
                    'written after it. Lower the learning rate, check the data of this batch, '
                    "or use mmlk.NonFiniteGuardHook(action='skip') to drop such steps.")
            hook.skipped += 1
            runner.logger.warning(f'{message}; step skipped ({hook.skipped} so far)')
            return None

        optimizer.step = checked_step
        optimizer._mmlk_non_finite_guard = True
