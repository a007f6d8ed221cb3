"""Train any mmlk config: mmdet, mmseg and mmpretrain configs alike.

The Runner takes the registry scope from the config's ``default_scope`` (inherited from the
mmdet/mmseg/mmpretrain base runtime), so one script serves every task.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout
from mmlk.quiet import silence_pinned_stack_warnings  # noqa: E402

silence_pinned_stack_warnings()  # before mmengine is imported

from mmlk.utils import (add_runner_args,  # noqa: E402
                        check_dataset_paths, install_safety_hooks, load_config,
                        prepare_optim_wrapper_for_device, resolve_resume_checkpoint,
                        install_safe_checkpoint_loader, use_seed_of_checkpoint, work_dir_lock)

from mmlk.core.checkpoint_io import check_checkpoint_file  # noqa: E402
from mmlk.utils import user_errors_as_messages  # noqa: E402
from mmlk.utils.distributed import setup_distributed  # noqa: E402

install_safe_checkpoint_loader()

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model from an mmlk config')
    parser.add_argument('config', help='config file path')
    add_runner_args(parser)
    parser.add_argument('--amp', action='store_true', help='mixed precision (needs a GPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the actual batch size (needs auto_scale_lr in cfg)')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from the given checkpoint, or the latest in work_dir')
    return parser.parse_args()


def build_cfg(args: argparse.Namespace, cfg: Config) -> Config:
    """``cfg`` (from :func:`load_config`) prepared for training: device, LR scaling, resume
    target and seed, safety hooks."""
    prepare_optim_wrapper_for_device(cfg, args.amp, torch.cuda.is_available())
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise SystemExit('--auto-scale-lr needs auto_scale_lr=dict(base_batch_size=...) '
                             'in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        # Resolved here, not by mmengine, so that a truncated checkpoint or a broken
        # last_checkpoint pointer falls back to the newest complete checkpoint.
        path = resolve_resume_checkpoint(cfg.work_dir) if osp.isdir(cfg.work_dir) else None
        if path is None:
            print_log(f'--resume: no checkpoint in {cfg.work_dir}; training from the start.',
                      logger='current', level=30)
            cfg.resume, cfg.load_from = False, cfg.get('load_from')
        else:
            cfg.resume, cfg.load_from = True, path
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if cfg.get('resume') and cfg.get('load_from'):
        use_seed_of_checkpoint(cfg, cfg.load_from)
    install_safety_hooks(cfg, strict=not args.non_strict, train=True)
    return cfg


def main() -> None:
    args = parse_args()
    with user_errors_as_messages():
        cfg = load_config(args)
        # under the work-dir lock, so that --resume reads a work dir no other run is writing
        with work_dir_lock(cfg.work_dir):
            cfg = build_cfg(args, cfg)
            setup_distributed(cfg)  # gloo without CUDA; NCCL through mmengine with it
            check_dataset_paths(cfg, ('train_dataloader', 'val_dataloader'))
            if cfg.get('load_from'):
                check_checkpoint_file(cfg.load_from)
            runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
            runner.train()


if __name__ == '__main__':
    main()
