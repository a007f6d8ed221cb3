"""Convert the released ShiftwiseConv SW-T checkpoint (lidc54/shift-wiseConv, CVPR 2025) into
an mmlk checkpoint for ``mmlk.ShiftWiseNet``.

    python tools/model_converters/shiftwise_to_mmlk.py checkpoint-best.pth \
        checkpoints/sw-t_in1k_mmlk.pth --arch tiny

The release is ``{'model': ..., 'optimizer': ..., 'args': Namespace}`` with the module names
mmlk keeps; its ghost split and replica tables are not saved, so they are regenerated from the
release's seeds and written as buffers (the output is self-contained). ``head.*`` becomes
``head.fc.*`` and the final ``norm.*`` ``backbone.norm3.*`` (mmpretrain's layout). Every tensor
is checked against ``mmlk.ShiftWiseNet(arch)``; another arch is refused with both shapes named.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmlk.quiet import silence_pinned_stack_warnings  # noqa: E402

silence_pinned_stack_warnings()  # before mmengine is imported

from mmlk.models.backbones import ShiftWiseNet  # noqa: E402
from mmlk.utils.converter_cli import (add_arch_argument, converter_parser,  # noqa: E402
                                      run_converter)


def main() -> None:
    parser = converter_parser(__doc__)
    add_arch_argument(parser, ShiftWiseNet.arch_zoo)
    parser.add_argument('--kernel-size', type=int, nargs=5, default=[51, 49, 47, 13, 3],
                        metavar=('M0', 'M1', 'M2', 'M3', 'k'))
    parser.add_argument('--ghost-ratio', type=float, default=0.23)
    args = parser.parse_args()

    def build(state, classification: bool, arch: str) -> ShiftWiseNet:
        return ShiftWiseNet(arch, kernel_size=args.kernel_size, ghost_ratio=args.ghost_ratio,
                            out_indices=(3, ) if classification else (0, 1, 2, 3),
                            gap_before_final_norm=classification)

    run_converter(args, build, 'ShiftwiseConv SW-{arch}',
                  dict(kernel_size=list(args.kernel_size), ghost_ratio=args.ghost_ratio),
                  archs=sorted(ShiftWiseNet.arch_zoo))


if __name__ == '__main__':
    main()
