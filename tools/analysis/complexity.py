"""Parameters and FLOPs of a model's backbone: dense and non-zero, training and deploy form.

    python tools/analysis/complexity.py CONFIG [CKPT] --shape 224 224 [--per-layer] [--json F]

FLOPs are multiply-accumulates (MACs, what papers call FLOPs) of the backbone on one
1 x 3 x H x W image, counted by mmengine.analysis's FlopAnalyzer. "Sparse" MACs scale every
conv/linear layer by the density of its weight, which is how the SLaK paper reports 5.0G for
SLaK-T at 40% sparsity (mmengine alone counts dense). For backbones with a deploy form (SLaK,
RepLKNet) both forms are reported; the deploy form is built by re-parameterising the loaded
weights, so its non-zero counts are the real ones.
"""
import argparse
import copy
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmlk.quiet import silence_pinned_stack_warnings  # noqa: E402

silence_pinned_stack_warnings()  # before mmengine is imported

from mmlk.utils import (add_trust_argument, apply_trust, init_weights_quietly,  # noqa: E402
                        read_config, install_safe_checkpoint_loader, sparse_complexity,
                        user_errors_as_messages)

install_safe_checkpoint_loader()

from mmengine.config import DictAction  # noqa: E402

from mmlk.utils.deploy import build_model_for_weights, load_weights_strictly  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?', help='omitted: the initialised (dense) model')
    parser.add_argument('--shape', type=int, nargs=2, default=[224, 224], metavar=('H', 'W'))
    add_trust_argument(parser)
    parser.add_argument('--per-layer', action='store_true', help='print every layer\'s sparsity')
    parser.add_argument('--json', help='also write the numbers to this file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    if args.json:  # before the computation, so a bad path fails at once
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
    cfg = read_config(args.config)
    apply_trust(args, cfg)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = build_model_for_weights(cfg)  # the checkpoint (or the init) decides the weights
    if args.checkpoint:
        load_weights_strictly(model, args.checkpoint, args.config)
    else:
        init_weights_quietly(model)
    model.eval()
    forms = {'training': model.backbone}
    if callable(getattr(model.backbone, 'switch_to_deploy', None)) and not getattr(
            model.backbone, 'deploy', False):
        forms['deploy'] = copy.deepcopy(model.backbone)
        forms['deploy'].switch_to_deploy()
    results = {name: sparse_complexity(backbone, (3, *args.shape))
               for name, backbone in forms.items()}
    whole = sum(p.numel() for p in model.parameters())
    h, w = args.shape
    print(f'{osp.basename(args.config)}: whole model {whole / 1e6:.3f} M parameters; backbone '
          f'at {h}x{w}:')
    print('| form | params (M) | non-zero (M) | sparsity | GMACs dense | GMACs sparse |')
    print('|---|---|---|---|---|---|')
    for name, stats in results.items():
        print(f'| {name} | {stats["params"] / 1e6:.3f} | {stats["nonzero_params"] / 1e6:.3f} | '
              f'{stats["sparsity"]:.4f} | {stats["dense_macs"] / 1e9:.3f} | '
              f'{stats["sparse_macs"] / 1e9:.3f} |')
    if args.per_layer:
        for name, density in results['training']['layer_density'].items():
            print(f'  {name}: sparsity {1 - density:.4f}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(model_params=whole, shape=args.shape, **results), f, indent=2)


if __name__ == '__main__':
    with user_errors_as_messages():  # a missing config or checkpoint: one line
        main()
