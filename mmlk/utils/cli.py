"""The command line every tool shares: the Runner arguments, ``--trust-checkpoint``, mmlk's
checkpoint loader for the process, and user errors as one ``error:`` line."""
import contextlib
import logging
from typing import Optional

import mmengine.runner.checkpoint
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger

from mmlk.core.checkpoint_io import CheckpointMismatchError, CheckpointReadError
from mmlk.core.mmengine_loader import register_as_mmengine_loader
from mmlk.core.safe_load import trust_checkpoints
from mmlk.engine.hooks.non_finite import NonFiniteGradientError

from .data_checks import DatasetNotFoundError, DataSampleError, install_sample_error_reports
from .distributed import LauncherEnvironmentError
from .resume import WorkDirBusyError

__all__ = [
    'add_runner_args', 'add_trust_argument', 'apply_trust', 'init_weights_quietly',
    'install_safe_checkpoint_loader', 'user_errors_as_messages'
]


def add_runner_args(parser) -> None:
    """The arguments every tool that builds a Runner shares (mmdet/mmseg conventions)."""
    parser.add_argument('--work-dir', help='where logs, checkpoints and metrics go '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. train_cfg.max_iters=100')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument('--non-strict', action='store_true',
                        help='load checkpoints (load_from, --resume, test checkpoints) even if '
                        'they do not fit the model, as plain mmengine does: keys that do not '
                        'fit are dropped with a warning. Default: refuse, naming the keys.')
    add_trust_argument(parser)


def add_trust_argument(parser) -> None:
    """``--trust-checkpoint``: the explicit opt-in to load checkpoints that name globals outside
    mmlk's allow-list (plain ``torch.load``: they may run code)."""
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='load checkpoints with plain torch.load even if they hold other '
                        'objects than tensors and the types real checkpoints hold; unpickling '
                        'such a file can run code, so only for files you trust. Default: refuse '
                        'them, naming the file and the object')


def apply_trust(args, cfg: Optional[Config] = None) -> None:
    """Trust this process's checkpoints if ``--trust-checkpoint`` or the config's
    ``trust_checkpoint = True`` says so (never implied by anything else)."""
    flag = bool(getattr(args, 'trust_checkpoint', False))
    if cfg is not None and cfg.get('trust_checkpoint', False) is True:
        flag = True
    if flag:
        trust_checkpoints(True)


def install_safe_checkpoint_loader() -> None:
    """mmengine's local checkpoint loader becomes mmlk's
    (:func:`mmlk.core.checkpoint_io.load_local_checkpoint`): no checkpoint runs code (an
    allow-list of the types real mmengine/official checkpoints hold, where torch >= 2.6's
    ``weights_only=True`` refuses them all), and read errors name the file. ``import mmlk``
    does the same through :mod:`mmlk.config_prefix`; the tools call it before anything else,
    so that it holds whatever was imported before mmlk."""
    register_as_mmengine_loader(mmengine.runner.checkpoint)


@contextlib.contextmanager
def user_errors_as_messages():
    """Turn the errors a user can fix (a checkpoint or dataset that is missing, truncated or
    does not fit, a bad data file) into one ``error: ...`` line and exit code 1, instead of a
    traceback from deep inside the Runner; data samples that fail name their files
    (:func:`.data_checks.install_sample_error_reports`)."""
    install_sample_error_reports()
    try:
        yield
    except (CheckpointMismatchError, CheckpointReadError, DataSampleError, DatasetNotFoundError,
            FileNotFoundError, LauncherEnvironmentError, NonFiniteGradientError,
            WorkDirBusyError) as err:
        hint = ('\n(python tools/check_dataset.py CONFIG lists every such sample)'
                if isinstance(err, DataSampleError) else '')
        raise SystemExit(f'error: {err}{hint}') from None


def init_weights_quietly(model) -> None:
    """``model.init_weights()`` without mmengine's per-parameter report (one INFO paragraph
    per tensor, "The value is the same before and after calling `init_weights`", thousands of
    lines for a detector); warnings and errors still show."""
    loggers = [MMLogger.get_instance(name) for name in (list(MMLogger._instance_dict) or
                                                        ['mmengine'])]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
