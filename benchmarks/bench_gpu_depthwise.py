"""mmlk's Triton depthwise kernels vs cuDNN/aten on a CUDA GPU, in one process.

    python benchmarks/bench_gpu_depthwise.py [--dtype float16] [--batch 64] [--repeats 20]

Per SLaK-T and RepLKNet-31B large-kernel layer at a 224x224 input: forward at batch 1
(inference) and forward+backward at ``--batch`` (training), Triton (``MMLK_DW_IMPL=auto`` on
CUDA) over aten (``MMLK_DW_IMPL=aten``: cuDNN or PyTorch's depthwise kernels). Then the
whole SLaK-T and RepLKNet-31B backbones: training-step images/s (forward+backward, channels-
last, ``--dtype`` under autocast as AmpOptimWrapper does), Triton over aten. Issue target:
Triton >= 2x faster than cuDNN for 31x31 and 51x5 training at batch 64 (ratio <= 0.5).

On a machine without a CUDA device it says so and exits 0 (``run()`` returns no rows, so
``run_all.py`` skips it): the numbers can only be measured on a GPU.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

import torch  # noqa: E402

from timing import Result, bench_main  # noqa: E402

# (model, stage, channels, map side at 224x224, kernel)
LAYERS = [
    ('SLaK-T', 0, 124, 56, (51, 5)), ('SLaK-T', 0, 124, 56, (5, 51)),
    ('SLaK-T', 1, 249, 28, (49, 5)), ('SLaK-T', 2, 499, 14, (47, 5)),
    ('SLaK-T', 3, 998, 7, (13, 5)),
    ('RepLKNet-31B', 0, 128, 56, (31, 31)), ('RepLKNet-31B', 1, 256, 28, (29, 29)),
    ('RepLKNet-31B', 2, 512, 14, (27, 27)), ('RepLKNet-31B', 3, 1024, 7, (13, 13)),
]


def cuda_time(fn, repeats: int, warmup: int = 3) -> float:
    """Median seconds of ``fn()`` measured with CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        samples.append(start.elapsed_time(end) / 1e3)
    return sorted(samples)[len(samples) // 2]


def _pair(fn_for_impl, repeats):
    from mmlk.ops import depthwise_impl
    times = {}
    for impl in ('auto', 'aten', 'auto', 'aten'):  # interleaved, best of two rounds
        with depthwise_impl(impl):
            t = cuda_time(fn_for_impl, repeats)
        times[impl] = min(times.get(impl, float('inf')), t)
    return times['auto'], times['aten']


def run(dtype: str = 'float16', batch: int = 64, repeats: int = 20):
    """Triton vs aten on the GPU; ``([], note)`` without one."""
    if not torch.cuda.is_available():
        return [], 'bench_gpu_depthwise: no CUDA device on this machine; nothing measured'
    from mmlk.models.backbones import RepLKNet, SLaK
    from mmlk.ops import depthwise_conv2d

    dt = getattr(torch, dtype)
    results = []
    for model, stage, channels, side, (kh, kw) in LAYERS:
        name = f'{model} stage {stage} dw {kh}x{kw} ({dtype})'
        weight = torch.randn(channels, 1, kh, kw, device='cuda', dtype=dt, requires_grad=True)
        for n, train in ((1, False), (batch, True)):
            x = torch.randn(n, channels, side, side, device='cuda', dtype=dt).contiguous(
                memory_format=torch.channels_last).requires_grad_(train)

            def step():
                if train:
                    depthwise_conv2d(x, weight).backward(torch.ones_like(x))
                else:
                    with torch.no_grad():
                        depthwise_conv2d(x, weight)

            ours, base = _pair(step, repeats)
            case = ('forward+backward (training)' if train else 'forward (inference)') + \
                ': Triton vs aten/cuDNN'
            target = 0.5 if train and (kh, kw) in ((31, 31), (51, 5)) else None
            results.append(Result(name, f'{n}x{channels}x{side}x{side}', case, ours, base,
                                  target))
    for label, build in (('SLaK-T', lambda: SLaK('tiny', out_indices=(3, ))),
                         ('RepLKNet-31B', lambda: RepLKNet('31B', out_indices=(3, )))):
        net = build().cuda().train().to(memory_format=torch.channels_last)
        x = torch.randn(batch, 3, 224, 224, device='cuda').contiguous(
            memory_format=torch.channels_last)

        def train_step():
            net.zero_grad(set_to_none=True)
            with torch.autocast('cuda', dtype=dt, enabled=dt != torch.float32):
                out = net(x)[-1]
            out.float().mean().backward()

        ours, base = _pair(train_step, max(3, repeats // 4))
        results.append(Result(f'{label} backbone ({dtype})', f'{batch}x3x224x224',
                              f'training step: Triton vs aten (img/s {batch / ours:.0f} vs '
                              f'{batch / base:.0f})', ours, base))
        net = None  # frees the model before the next one is built
        torch.cuda.empty_cache()
    return results, f'GPU: {torch.cuda.get_device_name()}'


if __name__ == '__main__':
    if not torch.cuda.is_available():
        print('bench_gpu_depthwise: no CUDA device on this machine; nothing to measure (the '
              'Triton kernels are tested on CPU by tests/test_depthwise_op.py under '
              'TRITON_INTERPRET=1).')
        sys.exit(0)
    bench_main(__doc__, run, dtype='float16', batch=64, repeats=20)
