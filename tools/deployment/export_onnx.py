"""Export a trained mmlk model to ONNX, re-parameterised, and check it with onnxruntime.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT OUT.onnx \
        [--part auto|backbone] [--shape 224 224] [--dynamic-hw] [--tol 1e-4]

Builds the config's model, loads CHECKPOINT strictly (a training-form or a deploy
checkpoint), switches reparameterisable backbones (SLaK, RepLKNet, shift-wise) to their deploy
form, and exports:

* ``--part auto`` (default): a classifier's logits (mmpretrain), a segmentor's decode-head
  logits (mmseg, tensor mode), a detector's neck features (mmdet: the RoI heads need mmcv ops
  the exporter cannot write);
* ``--part backbone``: the backbone's output feature maps.

The input size is fixed to ``--shape`` unless ``--dynamic-hw`` is given: then height and width
are free multiples of 32 (the networks' total stride; outputs follow), and the check also
runs at a second size. Backbones, detectors' necks and classifiers export this way; a graph
that keeps the example's size somewhere (UperNet's pyramid pooling: adaptive pooling is
written with fixed kernels) is refused at the second size and nothing is written. One
self-contained ``.onnx`` file is written (weights inside); the tool prints its path.

The graph is run by onnxruntime on the same random input as PyTorch and the largest
difference is printed; above ``--tol`` (relative to the largest PyTorch output) the tool exits
with an error and writes nothing. Needs ``onnx``, ``onnxruntime`` and ``onnxscript`` (torch
2.14's exporter): ``pip install -r requirements/deploy.txt`` (the environment ``make env``
builds has them).
"""
import argparse
import os
import os.path as osp
import sys
import tempfile

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmlk.quiet import silence_pinned_stack_warnings  # noqa: E402

silence_pinned_stack_warnings()  # before mmengine is imported

from mmlk.utils import (add_trust_argument, apply_trust, read_config,  # noqa: E402
                        install_safe_checkpoint_loader, user_errors_as_messages)

install_safe_checkpoint_loader()

import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402
from torch import nn  # noqa: E402

from mmlk.compat import DEFAULT_ONNX_OPSET, onnx_export  # noqa: E402
from mmlk.ops import switch_to_deploy  # noqa: E402
from mmlk.utils.deploy import (build_model_for_weights, has_deploy_form,  # noqa: E402
                               load_weights_strictly)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('out', help='the .onnx file to write')
    parser.add_argument('--part', choices=['auto', 'backbone'], default='auto')
    parser.add_argument('--shape', type=int, nargs=2, default=[224, 224], metavar=('H', 'W'),
                        help='the example input size; the exported size unless --dynamic-hw')
    parser.add_argument('--dynamic-hw', action='store_true',
                        help='export height and width as free multiples of 32 (checked at '
                             '--shape and at a second size)')
    add_trust_argument(parser)
    parser.add_argument('--opset', type=int, default=DEFAULT_ONNX_OPSET,
                        help='ONNX opset (default: %(default)s, the newest this torch\'s '
                             'exporter writes correctly)')
    parser.add_argument('--tol', type=float, default=1e-4,
                        help='largest accepted |onnxruntime - torch| / max |torch|')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


# The networks' total stride: their input sizes are multiples of it (--dynamic-hw).
STRIDE = 32


class ExportedPart(nn.Module):
    """The tensor-in, tensors-out part of an OpenMMLab model that is exported."""

    def __init__(self, model: nn.Module, part: str) -> None:
        super().__init__()
        self.model, self.part = model, part

    def forward(self, x: torch.Tensor):
        model = self.model
        if self.part == 'backbone':
            return tuple(model.backbone(x))
        if self.part == 'classifier':
            return model.head(model.neck(model.backbone(x)) if model.with_neck
                              else model.backbone(x))
        if self.part == 'segmentor':
            return model._forward(x)
        return tuple(model.extract_feat(x))  # detector: neck features


def choose_part(model: nn.Module, requested: str) -> str:
    if requested == 'backbone':
        return 'backbone'
    kind = type(model).__name__
    if hasattr(model, 'head') and hasattr(model, 'neck') and 'Classifier' in kind:
        return 'classifier'
    if hasattr(model, 'decode_head'):
        return 'segmentor'
    if hasattr(model, 'extract_feat'):
        return 'detector'
    raise SystemExit(f'error: do not know what to export of a {kind}; use --part backbone')


def flatten(outputs):
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    return [t for out in outputs for t in flatten(out)]


