"""Convert an official RepLKNet checkpoint (DingXiaoH/RepLKNet-pytorch) into an mmlk checkpoint.

    python tools/model_converters/replknet_to_mmlk.py RepLKNet-31B_ImageNet-1K_224.pth \
        checkpoints/replknet-31b_in1k_mmlk.pth --arch 31B

Accepts the ImageNet files (raw state dicts, or under ``model``/``module``), the official mmseg
0.x / mmdet 2.x downstream checkpoints (``{'state_dict': {'backbone.*': ..., heads}}``, heads
kept as they are) and mmpretrain's converted files. Training-form and re-parameterised
(``lkb_reparam``) checkpoints are both recognised, as are XL downstream models with a BN on
every output (``stages.*.norm``). The classification BN ``norm.*`` becomes
``backbone.stages.3.norm.*`` and ``head.*`` becomes ``head.fc.*`` (mmpretrain's layout), so the
result loads into ``configs/replknet_31b_in1k.py`` and as a ``Pretrained`` backbone init.

Every backbone tensor is checked against an ``mmlk.RepLKNet`` of the given arch: a checkpoint
of another arch is refused with the offending keys and both shapes named, before anything is
written.
"""
import os.path as osp
import re
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmlk.quiet import silence_pinned_stack_warnings  # noqa: E402

silence_pinned_stack_warnings()  # before mmengine is imported

from mmlk.models.backbones import RepLKNet  # noqa: E402
from mmlk.utils.converter_cli import (add_arch_argument, converter_parser,  # noqa: E402
                                      run_converter)


def main() -> None:
    parser = converter_parser(__doc__)
    add_arch_argument(parser, RepLKNet.arch_zoo)
    args = parser.parse_args()

    def build(state, classification: bool, arch: str) -> RepLKNet:
        deploy = any('.lkb_reparam.' in k for k in state)
        if classification:
            return RepLKNet(arch, out_indices=(3, ), final_norm=True, deploy=deploy)
        # Output norms exist only in official XL downstream models (norm_intermediate_features).
        with_norms = any(re.match(r'stages\.\d\.norm\.', k) for k in state)
        return RepLKNet(arch, out_indices=(0, 1, 2, 3), deploy=deploy,
                        norm_intermediate_features=with_norms)

    run_converter(args, build, 'RepLKNet-{arch}', {}, archs=sorted(RepLKNet.arch_zoo))


if __name__ == '__main__':
    main()
