"""Dense and non-zero parameters, per-layer sparsity and sparse FLOPs of a (sparse) model.

    python tools/analysis/count_params.py configs/slak_t_in1k.py work_dirs/.../epoch_300.pth \
        --shape 224 224 [--per-layer] [--json out.json]

FLOPs are multiply-accumulates of the backbone at 1 x 3 x H x W, counted by mmengine's
FlopAnalyzer; "sparse" scales every conv/linear layer by the density of its weight, which is
how the SLaK paper reports 5.0G for SLaK-T (mmengine alone counts dense).
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmlk.utils import setup_torch_load, sparse_complexity  # noqa: E402

setup_torch_load()

from mmengine.config import Config  # noqa: E402
from mmengine.registry import MODELS, init_default_scope  # noqa: E402
from mmengine.runner import load_checkpoint  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?', help='omitted: the initialised (dense) model')
    parser.add_argument('--shape', type=int, nargs=2, default=[224, 224], metavar=('H', 'W'))
    parser.add_argument('--deploy', action='store_true', help='re-parameterise first')
    parser.add_argument('--per-layer', action='store_true', help='print every layer')
    parser.add_argument('--json', help='also write the numbers to this file')
    args = parser.parse_args()
    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    if cfg.model.get('type') == 'ImageClassifier':  # as Runner.from_cfg does for mmpretrain
        cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    model = MODELS.build(cfg.model)
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint, map_location='cpu', strict=True)
    else:
        model.init_weights()
    backbone = model.backbone
    if args.deploy:
        backbone.switch_to_deploy()
    stats = sparse_complexity(backbone, (3, *args.shape))
    whole = sum(p.numel() for p in model.parameters())
    print(f'model parameters (dense):     {whole / 1e6:.3f} M')
    print(f'backbone parameters (dense):  {stats["params"] / 1e6:.3f} M')
    print(f'backbone non-zero parameters: {stats["nonzero_params"] / 1e6:.3f} M '
          f'(sparsity {stats["sparsity"]:.4f})')
    print(f'backbone GMACs at {args.shape[0]}x{args.shape[1]}: dense {stats["dense_macs"] / 1e9:.3f}, '
          f'sparse {stats["sparse_macs"] / 1e9:.3f}')
    if args.per_layer:
        for name, density in stats['layer_density'].items():
            print(f'  {name}: sparsity {1 - density:.4f}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(stats, model_params=whole), f, indent=2)


if __name__ == '__main__':
    main()