def main() -> None:
    args = parse_args()
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise SystemExit('error: onnxruntime is not installed: pip install -r '
                         'requirements/deploy.txt (onnx, onnxruntime, onnxscript)') from None
    cfg = read_config(args.config)
    apply_trust(args, cfg)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = build_model_for_weights(cfg)
    load_weights_strictly(model, args.checkpoint, args.config)
    model.eval()
    backbone = getattr(model, 'backbone', model)
    if has_deploy_form(backbone) and not getattr(backbone, 'deploy', False):
        switch_to_deploy(model)
        print(f'{type(backbone).__name__}: re-parameterised to the deploy form')
    part = choose_part(model, args.part)
    wrapper = ExportedPart(model, part).eval()
    x = torch.randn(1, 3, *args.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = [t.numpy() for t in flatten(wrapper(x))]
    names = [f'output{i}' for i in range(len(reference))]
    directory = osp.dirname(osp.abspath(args.out))
    os.makedirs(directory, exist_ok=True)
    # Written under a temporary name and published only once onnxruntime agrees with PyTorch:
    # a failed check never leaves an unverified file under the requested name.
    fd, tmp = tempfile.mkstemp(suffix='.onnx', dir=directory,
                               prefix=f'.{osp.basename(args.out)}.partial-{os.getpid()}-')
    os.close(fd)
    try:
        worst, summary = export_and_check(wrapper, x, tmp, names, reference, args.opset,
                                          STRIDE if args.dynamic_hw else 0, args.tol)
        if worst > args.tol:
            raise SystemExit(f'error: onnxruntime differs from PyTorch by {worst:.2e} > --tol '
                             f'{args.tol}; nothing written')
        os.replace(tmp, args.out)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    size = ('1x3xHxW, H and W any multiples of 32' if args.dynamic_hw
            else f'1x3x{args.shape[0]}x{args.shape[1]} fixed')
    print(f'wrote {args.out} (one self-contained file; {part}, input {size}, {summary})')


def export_and_check(wrapper, x, path: str, names, reference, opset: int, dynamic_hw: int = 0,
                     tol: float = 1e-4):
    """Export to ``path``, run it in onnxruntime; (worst relative error, node summary). With
    ``dynamic_hw`` the file is also checked at a second input size."""
    import onnxruntime
    # One self-contained file (weights inside, not in a .data file beside it that names the
    # temporary file): it is published by one rename. mmlk's largest model, RepLKNet-XL, is
    # well under protobuf's 2 GB.
    try:
        onnx_export(wrapper, (x, ), path, dynamic_hw=dynamic_hw, input_names=['input'],
                    output_names=names, opset_version=opset, verbose=False)
    except Exception as err:  # the exporter's own limits, e.g. torch 2.1 and adaptive pooling
        first = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        hint = ('export without --dynamic-hw' if dynamic_hw else
                'a newer torch exports more (2.5+: the dynamo exporter), or --part backbone')
        raise SystemExit(f'error: torch {torch.__version__}\'s exporter cannot write this graph'
                         f'{" with free height and width" if dynamic_hw else ""} ({first}); '
                         f'{hint} (nothing written)') from None
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    inputs = [(x, reference)]
    if dynamic_hw:  # a second size: the graph must not have kept the example's
        other = torch.randn(1, 3, x.shape[2] + dynamic_hw, x.shape[3] + 2 * dynamic_hw,
                            generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            inputs.append((other, [t.numpy() for t in flatten(wrapper(other))]))
    worst = 0.0
    for index, (example, expected) in enumerate(inputs):
        outputs = session.run(None, {session.get_inputs()[0].name: example.numpy()})
        if len(outputs) != len(expected):
            raise SystemExit(f'error: onnxruntime returned {len(outputs)} outputs, PyTorch '
                             f'{len(expected)}')
        for name, ours, theirs in zip(names, outputs, expected):
            if ours.shape != theirs.shape:
                raise SystemExit(f'error: {name}: onnxruntime shape {ours.shape} != PyTorch '
                                 f'{theirs.shape}')
            error = float(abs(ours - theirs).max() / max(abs(theirs).max(), 1e-12))
            worst = max(worst, error)
            print(f'{name} {tuple(theirs.shape)}: max |onnxruntime - torch| / max |torch| = '
                  f'{error:.2e}')
        if index == 1 and worst > tol:
            raise SystemExit(
                f'error: exported with --dynamic-hw, the graph matches PyTorch at '
                f'{tuple(x.shape[2:])} but not at {tuple(example.shape[2:])} ({worst:.2e} > '
                f'--tol {tol}): part of it keeps the example\'s size (e.g. adaptive pooling, '
                "as UperNet's pyramid pooling, is written with fixed kernels); export without "
                '--dynamic-hw (nothing written)')
    nodes = __import__('onnx').load(path).graph.node
    return worst, f'{len(nodes)} nodes: {", ".join(sorted({n.op_type for n in nodes}))}'


if __name__ == '__main__':
    with user_errors_as_messages():  # a missing config or checkpoint: one line
        main()
