"""Write the embedded synthetic datasets (ADE20K, PASCAL VOC, COCO, ImageNet formats).

    python tools/make_demo_data.py all --out data/demo

writes data/demo/ade/ADEChallengeData2016, data/demo/VOCdevkit, data/demo/coco and
data/demo/imagenet, which the configs in configs/demo/ read.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout
from mmlk.quiet import silence_pinned_stack_warnings  # noqa: E402

silence_pinned_stack_warnings()  # before mmengine is imported

from mmlk.utils.synthetic_datasets import DEMO_SUBDIRS, DEMO_WRITERS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('dataset', choices=sorted(DEMO_WRITERS) + ['all'])
    parser.add_argument('--out', default='data/demo', help='demo data root')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true',
                        help='write even into dataset folders that hold other files (they may '
                        'be overwritten); by default only empty folders and earlier demo data')
    parser.add_argument('--num-train', type=int, help='training images (per class for imagenet)')
    parser.add_argument('--num-val', type=int, help='validation images (per class for imagenet)')
    args = parser.parse_args()
    names = sorted(DEMO_WRITERS) if args.dataset == 'all' else [args.dataset]
    for name in names:
        kwargs = dict(seed=args.seed, force=args.force)
        train_key, val_key = {
            'imagenet': ('per_class_train', 'per_class_val'),
            'voc': ('num_train', 'num_test'),
        }.get(name, ('num_train', 'num_val'))
        if args.num_train is not None:
            kwargs[train_key] = args.num_train
        if args.num_val is not None:
            kwargs[val_key] = args.num_val
        try:
            root = DEMO_WRITERS[name](osp.join(args.out, DEMO_SUBDIRS[name]), **kwargs)
        except FileExistsError as err:
            raise SystemExit(f'error: {err}') from None
        print(f'{name}: {root}')


if __name__ == '__main__':
    main()
