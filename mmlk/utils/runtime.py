"""What ``tools/train.py`` and ``tools/test.py`` do to a config before the Runner sees it."""
import contextlib
import glob
import os
import os.path as osp
from typing import List, Optional, Tuple

from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

from mmlk.datasets.checks import leaf_datasets

__all__ = [
    'DatasetNotFoundError', 'add_runner_args', 'check_dataset_paths', 'init_weights_quietly',
    'install_safety_hooks', 'load_config', 'prepare_optim_wrapper_for_device', 'read_config',
    'resolve_resume_checkpoint', 'setup_torch_load', 'use_seed_of_checkpoint',
    'user_errors_as_messages', 'work_dir_lock', 'WorkDirBusyError', 'add_trust_argument',
    'apply_trust'
]


def add_runner_args(parser) -> None:
    """The arguments every tool that builds a Runner shares (mmdet/mmseg conventions)."""
    from mmengine.config import DictAction
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


def read_config(path: str) -> Config:
    """The one config reader of every tool: a file, or an installed package's config written
    ``package::family/name.py`` (``mmlk::replknet/...``, ``mmpretrain::convnext/...``) through
    mmengine's hub, which finds it via the package's ``.mim`` model index or config folder."""
    if '::' in path and not osp.exists(path):
        from mmengine.hub import get_config
        try:
            return get_config(path)
        except (FileNotFoundError, ValueError, ModuleNotFoundError) as err:
            raise FileNotFoundError(f'config {path!r} not found ({err}); accepted: a config '
                                    'file, or package::path/in/its/configs.py') from None
    if not osp.isfile(path):
        raise FileNotFoundError(f'config {path!r} not found; accepted: a config file, or '
                                'package::path/in/its/configs.py (e.g. '
                                'mmlk::slak/upernet_slak-t_4xb4-160k_ade20k-512x512.py)')
    return Config.fromfile(path)


