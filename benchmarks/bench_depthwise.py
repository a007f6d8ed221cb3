"""mmlk's depthwise op (mmlk/ops/depthwise/) vs aten on CPU, per large-kernel layer shape of
SLaK-T and RepLKNet-31B at a 512x512 input (batch 1), in one process.

    python benchmarks/bench_depthwise.py [--batch 1] [--repeats 5] [--threads N]

Per shape: forward+backward (input, weight and bias gradients) of mmlk's op vs aten's, the
backward alone vs aten's backward, the op's backward over its forward (issue target: the
large kernels' backward <= 2x their forward; SLaK's 5x5 branch is shown without it: with 25
taps it is bound by memory traffic, not arithmetic), and the float32 weight gradient of the
compiled kernel vs the grouped-convolution formulation it replaced. Both compute the same
gradients (max relative difference printed in the notes, vs a float64 reference for each).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from timing import Result, bench_main, interleaved_medians  # noqa: E402

# (model, stage, channels, map side at 512x512, kernel)
SHAPES = [
    ('SLaK-T', 0, 124, 128, (51, 5)), ('SLaK-T', 0, 124, 128, (5, 51)),
    ('SLaK-T', 0, 124, 128, (5, 5)), ('SLaK-T', 1, 249, 64, (49, 5)),
    ('SLaK-T', 2, 499, 32, (47, 5)), ('SLaK-T', 3, 998, 16, (13, 5)),
    ('RepLKNet-31B', 0, 128, 128, (31, 31)), ('RepLKNet-31B', 1, 256, 64, (29, 29)),
    ('RepLKNet-31B', 2, 512, 32, (27, 27)), ('RepLKNet-31B', 3, 1024, 16, (13, 13)),
]


def run(batch: int = 1, repeats: int = 5):
    """Per-shape op vs aten times; ``(results, notes)``."""
    from mmlk.ops import depthwise_conv2d, depthwise_impl
    from mmlk.ops.depthwise import cpu_kernel
    from mmlk.ops.depthwise.cpu_kernel import grad_weight_grouped

    results, errors = [], []
    for model, stage, channels, side, (kh, kw) in SHAPES:
        torch.manual_seed(0)
        x = torch.randn(batch, channels, side, side).contiguous(
            memory_format=torch.channels_last).requires_grad_()
        weight = torch.randn(channels, 1, kh, kw, requires_grad=True)
        bias = torch.randn(channels, requires_grad=True)
        grad = torch.randn(batch, channels, side, side).contiguous(
            memory_format=torch.channels_last)
        saved = {}

        def forward(impl):
            def call():
                with depthwise_impl(impl), torch.no_grad():
                    depthwise_conv2d(x, weight, bias)
            return call

        def step(impl):
            def call():
                x.grad = weight.grad = bias.grad = None
                with depthwise_impl(impl):
                    depthwise_conv2d(x, weight, bias).backward(grad)
                saved[impl] = weight.grad
            return call

        def weight_grad(fn):
            return lambda: fn(x.detach(), grad, (kh, kw))

        times = interleaved_medians(dict(
            fwd=forward('auto'), ours=step('auto'), aten=step('aten'),
            kernel=weight_grad(cpu_kernel.grad_weight), grouped=weight_grad(grad_weight_grouped)),
            warmup=1, repeats=repeats)
        x64, w64, b64 = (t.detach().double().requires_grad_() for t in (x, weight, bias))
        F.conv2d(x64, w64, b64, padding=(kh // 2, kw // 2), groups=channels).backward(
            grad.double())
        scale = float(w64.grad.abs().max())
        err = {k: float((v.double() - w64.grad).abs().max()) / scale for k, v in saved.items()}
        errors.append(f'{kh}x{kw} C{channels}: mmlk {err["auto"]:.1e}, aten {err["aten"]:.1e}')
        name = f'{model} stage {stage} dw {kh}x{kw}'
        shape = f'{batch}x{channels}x{side}x{side}'
        backward_ours = times['ours'] - times['fwd']
        backward_aten = times['aten'] - times['fwd']
        results += [
            Result(name, shape, 'forward+backward: mmlk op vs aten', times['ours'],
                   times['aten']),
            Result(name, shape, 'backward: mmlk op vs aten', backward_ours, backward_aten),
            Result(name, shape, 'mmlk op: backward vs its forward', backward_ours,
                   times['fwd'], 2.0 if kh * kw > 25 else None),
            Result(name, shape, 'weight gradient: compiled kernel vs grouped-conv formulation',
                   times['kernel'], times['grouped']),
        ]
    notes = ('depthwise op, weight-gradient error vs float64 (max |diff| / max |ref|): '
             + '; '.join(errors))
    return results, notes


if __name__ == '__main__':
    bench_main(__doc__, run, batch=1, repeats=5)
