"""Convert an official SLaK checkpoint (VITA-Group/SLaK) into an mmlk/mmengine checkpoint.

    python tools/model_converters/slak_to_mmlk.py SLaK_tiny_checkpoint.pth \
        checkpoints/slak-t_in1k_mmlk.pth --arch tiny --kernel-size 51 49 47 13 5

Accepts the ImageNet files (``{'model': ..., 'model_ema': ..., 'args': ...}``) and the mmseg
0.x / mmdet 2.x downstream ones (``{'state_dict': {'backbone.*': ..., 'decode_head.*': ...}}``,
heads kept). The output ``{'state_dict': {'backbone.*', 'head.fc.*'}, 'meta': ...}`` loads into
an mmpretrain ``ImageClassifier`` with ``mmlk.SLaK`` (``configs/slak_t_in1k.py``) and as a
backbone ``Pretrained`` init. Every backbone tensor is checked against an ``mmlk.SLaK`` of the
given arch and kernel sizes: a checkpoint of another arch or kernel size is refused with both
shapes named.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmlk.models.backbones import SLaK  # noqa: E402
from mmlk.utils.converter_cli import converter_parser, run_converter  # noqa: E402


def main() -> None:
    parser = converter_parser(__doc__)
    parser.add_argument('--arch', default='tiny', choices=sorted(SLaK.arch_zoo))
    parser.add_argument('--kernel-size', type=int, nargs=5, default=[51, 49, 47, 13, 5],
                        metavar=('M0', 'M1', 'M2', 'M3', 'N'),
                        help='official --kernel_size (e.g. 31 29 27 13 5 for the 31x31 ablation)')
    parser.add_argument('--width-factor', type=float, default=1.3)
    args = parser.parse_args()

    def build(state, classification: bool) -> SLaK:
        return SLaK(arch=args.arch, kernel_size=args.kernel_size, width_factor=args.width_factor,
                    out_indices=(3, ) if classification else (0, 1, 2, 3),
                    gap_before_final_norm=classification)

    run_converter(args, build, f'SLaK-{args.arch} with kernel sizes {args.kernel_size}',
                  dict(arch=args.arch, kernel_size=list(args.kernel_size),
                       width_factor=args.width_factor))


if __name__ == '__main__':
    main()
