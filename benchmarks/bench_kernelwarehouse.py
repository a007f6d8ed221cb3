"""KernelWarehouse on CPU, in one process: KW-ResNet50 (1x, 4x) vs ResNet50, and mmlk's KW
conv execution vs the official one on the same weights.

    python benchmarks/bench_kernelwarehouse.py [--size 224] [--repeats 5] [--threads N]

Rows:

* ``KW-ResNet50 b vs ResNet50`` at batch 1, 8 and 16 (mmpretrain's ResNet50, eval mode): the cost
  of dynamic kernels (attention, per-sample kernel assembly, per-sample convs). No target: the
  paper reports KW as slower than its static baseline.
* ``mmlk vs official execution`` (target <= 0.67, i.e. >= 1.5x faster): the same network and
  weights, once with mmlk's ``KWConvNd.forward`` and once with a faithful re-statement of the
  official forward (assemble with one ``mm`` + permute, then one conv with the batch folded
  into the groups, ``groups = B * g``). Outputs are checked equal (max |diff| printed).

Where mmlk's speed comes from: a per-sample 1x1 conv is a batched matmul (``torch.bmm`` on
``[B, C_out, C_in] x [B, C_in, HW]``), which oneDNN runs several times faster than a grouped
conv with ``B`` groups (measured per layer below); 1x1 convs are two thirds of ResNet50's KW
layers. A batch of one runs as a plain conv. Spatial convs keep the grouped conv, which
measured fastest of grouped conv / per-sample loop / unfold + bmm on large maps.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from timing import Result, bench_main, interleaved_medians  # noqa: E402


def run(size: int = 224, repeats: int = 5):
    from mmpretrain.models.backbones import ResNet

    from mmlk.models.backbones import KWResNet
    from mmlk.ops import KWConvNd

    torch.manual_seed(0)
    resnet = ResNet(50, out_indices=(3, ))
    resnet.eval()  # (mmpretrain's ResNet.train returns None)
    results, notes = [], []
    for budget in ('1x', '4x'):
        ours = KWResNet(50, budget).eval()
        official = KWResNet(50, budget).eval()
        official.load_state_dict(ours.state_dict())
        for module in official.modules():  # KWConvNd.forward_official: the official execution
            if isinstance(module, KWConvNd):
                module.forward = module.forward_official
        for batch in (1, 8, 16):
            x = torch.randn(batch, 3, size, size)
            with torch.no_grad():
                a, b = ours(x)[0], official(x)[0]
            diff = float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))
            notes.append(f'KW-ResNet50 {budget} batch {batch}: mmlk vs official max |diff| / '
                         f'max |out| = {diff:.1e}')

            def forward(model):
                def call():
                    with torch.no_grad():
                        model(x)
                return call

            times = interleaved_medians(dict(ours=forward(ours), official=forward(official),
                                             resnet=forward(resnet)), warmup=1, repeats=repeats)
            shape = f'{batch}x3x{size}x{size}'
            results.append(Result(f'KW-ResNet50 {budget}', shape, 'mmlk vs official execution',
                                  times['ours'], times['official'], 0.67))
            results.append(Result(f'KW-ResNet50 {budget}', shape, 'vs ResNet50 (mmpretrain)',
                                  times['ours'], times['resnet']))

    # One point-wise KW layer, bmm vs the grouped conv (stage 0 of ResNet50, batch 8).
    kernel = torch.randn(8 * 64, 256, 1, 1)
    feat = torch.randn(8, 256, size // 4, size // 4)
    layer = interleaved_medians(dict(
        bmm=lambda: torch.bmm(kernel.view(8, 64, 256), feat.view(8, 256, -1)),
        grouped=lambda: F.conv2d(feat.view(1, -1, size // 4, size // 4), kernel, groups=8)),
        warmup=1, repeats=repeats)
    results.append(Result('per-sample 1x1 conv 256->64', f'8x256x{size // 4}x{size // 4}',
                          'bmm vs grouped conv', layer['bmm'], layer['grouped']))
    return results, '; '.join(notes)


if __name__ == '__main__':
    bench_main(__doc__, run, size=224, repeats=5)
