"""Effective receptive field of a backbone, as in the RepLKNet and SLaK papers.

    python tools/analysis/erf.py CONFIG [--checkpoint CKPT | --layer-scale 1] [--images DIR] \
        [--num-images 50] [--size 1024] [--out-dir work_dirs/erf] [--name NAME]

CONFIG is any config whose ``model.backbone`` is an mmlk backbone or any other registered
backbone (e.g. ``mmpretrain::convnext/convnext-tiny_32xb128_in1k.py`` or
``mmpretrain::resnet/resnet50_8xb32_in1k.py`` for comparison). Images come from ``--images``
(a folder, searched recursively) or, without it, from the embedded synthetic scenes. Each is
resized to ``--size`` and normalised with the config's mean/std; the ReLU'd input gradient of
the last feature map's centre is summed over images (mmlk/utils/erf.py).

Writes ``NAME.npy`` (raw sums), ``NAME.png`` (log10(x + 1) heatmap) and ``NAME.json`` (area
ratio of the smallest centred square reaching t = 20/30/50/99% of the log-scaled
contribution, the papers' table), and prints the table.
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmlk.quiet import silence_pinned_stack_warnings  # noqa: E402

silence_pinned_stack_warnings()  # before mmengine is imported

from mmlk.utils import (add_trust_argument, apply_trust, init_weights_quietly,  # noqa: E402
                        read_config, install_safe_checkpoint_loader, user_errors_as_messages)

install_safe_checkpoint_loader()

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import MODELS, init_default_scope  # noqa: E402

import mmlk  # noqa: E402,F401  (registers the backbones)
from mmlk.core.checkpoint_io import (load_checkpoint_file, load_state_dict_checked,  # noqa: E402
                               strip_prefix, unwrap_state_dict)
from mmlk.utils.erf import DEFAULT_THRESHOLDS, accumulate_erf, erf_table, log_scale  # noqa: E402

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')
IMAGENET_MEAN, IMAGENET_STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file, or pkg::path of an OpenMMLab config')
    parser.add_argument('--checkpoint', help='weights (mmlk/mmengine or official); default: '
                        'the randomly initialised backbone')
    parser.add_argument('--images', help='folder of images (default: embedded synthetic scenes)')
    parser.add_argument('--num-images', type=int, default=50, help='the papers use 50')
    parser.add_argument('--size', type=int, default=1024, help='input side (papers: 1024)')
    parser.add_argument('--out-dir', default='work_dirs/erf')
    parser.add_argument('--name', help='output file stem (default: the config name)')
    parser.add_argument('--layer-scale', type=float,
                        help='random init only: set every layer scale (ConvNeXt-style `gamma`, '
                        'initialised at 1e-6 in SLaK/ConvNeXt, so that a random network is '
                        'nearly its shortcut and every ERF is the same patch) to this value, '
                        'e.g. 1, so the kernels\' reach shows. The papers measure trained '
                        'models: pass --checkpoint for those')
    add_trust_argument(parser)
    parser.add_argument('--seed', type=int, default=0, help='seed of the random init')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    if args.layer_scale is not None and args.checkpoint:
        parser.error('--layer-scale is for randomly initialised backbones (no --checkpoint)')
    return args


def set_layer_scale(backbone: torch.nn.Module, value: float) -> int:
    """Set every layer-scale vector (parameters named ``gamma``) to ``value``; their count."""
    scales = [p for n, p in backbone.named_parameters() if n.split('.')[-1] == 'gamma']
    if not scales:
        raise SystemExit(f'error: --layer-scale: {type(backbone).__name__} has no layer scale '
                         '(parameters named gamma)')
    with torch.no_grad():
        for p in scales:
            p.fill_(value)
    return len(scales)


def build_backbone(cfg: Config, checkpoint: str = None) -> torch.nn.Module:
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    backbone_cfg = cfg.model.backbone.copy()
    backbone_cfg.init_cfg = None
    backbone = MODELS.build(backbone_cfg)
    backbone.eval()  # (some backbones' train() returns None, so no chaining)
    with torch.no_grad():
        pooled = backbone(torch.zeros(1, 3, 64, 64))[-1].dim() == 2
    if pooled:  # classification ConvNeXt-style backbones pool before their norm: keep the map
        backbone = MODELS.build(dict(backbone_cfg, gap_before_final_norm=False))
    if checkpoint is None:
        init_weights_quietly(backbone)
    elif hasattr(backbone, 'load_pretrained'):  # mmlk: official layouts, strict
        backbone.load_pretrained(checkpoint, prefix='backbone.')
    else:
        state = strip_prefix(unwrap_state_dict(load_checkpoint_file(checkpoint)), 'backbone.')
        load_state_dict_checked(backbone, state,
                                ignored_unexpected=lambda k: k.startswith(('head.', 'fc.')))
    backbone.eval()
    return backbone


def image_batches(args, mean, std):
    if args.images:
        paths = sorted(
            osp.join(root, name) for root, _, names in os.walk(args.images) for name in names
            if name.lower().endswith(IMAGE_EXTENSIONS))[:args.num_images]
        if not paths:
            raise SystemExit(f'error: no images ({", ".join(IMAGE_EXTENSIONS)}) under '
                             f'{args.images}')
        images = (cv2.imread(p) for p in paths)
    else:
        from mmlk.utils.synthetic_datasets import STYLES, render_scene
        images = (render_scene(np.random.default_rng([0, i]), args.size, args.size,
                               [i % len(STYLES), (i + 3) % len(STYLES)])[0]
                  for i in range(args.num_images))
    mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    for bgr in images:
        rgb = cv2.cvtColor(cv2.resize(bgr, (args.size, args.size)), cv2.COLOR_BGR2RGB)
        x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
        yield (x - mean) / std


def save_heatmap(erf: np.ndarray, path: str, title: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 4.4), dpi=120)
    image = ax.imshow(log_scale(erf), cmap='RdYlGn', interpolation='nearest')
    ax.set_title(title, fontsize=9)
    ax.set_xlabel('x (input pixels)')
    ax.set_ylabel('y (input pixels)')
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label('log10(x + 1), x = summed ReLU(d centre output / d input)')
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    cfg = read_config(args.config)
    apply_trust(args, cfg)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    torch.manual_seed(args.seed)  # the random init is reproducible
    backbone = build_backbone(cfg, args.checkpoint)
    if args.layer_scale is not None:
        count = set_layer_scale(backbone, args.layer_scale)
        print(f'random init with every layer scale set to {args.layer_scale:g} ({count} blocks)')
    preprocessor = cfg.model.get('data_preprocessor') or cfg.get('data_preprocessor') or {}
    mean, std = preprocessor.get('mean', IMAGENET_MEAN), preprocessor.get('std', IMAGENET_STD)
    erf = accumulate_erf(lambda x: backbone(x)[-1], image_batches(args, mean, std))

    name = args.name or osp.splitext(osp.basename(args.config.split('::')[-1]))[0]
    os.makedirs(args.out_dir, exist_ok=True)
    stem = osp.join(args.out_dir, name)
    np.save(stem + '.npy', erf)
    table = erf_table(erf, DEFAULT_THRESHOLDS)
    source = args.checkpoint or ('random init' if args.layer_scale is None else
                                 f'random init, layer scale {args.layer_scale:g}')
    save_heatmap(erf, stem + '.png', f'{name} ({source}), {args.size}px')
    with open(stem + '.json', 'w') as f:
        json.dump(dict(config=args.config, checkpoint=args.checkpoint, size=args.size,
                       layer_scale=args.layer_scale,
                       images=args.images or 'embedded', num_images=args.num_images,
                       area_ratio={f't={t:g}': r for t, r in table.items()}), f, indent=2)
    print(f'ERF of {name} ({source}) at {args.size}x{args.size}, log10(x+1)-scaled:')
    print('| t | ' + ' | '.join(f'{t:.0%}' for t in table) + ' |')
    print('|---|' + '---|' * len(table))
    print('| area ratio | ' + ' | '.join(f'{r:.4f}' for r in table.values()) + ' |')
    print(f'wrote {stem}.npy, {stem}.png, {stem}.json')


if __name__ == '__main__':
    with user_errors_as_messages():  # a missing config or checkpoint: one line
        main()
