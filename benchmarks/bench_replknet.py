"""RepLKNet-31B on CPU at 1x3x512x512, in one process: training form vs deploy form, and
mmlk vs mmpretrain's RepLKNet on the same weights.

    python benchmarks/bench_replknet.py [--size 512] [--repeats 9] [--threads N]

Issue targets: the deploy form is faster than the training form (ratio < 1), and mmlk is not
slower than mmpretrain (ratio <= 1) with the same outputs. mmpretrain's module names equal
ours, so its state dict loads into ``mmlk.RepLKNet(final_norm=True)`` as it is; the largest
relative difference of the two outputs is printed.

mmlk's deploy form merges the large-kernel branches (the official ``small_kernel_merged``) and
also folds every conv-BN pair: on channels-last data the 5x5 branch is cheap (the merge alone
measured 0.97-1.02x of the training form, within noise), while the BNs are ~7% of the time.
mmpretrain's deploy form merges the large kernels only.

Why mmlk is faster than mmpretrain: oneDNN's CPU depthwise convolution is 7-10x faster on
channels-last data for 13x13...31x31 kernels (the "single layer" rows measure one 31x31 layer
both ways). mmlk's large-kernel op makes its input channels-last; every later conv, BN and the
residual adds keep that layout, so the copy is paid once per network, not per block.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from timing import Result, bench_main, interleaved_medians  # noqa: E402


def run(size: int = 512, repeats: int = 9):
    """RepLKNet-31B deploy vs training form and mmlk vs mmpretrain; ``(results, notes)``."""
    from mmpretrain.models.backbones import RepLKNet as MMPretrainRepLKNet

    from mmlk.models.backbones import RepLKNet

    torch.manual_seed(0)
    x = torch.randn(1, 3, size, size)
    theirs = MMPretrainRepLKNet('31B', out_indices=(3, ))
    for module in theirs.modules():  # non-trivial BN statistics, as in a trained model
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    ours = RepLKNet('31B', out_indices=(3, ), final_norm=True)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ours_deploy = RepLKNet('31B', out_indices=(3, ), final_norm=True)
    ours_deploy.load_state_dict(theirs.state_dict(), strict=True)
    theirs_deploy = MMPretrainRepLKNet('31B', out_indices=(3, ))
    theirs_deploy.load_state_dict(theirs.state_dict(), strict=True)
    for model in (theirs, ours, ours_deploy, theirs_deploy):
        model.eval()
    ours_deploy.switch_to_deploy()
    theirs_deploy.switch_to_deploy()

    with torch.no_grad():
        ref = theirs(x)[0]
        diffs = {name: float((m(x)[0] - ref).abs().max() / ref.abs().max())
                 for name, m in (('mmlk training form', ours), ('mmlk deploy form', ours_deploy),
                                 ('mmpretrain deploy form', theirs_deploy))}

    def forward(model):
        def run():
            with torch.no_grad():
                model(x)
        return run

    times = interleaved_medians(
        dict(ours=forward(ours), ours_deploy=forward(ours_deploy), theirs=forward(theirs),
             theirs_deploy=forward(theirs_deploy)),
        warmup=1, repeats=repeats)

    side = size // 4
    feat = torch.randn(1, 128, side, side)
    kernel = torch.randn(128, 1, 31, 31)
    feat_cl = feat.contiguous(memory_format=torch.channels_last)
    layer = interleaved_medians(
        dict(nchw=lambda: F.conv2d(feat, kernel, padding=15, groups=128),
             cl=lambda: F.conv2d(feat_cl, kernel, padding=15, groups=128)),
        warmup=1, repeats=repeats)

    # Training step (forward + backward, train mode) at a smaller input: mmpretrain's runs
    # aten's depthwise backward, several seconds per 31x31 layer on CPU.
    train_size = size // 2
    x_train = torch.randn(1, 3, train_size, train_size)

    def train_step(model):
        def run():
            model.zero_grad(set_to_none=True)
            model(x_train)[0].float().mean().backward()
        return run

    ours.train()
    theirs.train()
    train = interleaved_medians(dict(ours=train_step(ours), theirs=train_step(theirs)),
                                warmup=1, repeats=3)

    model, shape = 'RepLKNet-31B', f'1x3x{size}x{size}'
    notes = ('RepLKNet-31B, same outputs as mmpretrain (max |diff| / max |ref|): ' +
             ', '.join(f'{k} {v:.1e}' for k, v in diffs.items()))
    return [
        Result(model, shape, 'mmlk deploy vs mmlk training form', times['ours_deploy'],
               times['ours'], 1.0),
        Result(model, shape, 'mmlk vs mmpretrain, training form', times['ours'], times['theirs'],
               1.0),
        Result(model, shape, 'mmlk vs mmpretrain, deploy form', times['ours_deploy'],
               times['theirs_deploy'], 1.0),
        Result(model, shape, 'mmpretrain deploy vs its training form', times['theirs_deploy'],
               times['theirs']),
        Result('dw conv 31x31', f'1x128x{side}x{side}', 'channels-last vs NCHW', layer['cl'],
               layer['nchw']),
        Result(model, f'1x3x{train_size}x{train_size}',
               'training step (forward+backward) mmlk vs mmpretrain', train['ours'],
               train['theirs'], 0.5),
    ], notes


if __name__ == '__main__':
    bench_main(__doc__, run, size=512, repeats=9)