def load_config(args) -> Config:
    """Read ``args.config`` and apply the shared arguments of :func:`add_runner_args`."""
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = read_config(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    apply_trust(args, cfg)
    return cfg


def install_safety_hooks(cfg: Config, strict: bool, train: bool) -> None:
    """What mmlk's tools add to every config (README, "Reliability"):

    * ``mmlk.StrictLoadHook``: checkpoints that do not fit the model are refused (unless
      ``strict`` is False, from ``--non-strict``, or the config sets ``strict_load = False``);
    * ``mmlk.RNGStateHook`` (training): generator states in checkpoints, exact resume;
    * ``mmlk.NonFiniteGuardHook`` (training): a NaN/inf gradient stops the run before the
      step is applied (no NaN weights, masks, EMA or checkpoints);
    * mmengine's ``CheckpointHook`` becomes ``mmlk.AtomicCheckpointHook`` (same arguments):
      checkpoints are written atomically.

    Hooks the config already lists are kept as they are (their arguments win).
    """
    hooks = list(cfg.get('custom_hooks') or [])
    present = {str(h.get('type', '')).split('.')[-1] for h in hooks}
    if strict and cfg.get('strict_load', True) and 'StrictLoadHook' not in present:
        hooks.append(dict(type='mmlk.StrictLoadHook'))
    if train and 'RNGStateHook' not in present:
        hooks.append(dict(type='mmlk.RNGStateHook'))
    if train and 'NonFiniteGuardHook' not in present:
        hooks.append(dict(type='mmlk.NonFiniteGuardHook'))
    cfg.custom_hooks = hooks
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint')
    if checkpoint is not None and checkpoint.get('type') in ('CheckpointHook',
                                                             'mmengine.CheckpointHook'):
        checkpoint.type = 'mmlk.AtomicCheckpointHook'


def resolve_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` (without a path) continues from: the one ``last_checkpoint``
    names if it is complete, else the newest complete ``*.pth`` in ``work_dir`` (saying so);
    None if the work dir holds no checkpoint at all. A truncated, corrupted or missing file is
    never chosen, and a work dir that holds checkpoint files none of which is complete raises
    :class:`~mmlk.models.utils.CheckpointReadError` instead of silently training from the
    start. Only files of ``work_dir`` are used: a ``last_checkpoint`` naming a file in another
    directory (a copied work dir) resumes from this directory's file of that name, or stops
    with the path so that the user can pass it explicitly."""
    from mmlk.models.utils import CheckpointReadError, check_checkpoint_file
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
    import fcntl
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


@contextlib.contextmanager
def user_errors_as_messages():
    """Turn the errors a user can fix (a checkpoint or dataset that is missing, truncated or
    does not fit, a bad data file) into one ``error: ...`` line and exit code 1, instead of a
    traceback from deep inside the Runner; data samples that fail name their files
    (:func:`mmlk.datasets.checks.install_sample_error_reports`)."""
    from mmlk.datasets.checks import DataSampleError, install_sample_error_reports
    from mmlk.engine.hooks.non_finite import NonFiniteGradientError
    from mmlk.models.utils import CheckpointMismatchError, CheckpointReadError
    from .distributed import LauncherEnvironmentError
    install_sample_error_reports()
    try:
        yield
    except (CheckpointMismatchError, CheckpointReadError, DataSampleError, DatasetNotFoundError,
            FileNotFoundError, LauncherEnvironmentError, NonFiniteGradientError,
            WorkDirBusyError) as err:
        hint = ('\n(python tools/check_dataset.py CONFIG lists every such sample)'
                if isinstance(err, DataSampleError) else '')
        raise SystemExit(f'error: {err}{hint}') from None


def use_seed_of_checkpoint(cfg: Config, path: str) -> None:
    """Resume with the seed the checkpoint was trained with (``randomness.seed``).

    mmengine builds the data samplers (their shuffling seed) and the workers' ``worker_init_fn``
    from the run's seed *before* it reads the checkpoint; without a fixed seed in the config
    every run draws a new one, so a resumed run shuffles its data differently. Setting the seed
    before the Runner exists is what makes ``--resume`` exact (with ``mmlk.RNGStateHook``).
    Reads the checkpoint memory-mapped (tensors are not copied) through the one loader, so a
    file that is corrupted or runs code stops here, before the Runner is built.
    """
    import zipfile

    from mmlk.models.utils.checkpoint import load_local_checkpoint
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


def init_weights_quietly(model) -> None:
    """``model.init_weights()`` without mmengine's per-parameter report (one INFO paragraph
    per tensor, "The value is the same before and after calling `init_weights`", thousands of
    lines for a detector); warnings and errors still show."""
    import logging

    from mmengine.logging import MMLogger
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


def setup_torch_load() -> None:
    """mmengine's local checkpoint loader becomes mmlk's
    (:func:`mmlk.models.utils.load_local_checkpoint`): no checkpoint runs code (an allow-list
    of the types real mmengine/official checkpoints hold, where torch >= 2.6's
    ``weights_only=True`` refuses them all), and read errors name the file. ``import mmlk``
    does the same; the tools call it before anything else."""
    from mmlk.models.utils.checkpoint import install_local_checkpoint_loader
    install_local_checkpoint_loader()


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
    from mmlk.models.utils.safe_load import trust_checkpoints
    flag = bool(getattr(args, 'trust_checkpoint', False))
    if cfg is not None and cfg.get('trust_checkpoint', False) is True:
        flag = True
    if flag:
        trust_checkpoints(True)


def prepare_optim_wrapper_for_device(cfg: Config, amp_requested: bool, has_gpu: bool) -> None:
    """Apply ``--amp`` and keep AMP configs usable on CPU-only machines.

    ``AmpOptimWrapper`` asserts a GPU when built. ``--amp`` without a GPU is a user error and
    raises; a config that itself asks for AMP (the published recipes do) falls back to fp32
    ``OptimWrapper`` on CPU with a warning, so the same config trains everywhere.
    """
    wrapper = cfg.get('optim_wrapper')
    if wrapper is None:
        return
    if amp_requested:
        if not has_gpu:
            raise SystemExit('--amp needs a CUDA GPU (mmengine AmpOptimWrapper asserts one); '
                             'none is available here. Run without --amp to train in fp32.')
        if wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print_log('AMP is already enabled in the config', logger='current')
        else:
            if wrapper.get('type', 'OptimWrapper') != 'OptimWrapper':
                raise SystemExit(f'--amp works with optim_wrapper type OptimWrapper, the config '
                                 f'has {wrapper.get("type")}')
            wrapper.type = 'AmpOptimWrapper'
            wrapper.setdefault('loss_scale', 'dynamic')
    elif wrapper.get('type') == 'AmpOptimWrapper' and not has_gpu:
        print_log('No GPU: the config asks for AmpOptimWrapper; training in fp32 with '
                  'OptimWrapper instead.', logger='current', level=30)
        wrapper.type = 'OptimWrapper'
        for key in ('loss_scale', 'dtype', 'use_fsdp'):
            wrapper.pop(key, None)


class DatasetNotFoundError(FileNotFoundError):
    """A config's dataset is not where the config says."""


# How to get each dataset family's real data, and which demo writer mimics it.
_DATA_HELP = {
    'ADE20KDataset': ('ADE20K: download ADEChallengeData2016 from the MIT Scene Parsing '
                      'benchmark and unpack it to the data_root', 'ade20k'),
    'VOCDataset': ('PASCAL VOC: unpack VOCtrainval_06-Nov-2007, VOCtest_06-Nov-2007 and '
                   'VOCtrainval_11-May-2012 so that data_root contains VOC2007/ and VOC2012/',
                   'voc'),
    'CocoDataset': ('COCO 2017: unpack train2017/, val2017/ and annotations/ into the data_root',
                    'coco'),
    'ImageNet': ('ImageNet-1k: place train/ and val/ (class sub-folders) and meta/{train,val}.txt '
                 'in the data_root', 'imagenet'),
}


def _expected_paths(dataset: ConfigDict) -> List[str]:
    root = dataset.get('data_root') or ''
    paths = []
    ann_file = dataset.get('ann_file')
    if ann_file:
        paths.append(ann_file if osp.isabs(ann_file) else osp.join(root, ann_file))
    prefix = dataset.get('data_prefix') or {}
    for value in (prefix.values() if isinstance(prefix, dict) else [prefix]):
        if isinstance(value, str) and value:
            paths.append(value if osp.isabs(value) else osp.join(root, value))
    split = dataset.get('split')
    if not ann_file and isinstance(split, str) and split:  # mmpretrain ImageNet(split=...)
        paths.append(osp.join(root, split))
    if not paths and root:
        paths.append(root)
    return paths


def check_dataset_paths(cfg: Config, loaders: Tuple[str, ...] = ('train_dataloader',
                                                                'val_dataloader',
                                                                'test_dataloader')) -> None:
    """Raise :class:`DatasetNotFoundError` naming the missing path and how to get the data,
    instead of a stack trace from deep inside a dataset class."""
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if not loader_cfg or 'dataset' not in loader_cfg:
            continue
        for dataset in leaf_datasets(loader_cfg['dataset']):
            missing = [p for p in _expected_paths(dataset) if not osp.exists(p)]
            if not missing:
                continue
            kind = dataset.get('type', '?')
            how, demo = _DATA_HELP.get(str(kind).split('.')[-1], ('see the dataset docs', None))
            lines = [f'{loader}: the {kind} data is not where the config expects it.',
                     'Missing: ' + ', '.join(missing), f'To use the real data — {how}.']
            if demo is not None:
                from mmlk.datasets import DEMO_SUBDIRS
                lines.append(
                    f'To try the embedded synthetic data instead: python tools/make_demo_data.py '
                    f'{demo} --out data/demo, then set the data_root of the datasets to '
                    f'data/demo/{DEMO_SUBDIRS[demo]}/ (README, "Embedded datasets").')
            raise DatasetNotFoundError('\n'.join(lines))
