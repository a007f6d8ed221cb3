"""Train any mmlk config: mmdet, mmseg and mmpretrain configs alike.

The Runner takes the registry scope from the config's ``default_scope`` (inherited from the
mmdet/mmseg/mmpretrain base runtime), so one script serves every task.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from mmlk.utils import (DatasetNotFoundError, add_runner_args,  # noqa: E402
                        check_dataset_paths, load_config, prepare_optim_wrapper_for_device,
                        setup_torch_load)

setup_torch_load()

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
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


def build_cfg(args: argparse.Namespace) -> Config:
    cfg = load_config(args)
    prepare_optim_wrapper_for_device(cfg, args.amp, torch.cuda.is_available())
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise SystemExit('--auto-scale-lr needs auto_scale_lr=dict(base_batch_size=...) '
                             'in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def main() -> None:
    args = parse_args()
    cfg = build_cfg(args)
    try:
        check_dataset_paths(cfg, ('train_dataloader', 'val_dataloader'))
    except DatasetNotFoundError as err:
        raise SystemExit(f'error: {err}')
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    main()
