"""Convert an official SLaK checkpoint (VITA-Group/SLaK) into an mmlk/mmengine checkpoint.

    python tools/model_converters/slak_to_mmlk.py SLaK_tiny_checkpoint.pth \
        checkpoints/slak-t_in1k_mmlk.pth --arch tiny --kernel-size 51 49 47 13 5

Accepts the ImageNet files (``{'model': ..., 'model_ema': ..., 'args': ...}``) and the mmseg
0.x / mmdet 2.x downstream ones (``{'state_dict': {'backbone.*': ..., 'decode_head.*': ...}}``,
heads kept). The output ``{'state_dict': {'backbone.*', 'head.fc.*'}, 'meta': ...}`` loads into
an mmpretrain ``ImageClassifier`` with ``mmlk.SLaK`` (``configs/slak_t_in1k.py``) and as a
backbone ``Pretrained`` init. Every backbone tensor is checked against an ``mmlk.SLaK`` of the
arch (inferred from the tensors when ``--arch`` is not given) and kernel sizes: a checkpoint of
another arch or kernel size is refused with both shapes named, and so is one with tensors left
over (e.g. SLaK-S blocks beyond SLaK-T's). Nothing is written then.

``--to shiftwise-convnext`` writes the equ-SLaK network instead (``mmlk.ShiftWiseConvNeXt``,
Shift-ConvNets: every decomposed kernel converted to shift-wise strips with identical outputs),
classifier head included, for ``configs/shiftwise_convnext_t_in1k.py``.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmlk.quiet import silence_pinned_stack_warnings  # noqa: E402

silence_pinned_stack_warnings()  # before mmengine is imported

from mmlk.models.backbones import SLaK  # noqa: E402
from mmlk.utils.converter_cli import (add_arch_argument, converter_parser,  # noqa: E402
                                      run_converter)


def to_shiftwise_convnext(state: dict, slak: SLaK) -> dict:
    """The converted SLaK state (``backbone.*`` + heads) as the equ-SLaK ShiftWiseConvNeXt's."""
    from mmlk.models.backbones import ShiftWiseConvNeXt
    slak.load_state_dict({k[len('backbone.'):]: v for k, v in state.items()
                          if k.startswith('backbone.')})
    shift_wise = ShiftWiseConvNeXt.from_slak(slak)
    converted = {f'backbone.{k}': v for k, v in shift_wise.state_dict().items()}
    converted.update((k, v) for k, v in state.items() if not k.startswith('backbone.'))
    return converted


def main() -> None:
    parser = converter_parser(__doc__)
    add_arch_argument(parser, SLaK.arch_zoo)
    parser.add_argument('--kernel-size', type=int, nargs=5, default=[51, 49, 47, 13, 5],
                        metavar=('M0', 'M1', 'M2', 'M3', 'N'),
                        help='official --kernel_size (e.g. 31 29 27 13 5 for the 31x31 ablation)')
    parser.add_argument('--width-factor', type=float, default=1.3)
    parser.add_argument('--to', choices=['slak', 'shiftwise-convnext'], default='slak',
                        help='the mmlk model written: SLaK, or the equ-SLaK ShiftWiseConvNeXt')
    args = parser.parse_args()

    def build(state, classification: bool, arch: str) -> SLaK:
        return SLaK(arch=arch, kernel_size=args.kernel_size, width_factor=args.width_factor,
                    out_indices=(3, ) if classification else (0, 1, 2, 3),
                    gap_before_final_norm=classification)

    def postprocess(state: dict, arch: str) -> dict:
        if args.to == 'slak':
            return state
        classification = any(k.startswith('head.') for k in state)
        return to_shiftwise_convnext(state, build(state, classification, arch))

    run_converter(args, build, f'SLaK-{{arch}} with kernel sizes {args.kernel_size}',
                  dict(kernel_size=list(args.kernel_size), width_factor=args.width_factor,
                       model='ShiftWiseConvNeXt' if args.to == 'shiftwise-convnext' else 'SLaK'),
                  archs=sorted(SLaK.arch_zoo), postprocess=postprocess)


if __name__ == '__main__':
    main()
