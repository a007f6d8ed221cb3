"""What ``tools/train.py`` and ``tools/test.py`` do to a config before the Runner sees it."""
import os
import os.path as osp

from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.logging import print_log

from .cli import apply_trust

__all__ = [
    'install_safety_hooks', 'load_config', 'prepare_optim_wrapper_for_device', 'read_config'
]


def read_config(path: str) -> Config:
    """The one config reader of every tool: a file, or an installed package's config written
    ``package::family/name.py`` (``mmlk::replknet/...``, ``mmpretrain::convnext/...``) through
    mmengine's hub, which finds it via the package's ``.mim`` model index or config folder."""
    if '::' in path and not osp.exists(path):
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
