"""Evaluate a checkpoint (or the initialised model) with any mmlk config.

mmdet, mmseg and mmpretrain configs are all accepted; the task-specific flags (``--out``,
``--show-dir``, ``--tta``) follow each codebase's own test script.
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout
from mmlk.quiet import silence_pinned_stack_warnings  # noqa: E402

silence_pinned_stack_warnings()  # before mmengine is imported

from mmlk.core.checkpoint_io import check_checkpoint_file  # noqa: E402
from mmlk.utils import (add_runner_args, check_dataset_paths,  # noqa: E402
                        install_safety_hooks, load_config, install_safe_checkpoint_loader)
from mmlk.utils import init_weights_quietly, user_errors_as_messages  # noqa: E402
from mmlk.utils.distributed import setup_distributed  # noqa: E402

install_safe_checkpoint_loader()

from mmengine.config import Config, ConfigDict  # noqa: E402
from mmengine.dist import is_main_process  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmlk.engine.model_wrappers import unwrap_model  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a model from an mmlk config')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='checkpoint to evaluate; omitted: the config\'s load_from, else '
                        'the model as the config initialises it (e.g. a baseline before training)')
    add_runner_args(parser)
    parser.add_argument('--out', help='dump predictions: a .pkl file (mmdet, mmpretrain) or a '
                        'folder of label PNGs (mmseg)')
    parser.add_argument('--show', action='store_true', help='show predictions in a window')
    parser.add_argument('--show-dir', help='save a visualisation of every test image (ground '
                        'truth and prediction) into this folder')
    parser.add_argument('--wait-time', type=float, default=2, help='seconds per shown image')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation')
    return parser.parse_args()


def _visualization(cfg: Config, scope: str, args: argparse.Namespace) -> None:
    """``--show``/``--show-dir``: every test image, for mmdet, mmseg and mmpretrain alike
    (the task hooks draw every 50th batch / 5000th sample by default, and mmdet and mmpretrain
    put a relative folder under ``work_dir/<timestamp>/``: an absolute one is used as is)."""
    hooks = cfg.get('default_hooks', {})
    hook = hooks.get('visualization')
    if hook is None:
        raise SystemExit('--show/--show-dir need default_hooks.visualization in the config')
    show_dir = osp.abspath(args.show_dir) if args.show_dir else None
    hook.update(show=args.show, wait_time=args.wait_time, interval=1)
    if scope == 'mmpretrain':
        hook.enable = True
        if show_dir:
            hook.out_dir = show_dir
    elif scope == 'mmdet':
        hook.draw = True
        if show_dir:
            hook.test_out_dir = show_dir
    else:  # mmseg draws through the visualizer's backends: one that writes into show_dir
        hook.draw = True
        if show_dir:
            cfg.visualizer.vis_backends = [dict(type='LocalVisBackend', save_dir=show_dir,
                                                img_save_dir='.')]


def _tta(cfg: Config, scope: str) -> None:
    if scope == 'mmdet' and 'tta_model' not in cfg:
        # mmdet's own default: flip TTA merged with NMS.
        cfg.tta_model = dict(type='DetTTAModel',
                             tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5),
                                          max_per_img=100))
    if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
        raise SystemExit('--tta needs tta_model and tta_pipeline in the config (the mmseg ADE20K '
                         'and mmpretrain ImageNet bases define them)')
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline


def _dump(cfg: Config, scope: str, out: str) -> None:
    if scope == 'mmseg':
        cfg.test_evaluator['output_dir'] = out
        cfg.test_evaluator['keep_results'] = True
        return
    if not out.endswith(('.pkl', '.pickle')):
        raise SystemExit(f'--out must be a .pkl file for {scope} configs, got {out}')
    dump = dict(type='mmdet.DumpDetResults' if scope == 'mmdet' else 'DumpResults',
                out_file_path=out)
    evaluator = cfg.test_evaluator
    cfg.test_evaluator = (list(evaluator) if isinstance(evaluator, (list, tuple)) else
                          [evaluator]) + [dump]


def _to_json(value):
    """Metrics are numpy or torch scalars as often as Python numbers."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def main() -> None:
    args = parse_args()
    with user_errors_as_messages():
        cfg = load_config(args)
        scope = cfg.get('default_scope', 'mmengine')
        # A config's own load_from (e.g. the deploy config of tools/reparameterize.py) is used
        # when no checkpoint is given on the command line.
        args.checkpoint = args.checkpoint or cfg.get('load_from')
        if args.checkpoint is None:
            print_log('No checkpoint given: evaluating the model as initialised by the config.',
                      logger='current', level=30)
        cfg.load_from = args.checkpoint
        install_safety_hooks(cfg, strict=not args.non_strict, train=False)
        if args.show or args.show_dir:
            _visualization(cfg, scope, args)
        if args.tta:
            _tta(cfg, scope)
        if args.out:
            _dump(cfg, scope, args.out)
        setup_distributed(cfg)  # gloo without CUDA; NCCL through mmengine with it
        if args.checkpoint is not None:
            check_checkpoint_file(args.checkpoint)
        check_dataset_paths(cfg, ('test_dataloader', ))
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
        if args.checkpoint is None:
            # Runner.test() loads weights but never runs init_weights: do it, so the baseline
            # is the model exactly as training would start from it.
            model = unwrap_model(runner.model)
            init_weights_quietly(model)
        metrics = runner.test()
    if not is_main_process():  # every rank has the metrics; rank 0 writes them
        return
    path = osp.join(runner.work_dir, 'metrics.json')
    with open(path, 'w') as f:
        json.dump({k: _to_json(v) for k, v in metrics.items()}, f, indent=2)
    print_log(f'metrics written to {path}', logger='current')


if __name__ == '__main__':
    main()
