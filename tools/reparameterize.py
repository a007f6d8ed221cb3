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
from mmlk.quiet import silence_pinned_stack_warnings  # noqa: E402

silence_pinned_stack_warnings()  # before mmengine is imported

from mmlk.utils import (add_trust_argument, apply_trust, read_config,  # noqa: E402
                        install_safe_checkpoint_loader, user_errors_as_messages)

install_safe_checkpoint_loader()

import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

from mmlk.core.checkpoint_io import atomic_write_bytes, save_checkpoint_file  # noqa: E402
from mmlk.utils.converter_cli import check_output_format  # noqa: E402
from mmlk.ops import switch_to_deploy  # noqa: E402
from mmlk.utils.deploy import (build_model_for_weights, feature_outputs,  # noqa: E402
                               has_deploy_form, load_weights_strictly)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='the training config of the checkpoint')
    parser.add_argument('checkpoint', help='trained checkpoint (training form)')
    parser.add_argument('out', help='deploy checkpoint to write (.pth, or .safetensors: tensors '
                        'only, nothing in it can run code when loaded)')
    parser.add_argument('--format', choices=['pth', 'safetensors'], default=None,
                        help='output format (default: from the extension of OUT)')
    parser.add_argument('--out-config', help='deploy config to write (default: OUT with .py)')
    add_trust_argument(parser)
    parser.add_argument('--overwrite', action='store_true',
                        help='replace OUT / the deploy config if they exist (never an input)')
    parser.add_argument('--size', type=int, default=128, help='side of the random check input')
    parser.add_argument('--tol', type=float, default=1e-6,
                        help='largest accepted |deploy - train| / max|train| per output, float64')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries before building the model')
    return parser.parse_args()


def check_outputs(args: argparse.Namespace) -> str:
    """The deploy config's path; exits if an output would replace an input, or an existing
    file without --overwrite (e.g. ``reparameterize.py CFG.py CKPT CFG.pth`` would otherwise
    write the deploy config over CFG.py, with itself as its _base_)."""
    check_output_format(args.out, args.format)
    out_config = args.out_config or osp.splitext(args.out)[0] + '.py'
    inputs = {osp.realpath(args.config): 'the config', osp.realpath(args.checkpoint):
              'the checkpoint'}
    if osp.realpath(args.out) == osp.realpath(out_config):
        raise SystemExit(f'error: the deploy checkpoint and config would both be {args.out}')
    for what, path in (('deploy checkpoint', args.out), ('deploy config', out_config)):
        if osp.realpath(path) in inputs:
            raise SystemExit(f'error: the {what} {path} is {inputs[osp.realpath(path)]} given '
                             'as input; choose another output name (--out-config for the '
                             'config)')
        if osp.exists(path) and not args.overwrite:
            raise SystemExit(f'error: the {what} {path} exists; pass --overwrite to replace it '
                             'or choose another name')
    return out_config


def main() -> None:
    args = parse_args()
    out_config = check_outputs(args)
    cfg = read_config(args.config)
    apply_trust(args, cfg)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = build_model_for_weights(cfg)
    backbone = getattr(model, 'backbone', model)
    if not has_deploy_form(backbone):
        raise SystemExit(f'error: {type(backbone).__name__} has no deploy form; '
                         'reparameterisable mmlk backbones are SLaK, RepLKNet, '
                         'ShiftWiseConvNeXt and ShiftWiseNet')
    load_weights_strictly(model, args.checkpoint, args.config)
    if getattr(backbone, 'deploy', False):
        raise SystemExit(f'error: {args.checkpoint} is already in deploy form')

    model.eval().double()
    x = torch.randn(2, 3, args.size, args.size, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = feature_outputs(model, x)
        switch_to_deploy(model)
        after = feature_outputs(model, x)
    errors = [float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))
              for a, b in zip(after, before)]
    print('relative error per output (float64): ' + ', '.join(f'{e:.2e}' for e in errors))
    if len(after) != len(before) or max(errors) > args.tol:
        raise SystemExit(f'error: the deploy form differs from the training form by more than '
                         f'{args.tol}; nothing written')
    model.float()

    meta = dict(reparameterized_from=osp.abspath(args.checkpoint), config=osp.abspath(args.config))
    save_checkpoint_file(dict(state_dict=model.state_dict(), meta=meta), args.out)
    atomic_write_bytes((
        f'# Deploy form of {osp.basename(args.config)}, written by tools/reparameterize.py\n'
        f'_base_ = [{osp.abspath(args.config)!r}]\n'
        'model = dict(backbone=dict(deploy=True, init_cfg=None))\n'
        f'load_from = {osp.abspath(args.out)!r}\n'
        '# Training-time hooks (sparse training, EMA) do not apply to a deployed model.\n'
        'custom_hooks = []\n').encode(), out_config)
    print(f'wrote {args.out} and {out_config}')


if __name__ == '__main__':
    with user_errors_as_messages():  # a missing config or checkpoint: one line
        main()
