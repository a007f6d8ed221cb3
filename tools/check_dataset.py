"""Scan a config's datasets once, before training, and report every sample that cannot be used.

    python tools/check_dataset.py CONFIG [--splits train val test] [--cfg-options ...]

Every sample goes through its split's pipeline (unreadable or empty images, label maps with
values outside the classes, 16-bit or colour label maps that mmseg's 8-bit reading would
change, class labels outside the classes, any pipeline error: each reported with its file);
unreadable annotation files and empty splits are named; and the raw annotations (COCO JSON,
VOC XML) are read for what mmdet drops or keeps wrong without a word: boxes with zero or
negative width/height, class names or category ids outside the dataset's classes, boxes
entirely outside their image. Prints a summary per dataset; exits 1 if anything is wrong.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout
from mmlk.quiet import silence_pinned_stack_warnings  # noqa: E402

silence_pinned_stack_warnings()  # before mmengine is imported

from mmlk.utils import install_safe_checkpoint_loader, user_errors_as_messages  # noqa: E402

install_safe_checkpoint_loader()

from mmengine.config import DictAction  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from mmlk.utils.data_checks import (DataSampleError, DatasetReport,  # noqa: E402
                                  build_dataset_with_reports, scan_dataset)
from mmlk.utils import DatasetNotFoundError, check_dataset_paths, read_config  # noqa: E402
from mmlk.utils.data_checks import leaf_datasets  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--splits', nargs='+', default=['train', 'val', 'test'],
                        choices=['train', 'val', 'test'])
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    parser.add_argument('--no-progress', action='store_true')
    args = parser.parse_args()
    cfg = read_config(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    loaders = [f'{s}_dataloader' for s in args.splits if cfg.get(f'{s}_dataloader')]
    try:
        check_dataset_paths(cfg, tuple(loaders))
    except DatasetNotFoundError as err:
        raise SystemExit(f'error: {err}')
    reports, seen = [], set()
    for loader in loaders:
        for index, dataset_cfg in enumerate(leaf_datasets(cfg[loader]['dataset'])):
            key = repr(sorted((k, repr(v)) for k, v in dataset_cfg.items()))
            if key in seen:  # val and test are often the same set
                continue
            seen.add(key)
            name = f'{loader}.dataset' + (f' #{index}' if index else '')
            print(f'scanning {name} ({dataset_cfg.get("type")})')
            try:
                dataset = build_dataset_with_reports(dataset_cfg)
            except DataSampleError as err:  # unreadable annotations, an empty split
                reports.append(DatasetReport(name, bad_samples=[str(err)]))
                continue
            reports.append(scan_dataset(dataset, name, progress=not args.no_progress))
    print('\nSummary')
    for report in reports:
        print(report.summary())
    bad = [r for r in reports if not r.ok]
    print(f'\n{len(reports) - len(bad)} of {len(reports)} datasets clean')
    sys.exit(1 if bad else 0)


if __name__ == '__main__':
    with user_errors_as_messages():  # a missing config or checkpoint: one line
        main()
