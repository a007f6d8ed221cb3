"""Convert an official KernelWarehouse ImageNet checkpoint (OSVAI/KernelWarehouse) into mmlk's.

    python tools/model_converters/kw_to_mmlk.py kw1x_resnet50.pth \
        checkpoints/kw1x-resnet50_in1k_mmlk.pth --model resnet50 --budget 1x

Accepts ``{'model': ..., 'model_ema': ...}`` training files, raw or ``module.``-prefixed state
dicts and
mmdet 2.x downstream files (``backbone.*``). Warehouses (``warehouse_manager.weights.i``) and
attention keys keep their names; ``temp_bias`` is not saved upstream and is rebuilt by the
mmlk backbone. The classifier becomes mmpretrain's ``head.fc.*`` (``fc`` for ResNet,
``classifier`` for MobileNetV2, ``head`` for ConvNeXt); the 1/2x MobileNetV2's KW classifier
and its warehouse become ``mmlk.KWLinearClsHead``'s. Every backbone tensor is checked against
the mmlk model of the given ``--model``/``--budget``: another variant is refused with the
offending keys and both shapes named, before anything is written.

It converts ``model`` unless ``--use-ema`` is given, and prints which container it read (also
stored as ``meta.converted_tensors``): ``model`` is what the official evaluation loads
(``main.py --eval --resume`` reads ``checkpoint['model']``); ``--use-ema`` takes the EMA copy
that ConvNeXt's ``model_ema_eval`` measured during training.
"""
import os.path as osp
import re
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmlk.quiet import silence_pinned_stack_warnings  # noqa: E402

silence_pinned_stack_warnings()  # before mmengine is imported

from mmlk.models.backbones import KWConvNeXt, KWMobileNetV2, KWResNet  # noqa: E402
from mmlk.utils.converter_cli import converter_parser, run_converter  # noqa: E402

MODELS = {
    'resnet18': (lambda budget, cls: KWResNet(18, budget), {'fc.': 'head.fc.'}),
    'resnet50': (lambda budget, cls: KWResNet(50, budget), {'fc.': 'head.fc.'}),
    'mobilenetv2_100': (lambda budget, cls: KWMobileNetV2(1.0, budget),
                        {'classifier.': 'head.fc.'}),
    'mobilenetv2_050': (lambda budget, cls: KWMobileNetV2(0.5, budget),
                        {'classifier.': 'head.fc.'}),
    'convnext_tiny': (lambda budget, cls: KWConvNeXt('tiny', budget, gap_before_final_norm=cls,
                                                     out_indices=(3, ) if cls else (0, 1, 2, 3)),
                      {'head.': 'head.fc.'}),
}
# The 1/2x MobileNetV2 classifier is a KW linear in the last (10th) warehouse.
HALF_MBV2_CLASSIFIER = {'classifier.1.': 'head.fc.', 'head.': 'head.'}


def move_half_mbv2_classifier(state):
    """``warehouse_manager.weights.9`` (the classifier's) -> the head's own warehouse."""
    last = 'warehouse_manager.weights.9'
    if last not in state:
        raise SystemExit(f'error: a 1/2x MobileNetV2 checkpoint has {last} (the KW classifier); '
                         'this one does not: check --budget')
    return {('head.warehouse_manager.weights.0' if k == last else k): v
            for k, v in state.items()}


def main() -> None:
    parser = converter_parser(__doc__)
    parser.add_argument('--model', required=True, choices=sorted(MODELS))
    parser.add_argument('--budget', required=True, choices=['1/4x', '1/2x', '1x', '2x', '4x'],
                        help='the checkpoint\'s b (cell_num_ratio): kw1d4x = 1/4x, kw1d2x = 1/2x')
    args = parser.parse_args()
    build_model, renames = MODELS[args.model]
    prepare = None
    if args.model.startswith('mobilenetv2') and args.budget == '1/2x':
        renames, prepare = HALF_MBV2_CLASSIFIER, move_half_mbv2_classifier

    def build(state, classification: bool, arch: str):
        try:
            return build_model(args.budget, classification)
        except ValueError as err:
            raise SystemExit(f'error: {err}')

    name = re.sub(r'_(\d)', r'-\1', args.model)
    run_converter(args, build, f'KW-{name} {args.budget}', dict(model=args.model,
                                                              budget=args.budget),
                  head_renames=renames, prepare=prepare)


if __name__ == '__main__':
    main()
