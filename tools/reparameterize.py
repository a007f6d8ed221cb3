"""Turn a trained mmlk checkpoint into its re-parameterised (deploy) form, with a deploy config.

    python tools/reparameterize.py CONFIG CHECKPOINT OUT.pth [--out-config OUT.py]

Works for any mmlk config (mmseg segmentor, mmdet detector, mmpretrain classifier) whose
backbone has a ``deploy`` form: SLaK (three conv-BN branches -> two biased convs per block) and
RepLKNet (large + 5x5 conv-BN -> one biased large kernel). The whole model is built from the
config, loaded strictly, and switched in float64; the features after the neck must equal the
training form's on a random input (relative error below ``--tol``) or nothing is written.

Writes ``OUT.pth`` (``{'state_dict', 'meta'}``) and a config (default: ``OUT`` with ``.py``)
that inherits CONFIG, builds the backbone with ``deploy=True`` and loads ``OUT.pth``, so
``python tools/test.py OUT.py`` evaluates the deployed model.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from mmlk.utils import setup_torch_load  # noqa: E402

setup_torch_load()

import inspect  # noqa: E402

import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import MODELS, init_default_scope  # noqa: E402

import mmlk  # noqa: E402,F401  (registers the backbones)
from mmlk.models.utils import (CheckpointMismatchError, CheckpointReadError,  # noqa: E402
                               load_checkpoint_file, load_state_dict_checked,
                               save_checkpoint_file, unwrap_state_dict)
from mmlk.ops import switch_to_deploy  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='the training config of the checkpoint')
    parser.add_argument('checkpoint', help='trained checkpoint (training form)')
    parser.add_argument('out', help='deploy checkpoint to write')
    parser.add_argument('--out-config', help='deploy config to write (default: OUT with .py)')
    parser.add_argument('--size', type=int, default=128, help='side of the random check input')
    parser.add_argument('--tol', type=float, default=1e-6,
                        help='largest accepted |deploy - train| / max|train| per output, float64')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries before building the model')
    return parser.parse_args()


def build_model(cfg: Config) -> torch.nn.Module:
    init_default_scope(cfg.get('default_scope', 'mmlk'))
    model_cfg = cfg.model.copy()
    # The trained weights replace any pretrained init; do not read ImageNet files here.
    model_cfg.backbone.init_cfg = None
    if 'pretrained' in model_cfg:
        model_cfg.pretrained = None
    if 'data_preprocessor' not in model_cfg and cfg.get('data_preprocessor') is not None:
        model_cfg.data_preprocessor = cfg.data_preprocessor  # mmpretrain keeps it at top level
    return MODELS.build(model_cfg)


def features(model: torch.nn.Module, x: torch.Tensor):
    out = model.extract_feat(x) if hasattr(model, 'extract_feat') else model(x)
    return [out] if isinstance(out, torch.Tensor) else list(out)


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = build_model(cfg)
    backbone = getattr(model, 'backbone', model)
    if 'deploy' not in inspect.signature(type(backbone).__init__).parameters:
        raise SystemExit(f'error: {type(backbone).__name__} has no deploy form; '
                         'reparameterisable mmlk backbones are SLaK, RepLKNet, '
                         'ShiftWiseConvNeXt and ShiftWiseNet')
    try:
        load_state_dict_checked(model, unwrap_state_dict(load_checkpoint_file(args.checkpoint)))
    except (CheckpointMismatchError, FileNotFoundError) as err:
        raise SystemExit(f'error: {args.checkpoint} does not fit {args.config}:\n{err}')
    except CheckpointReadError as err:
        raise SystemExit(f'error: {err}')
    if getattr(backbone, 'deploy', False):
        raise SystemExit(f'error: {args.checkpoint} is already in deploy form')

    model.eval().double()
    x = torch.randn(2, 3, args.size, args.size, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = features(model, x)
        switch_to_deploy(model)
        after = features(model, x)
    errors = [float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))
              for a, b in zip(after, before)]
    print('relative error per output (float64): ' + ', '.join(f'{e:.2e}' for e in errors))
    if len(after) != len(before) or max(errors) > args.tol:
        raise SystemExit(f'error: the deploy form differs from the training form by more than '
                         f'{args.tol}; nothing written')
    model.float()

    meta = dict(reparameterized_from=osp.abspath(args.checkpoint), config=osp.abspath(args.config))
    save_checkpoint_file(dict(state_dict=model.state_dict(), meta=meta), args.out)
    out_config = args.out_config or osp.splitext(args.out)[0] + '.py'
    with open(out_config, 'w') as f:
        f.write(f'# Deploy form of {osp.basename(args.config)}, written by tools/reparameterize.py\n'
                f'_base_ = [{osp.abspath(args.config)!r}]\n'
                'model = dict(backbone=dict(deploy=True, init_cfg=None))\n'
                f'load_from = {osp.abspath(args.out)!r}\n'
                '# Training-time hooks (sparse training, EMA) do not apply to a deployed model.\n'
                'custom_hooks = []\n')
    print(f'wrote {args.out} and {out_config}')


if __name__ == '__main__':
    main()
