"""Convert an official SLaK checkpoint (VITA-Group/SLaK) into an mmlk/mmengine checkpoint.

    python tools/model_converters/slak_to_mmlk.py SLaK_tiny_checkpoint.pth \
        checkpoints/slak-t_in1k_mmlk.pth --arch tiny --kernel-size 51 49 47 13 5

Accepts the ImageNet files (``{'model': ..., 'model_ema': ..., 'args': ...}``) and the mmseg
0.x / mmdet 2.x downstream ones (``{'state_dict': {'backbone.*': ...}}``). The output
``{'state_dict': {'backbone.*', 'head.fc.*'}, 'meta': ...}`` loads into an mmpretrain
``ImageClassifier`` with ``mmlk.SLaK`` (``configs/slak_t_in1k.py``) and as a backbone
``Pretrained`` init. Every backbone tensor is checked against an ``mmlk.SLaK`` of the given arch
and kernel sizes: a checkpoint of another arch or kernel size is refused with both shapes named.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import torch  # noqa: E402

from mmlk.models.backbones import SLaK  # noqa: E402
from mmlk.models.utils import (CheckpointMismatchError, convert_to_mmlk,  # noqa: E402
                               load_checkpoint_file, strip_prefix, unwrap_state_dict)


def convert_slak(checkpoint: dict, arch: str = 'tiny', kernel_size=(51, 49, 47, 13, 5),
                 width_factor: float = 1.3, use_ema: bool = False):
    """Return ``(mmlk state dict, unused keys)`` for an official SLaK checkpoint."""
    state = strip_prefix(unwrap_state_dict(checkpoint, use_ema=use_ema), 'backbone.')
    classification = any(k.startswith('head.') for k in state)
    backbone = SLaK(arch=arch, kernel_size=kernel_size, width_factor=width_factor,
                    out_indices=(3, ) if classification else (0, 1, 2, 3),
                    gap_before_final_norm=classification)
    return convert_to_mmlk(state, backbone, rename=backbone.convert_official_keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='official checkpoint')
    parser.add_argument('dst', help='output mmlk checkpoint')
    parser.add_argument('--arch', default='tiny', choices=sorted(SLaK.arch_zoo))
    parser.add_argument('--kernel-size', type=int, nargs=5, default=[51, 49, 47, 13, 5],
                        metavar=('M0', 'M1', 'M2', 'M3', 'N'),
                        help='official --kernel_size (e.g. 31 29 27 13 5 for the 31x31 ablation)')
    parser.add_argument('--width-factor', type=float, default=1.3)
    parser.add_argument('--use-ema', action='store_true', help='convert model_ema if present')
    args = parser.parse_args()
    try:
        state, unused = convert_slak(load_checkpoint_file(args.src), args.arch, args.kernel_size,
                                     args.width_factor, args.use_ema)
    except CheckpointMismatchError as err:
        raise SystemExit(f'error: {args.src} is not an official SLaK-{args.arch} checkpoint with '
                         f'kernel sizes {args.kernel_size}:\n{err}')
    if unused:
        print(f'warning: {len(unused)} checkpoint key(s) have no place in SLaK and were dropped: '
              f'{", ".join(sorted(unused)[:12])}')
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    meta = dict(converted_from=osp.basename(args.src), arch=args.arch,
                kernel_size=list(args.kernel_size), width_factor=args.width_factor)
    torch.save(dict(state_dict=state, meta=meta), args.dst)
    print(f'wrote {len(state)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
