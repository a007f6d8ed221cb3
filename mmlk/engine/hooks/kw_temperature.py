"""KernelWarehouse's temperature schedule (Li & Yao, ICML 2024) as an mmengine hook."""
from typing import Optional

from mmengine.hooks import Hook

from mmlk.core.validation import check_range
from mmlk.ops import set_kw_temperature
from mmlk.registry import HOOKS

from ..model_wrappers import unwrap_model

__all__ = ['KWTemperatureHook', 'kw_temperature']


def kw_temperature(iteration: int, total: int, start: float = 1.0, end: float = 0.0) -> float:
    """The official linear schedule: ``end + max(0, (start - end) * (T - t) / max(1, T))``
    with ``t`` the 1-based training iteration and ``T`` the annealing length."""
    return end + max(0.0, (start - end) * (total - iteration) / max(1, total))


@HOOKS.register_module()
class KWTemperatureHook(Hook):
    """Anneal tau of every KW attention linearly from ``start`` to ``end``.

    Upstream: tau = 1 (the static warm-start network) falling to 0 over the first 20 epochs
    (15 for MobileNetV2), set before every training iteration from the global iteration, so the
    value is a pure function of ``runner.iter`` and resume continues exactly. Validation and
    test run at ``end`` (the trained, fully dynamic network; upstream's EMA copy always does,
    its live model is evaluated at whatever tau training last set). The value is logged as
    ``train/kw_temperature``.

    Args:
        epochs: annealing length in epochs (times the train loader length), or
        iters: annealing length in iterations (exactly one of the two).
        start / end: the schedule's end points (1 and 0 upstream).
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, epochs: Optional[int] = None, iters: Optional[int] = None,
                 start: float = 1.0, end: float = 0.0) -> None:
        if (epochs is None) == (iters is None):
            raise ValueError('KWTemperatureHook needs exactly one of epochs= or iters= (the '
                             f'annealing length), got epochs={epochs}, iters={iters}')
        length = epochs if epochs is not None else iters
        if not isinstance(length, int) or length < 0:
            raise ValueError(f'the annealing length must be a non-negative int, got {length!r}')
        check_range(start, 'start (the initial temperature)')
        check_range(end, 'end (the final temperature)')
        self.epochs, self.iters, self.start, self.end = epochs, iters, float(start), float(end)
        self.temperature = self.start

    def total_iters(self, runner) -> int:
        if self.iters is not None:
            return self.iters
        return self.epochs * len(runner.train_dataloader)

    def _set(self, runner, temperature: float) -> None:
        model = unwrap_model(runner.model)
        if set_kw_temperature(model, temperature) == 0:
            raise RuntimeError('KWTemperatureHook: the model has no KernelWarehouse attention '
                               '(no mmlk KW backbone); remove the hook or use a KW backbone')
        self.temperature = temperature

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._set(runner, kw_temperature(runner.iter + 1, self.total_iters(runner), self.start,
                                         self.end))
        runner.message_hub.update_scalar('train/kw_temperature', self.temperature)

    def before_val_epoch(self, runner) -> None:
        self._set(runner, self.end)

    def before_test_epoch(self, runner) -> None:
        self._set(runner, self.end)
