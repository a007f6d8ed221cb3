"""mmlk's depthwise op (mmlk/ops/depthwise/): forward and gradients equal aten's, and one
dispatcher chooses among the backends."""
import os

import pytest
import torch
import torch.nn.functional as F

from conftest import needs_triton_interpreter
from mmlk.ops import (DecomposedLargeKernelConv, DepthwiseConv2d, ReparamLargeKernelConv,
                      depthwise_conv2d, depthwise_impl)
from mmlk.ops.depthwise import choose_backend, cpu_kernel
from mmlk.ops.depthwise.function import DepthwiseConvFunction


def aten(x, w, b):
    kh, kw = w.shape[-2:]
    return F.conv2d(x, w, b, padding=(kh // 2, kw // 2), groups=w.shape[0])


def grads(fn, x, w, b, seed=0):
    torch.manual_seed(seed)
    x, w = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    b = None if b is None else b.detach().clone().requires_grad_()
    out = fn(x, w, b)
    upstream = torch.randn(out.shape).to(out.dtype)  # the same values in every dtype
    out.backward(upstream)
    return out, x.grad, w.grad, None if b is None else b.grad


SHAPES = [  # (N, C, H, W, kh, kw)
    (1, 6, 20, 24, 13, 5),   # tall, SLaK's M x 5
    (2, 5, 18, 16, 5, 13),   # wide, N > 1
    (3, 4, 16, 16, 11, 11),  # square, RepLKNet-like
    (2, 3, 6, 7, 15, 13),    # kernel larger than the map
    (1, 8, 9, 9, 5, 5),      # the small branch
    (2, 4, 12, 10, 3, 3),    # below MIN_TAPS: aten's backward
    (4, 2, 5, 30, 1, 9),     # 1-pixel-wide kernel
]


@pytest.mark.parametrize('shape', SHAPES, ids=[str(s) for s in SHAPES])
@pytest.mark.parametrize('bias', [False, True])
@pytest.mark.parametrize('layout', ['nchw', 'channels_last', 'strided'])
def test_gradients_equal_aten_in_fp32(shape, bias, layout):
    n, c, h, w_, kh, kw = shape
    torch.manual_seed(0)
    x = torch.randn(n, c, h, w_)
    if layout == 'channels_last':
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == 'strided':
        x = torch.randn(n, c, h, 2 * w_)[..., ::2]  # non-contiguous
    weight = torch.randn(c, 1, kh, kw)
    b = torch.randn(c) if bias else None
    ours = grads(depthwise_conv2d, x, weight, b)
    with depthwise_impl('aten'):
        ref = grads(depthwise_conv2d, x, weight, b)
    for mine, theirs in zip(ours, ref):
        if theirs is None:
            assert mine is None
            continue
        mine, theirs = mine.detach(), theirs.detach()
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5 * float(theirs.abs().max()))


def test_the_fast_backward_is_used_and_closer_to_float64_than_needed():
    torch.manual_seed(0)
    x, weight = torch.randn(2, 4, 24, 24), torch.randn(4, 1, 17, 5)
    calls = []
    original = DepthwiseConvFunction.backward

    def spy(ctx, grad):
        calls.append(ctx.kernels)
        return original(ctx, grad)
    DepthwiseConvFunction.backward = staticmethod(spy)
    try:
        _, _, grad_w, _ = grads(depthwise_conv2d, x, weight, None)
    finally:
        DepthwiseConvFunction.backward = staticmethod(original)
    assert calls == [cpu_kernel.KERNELS]
    _, _, exact, _ = grads(aten, x.double(), weight.double(), None)
    assert float((grad_w.double() - exact).abs().max() / exact.abs().max()) < 1e-6


# ------------------------------------------------------- the compiled CPU weight gradient
KERNEL_CASES = [  # (N, C, H, W, kh, kw): channel counts around the vector width, tails, N > 1
    (1, 37, 20, 18, 17, 5), (3, 16, 9, 11, 5, 31), (2, 5, 12, 12, 13, 13), (5, 33, 6, 17, 1, 3),
    (1, 70, 8, 8, 15, 15),
]


@pytest.mark.parametrize('case', KERNEL_CASES, ids=[str(c) for c in KERNEL_CASES])
@pytest.mark.parametrize('layout', ['nchw', 'channels_last', 'strided'])
@pytest.mark.parametrize('threads', [1, 2])
def test_compiled_weight_gradient_equals_float64(case, layout, threads):
    n, c, h, w_, kh, kw = case
    torch.manual_seed(0)
    x, grad = torch.randn(n, c, h, w_), torch.randn(n, c, h, w_)
    if layout == 'channels_last':
        x, grad = (t.contiguous(memory_format=torch.channels_last) for t in (x, grad))
    elif layout == 'strided':
        x, grad = torch.randn(n, 2 * c, h, w_)[:, ::2], torch.randn(n, c, h, 1).expand_as(x)
    exact = torch.nn.grad.conv2d_weight(x.double(), (c, 1, kh, kw), grad.double(),
                                        padding=(kh // 2, kw // 2), groups=c)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ours = cpu_kernel.grad_weight(x, grad, (kh, kw))
    finally:
        torch.set_num_threads(old)
    assert ours is not None, 'the kernel did not build on this machine'
    assert ours.shape == (c, 1, kh, kw) and ours.dtype == torch.float32
    scale = float(exact.abs().max())
    assert float((ours.double() - exact).abs().max()) < 1e-6 * scale
    # the grouped-convolution formulation (no compiler, other dtypes) gives the same numbers
    grouped = cpu_kernel.grad_weight_grouped(x, grad, (kh, kw))
    assert float((grouped.double() - exact).abs().max()) < 1e-6 * scale


def test_fp32_backward_uses_the_compiled_kernel(monkeypatch):
    calls = []
    original = cpu_kernel.grad_weight
    monkeypatch.setattr(cpu_kernel, 'grad_weight', lambda *a: calls.append(a[2]) or original(*a))
    x = torch.randn(1, 4, 12, 12, requires_grad=True)
    w = torch.randn(4, 1, 11, 5, requires_grad=True)
    depthwise_conv2d(x, w).sum().backward()
    assert calls == [(11, 5)]
    calls.clear()  # float64 (gradcheck) takes the grouped formulation
    depthwise_conv2d(x.double(), w.double()).sum().backward()
    assert calls == []


def test_kernel_build_is_cached_and_a_missing_compiler_falls_back(monkeypatch, tmp_path):
    monkeypatch.setenv('MMLK_CACHE_DIR', str(tmp_path))
    monkeypatch.setattr(cpu_kernel, '_library', None)
    monkeypatch.setattr(cpu_kernel, '_failed', False)
    runs = []
    real_run = cpu_kernel.subprocess.run
    monkeypatch.setattr(cpu_kernel.subprocess, 'run', lambda cmd, **k: runs.append(cmd) or real_run(
        cmd, **k))
    assert cpu_kernel.load() is not None
    built = list((tmp_path / 'kernels').iterdir())
    assert len(built) == 1 and built[0].suffix == '.so'  # no temporary file left behind
    assert sum('-o' in cmd for cmd in runs) == 1
    monkeypatch.setattr(cpu_kernel, '_library', None)  # a new process: loads the cached build
    assert cpu_kernel.load() is not None
    assert sum('-o' in cmd for cmd in runs) == 1
    monkeypatch.undo()

    # no compiler: one warning, then the grouped formulation gives the same gradient
    monkeypatch.setattr(cpu_kernel, '_library', None)
    monkeypatch.setattr(cpu_kernel, '_failed', False)
    monkeypatch.setattr(cpu_kernel, '_compiler', lambda: None)
    with pytest.warns(UserWarning, match='no C\\+\\+ compiler'):
        assert cpu_kernel.load() is None
    torch.manual_seed(0)
    x, w = torch.randn(2, 3, 10, 10), torch.randn(3, 1, 9, 5)
    _, _, fallback, _ = grads(depthwise_conv2d, x, w, None)
    monkeypatch.undo()
    with depthwise_impl('aten'):
        _, _, reference, _ = grads(depthwise_conv2d, x, w, None)
    torch.testing.assert_close(fallback, reference, rtol=1e-5, atol=1e-5)


def test_kernel_runs_on_torchs_own_openmp_runtime():
    """The library links ``libgomp.so.1`` by soname, which the loader resolves to the runtime
    torch already loaded (torch 2.1's wheel bundles it as ``libgomp-<hash>.so.1`` with that
    soname): one OpenMP team in the process on every stack, and one cached build serves them
    all (the build uses no torch header)."""
    if cpu_kernel.load() is None:
        pytest.skip('no C++ compiler: the kernel is not built')

    with open('/proc/self/maps') as f:
        mapped = {line.split(maxsplit=5)[5].strip() for line in f if len(line.split()) == 6}
    assert any('depthwise_grad_weight-' in path for path in mapped)
    runtimes = {p for p in mapped if os.path.basename(p).startswith(('libgomp', 'libiomp',
                                                                     'libomp'))}
    assert len(runtimes) == 1, f'two OpenMP runtimes in one process: {runtimes}'
    torch_lib = os.path.join(os.path.dirname(torch.__file__), 'lib')
    if any(name.startswith('libgomp') for name in os.listdir(torch_lib)):
        assert runtimes.pop().startswith(torch_lib)  # torch's bundled runtime, not the system's


def test_gradcheck_in_float64():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 1, 5, 7, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(depthwise_conv2d, (x, weight, bias))


def test_bfloat16_and_cpu_autocast_follow_conv2d():
    torch.manual_seed(0)
    x, weight, b = torch.randn(2, 6, 16, 16), torch.randn(6, 1, 9, 5), torch.randn(6)
    ours = grads(depthwise_conv2d, x.bfloat16(), weight.bfloat16(), b.bfloat16())
    ref = grads(aten, x.bfloat16(), weight.bfloat16(), b.bfloat16())
    for mine, theirs in zip(ours, ref):
        mine, theirs = mine.detach(), theirs.detach()
        assert mine.dtype == torch.bfloat16
        torch.testing.assert_close(mine.float(), theirs.float(), rtol=2e-2,
                                   atol=2e-2 * float(theirs.abs().max()))
    # under autocast the conv runs in bf16, as F.conv2d, and the fp32 parameter gets fp32 grads
    weight32 = weight.clone().requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = depthwise_conv2d(x, weight32, b)
        reference = F.conv2d(x, weight, b, padding=(4, 2), groups=6)
    assert out.dtype == reference.dtype == torch.bfloat16
    out.float().sum().backward()
    assert weight32.grad.dtype == torch.float32


def test_bad_kernels_and_impl_names_are_refused(monkeypatch):
    x = torch.randn(1, 4, 8, 8)
    with pytest.raises(ValueError, match='odd kh, kw'):
        depthwise_conv2d(x, torch.randn(4, 1, 4, 5))
    with pytest.raises(ValueError, match='"same" padding'):
        depthwise_conv2d(x, torch.randn(4, 1, 5, 5), padding=(1, 1))
    with pytest.raises(ValueError, match='4 channels'):
        depthwise_conv2d(torch.randn(1, 3, 8, 8), torch.randn(4, 1, 5, 5))
    monkeypatch.setenv('MMLK_DW_IMPL', 'fast')
    with pytest.raises(ValueError, match='accepted: auto, triton, cpu_kernel, aten'):
        depthwise_conv2d(x, torch.randn(4, 1, 5, 5))
    # 0.2's name for aten is refused with the new one, not taken for another backend
    monkeypatch.setenv('MMLK_DW_IMPL', 'native')
    with pytest.raises(ValueError, match="renamed: use 'aten'"):
        depthwise_conv2d(x, torch.randn(4, 1, 5, 5))
    with pytest.raises(ValueError, match="renamed: use 'aten'"):
        with depthwise_impl('native'):
            pass


def test_module_is_a_conv2d_and_falls_back_for_other_configurations():
    conv = DepthwiseConv2d(4, 4, 5, padding=2, groups=4)
    assert isinstance(conv, torch.nn.Conv2d)
    strided = DepthwiseConv2d(4, 4, 5, stride=2, padding=2, groups=4)
    x = torch.randn(1, 4, 10, 10)
    torch.testing.assert_close(strided(x), F.conv2d(x, strided.weight, strided.bias, 2, 2,
                                                    groups=4))
    assert set(conv.state_dict()) == {'weight', 'bias'}


def test_with_cp_and_sparse_masks_keep_the_gradients():
    """Gradient checkpointing recomputes through the op; a masked (zeroed) weight gets the
    dense gradient exactly as with aten, which is what gradient growth reads."""
    from torch.utils.checkpoint import checkpoint
    torch.manual_seed(0)
    layer = DecomposedLargeKernelConv(6, 13, 5).train()
    with torch.no_grad():
        layer.LoRA1.conv.weight[:, :, ::2] = 0  # a sparse mask's zeros
    x = torch.randn(2, 6, 16, 16)

    def run(impl, cp):
        layer.zero_grad()
        with depthwise_impl(impl):
            out = checkpoint(layer, x, use_reentrant=False) if cp else layer(x)
            out.square().mean().backward()
        return [p.grad.clone() for p in layer.parameters()]

    reference = run('aten', False)
    for cp in (False, True):
        for mine, theirs in zip(run('auto', cp), reference):
            torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)


def test_deploy_forms_export_with_plain_convs():
    torch.manual_seed(0)
    block = ReparamLargeKernelConv(4, 11, 3).eval()
    block.switch_to_deploy()
    x = torch.randn(1, 4, 16, 16)
    exported = torch.export.export(block, (x, ))
    targets = {str(n.target) for n in exported.graph.nodes if n.op == 'call_function'}
    assert any('conv' in t for t in targets) and not any('Depthwise' in t for t in targets)
    torch.testing.assert_close(exported.module()(x), block(x))


# ----------------------------------------------------------------------- Triton kernels
TRITON_CASES = [  # (N, C, H, W, kh, kw, layout, dtype); tiny: Triton's interpreter is slow
    (2, 3, 6, 7, 5, 3, 'nchw', torch.float32),
    (1, 4, 5, 6, 7, 7, 'channels_last', torch.float32),
    (2, 2, 4, 4, 9, 5, 'nchw', torch.float32),      # kernel larger than the map
    (1, 3, 6, 5, 3, 7, 'channels_last', torch.bfloat16),
    (2, 2, 5, 5, 5, 5, 'nchw', torch.float16),
]


@needs_triton_interpreter
@pytest.mark.parametrize('case', TRITON_CASES, ids=[f'{c[:6]}-{c[6]}-{c[7]}'.replace(' ', '')
                                                    for c in TRITON_CASES])
def test_triton_kernels_equal_aten_under_the_interpreter(case):
    """The GPU kernels (forward, input and weight gradient, bias) run on CPU through
    ``TRITON_INTERPRET=1`` (set by conftest before Triton is imported)."""
    import os
    assert os.environ.get('TRITON_INTERPRET') == '1'
    n, c, h, w_, kh, kw, layout, dtype = case
    torch.manual_seed(0)
    x = torch.randn(n, c, h, w_)
    if layout == 'channels_last':
        x = x.contiguous(memory_format=torch.channels_last)
    weight, b = torch.randn(c, 1, kh, kw), torch.randn(c)
    with depthwise_impl('triton'):
        ours = grads(depthwise_conv2d, x.to(dtype), weight.to(dtype), b.to(dtype))
    ref = grads(aten, x.double(), weight.double(), b.double())  # exact reference
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert ours[0].dtype == dtype and ours[0].is_contiguous(
        memory_format=torch.channels_last if layout == 'channels_last' else torch.contiguous_format)
    for mine, exact in zip(ours, ref):
        mine, exact = mine.detach().double(), exact.detach()
        scale = float(exact.abs().max())
        assert float((mine - exact).abs().max()) <= tol * scale, (mine - exact).abs().max()


def test_the_dispatcher_picks_the_first_backend_that_supports_the_call():
    cpu = torch.randn(1, 2, 8, 8)
    assert choose_backend(cpu, 35, needs_grad=True).name == 'cpu_kernel'
    # inference, or kernels below 5x5: aten's forward/backward is the same op and faster there
    assert choose_backend(cpu, 35, needs_grad=False).name == 'aten'
    assert choose_backend(cpu, 9, needs_grad=True).name == 'aten'
    assert choose_backend(cpu.to(torch.int32), 35, needs_grad=True).name == 'aten'
    # the table, in order: Triton for CUDA tensors only, the CPU kernel for CPU ones, aten for all
    from mmlk.ops.depthwise import BACKENDS
    assert [b.name for b in BACKENDS] == ['triton', 'cpu_kernel', 'aten']
    triton, cpu_backend, aten_backend = BACKENDS
    assert triton.devices == ('cuda', ) and not triton.supports(cpu, 35, True)
    meta = torch.empty(1, 2, 8, 8, device='meta')  # any other device
    assert not cpu_backend.supports(meta, 35, True) and aten_backend.supports(meta, 35, True)
    # a named backend runs every call
    assert choose_backend(cpu, 9, needs_grad=False, impl='cpu_kernel').name == 'cpu_kernel'


def test_an_auto_backend_that_fails_warns_once_and_the_next_one_is_used(monkeypatch):
    from mmlk.ops.depthwise import dispatch
    backend = next(b for b in dispatch.BACKENDS if b.name == 'cpu_kernel')

    def broken(*args):
        raise RuntimeError('no kernel for this machine')
    monkeypatch.setattr(backend, 'load', lambda: cpu_kernel.KERNELS._replace(forward=broken))
    monkeypatch.setattr(backend, 'usable', None)  # loads the broken kernels at the next call
    monkeypatch.setattr(backend, '_kernels', None)
    torch.manual_seed(0)
    x, w = torch.randn(1, 3, 10, 10), torch.randn(3, 1, 9, 5)
    with pytest.warns(UserWarning, match='cpu_kernel backend failed'):
        _, _, fallback, _ = grads(depthwise_conv2d, x, w, None)
    assert backend.usable is False
    _, _, reference, _ = grads(aten, x, w, None)
    torch.testing.assert_close(fallback, reference)
    monkeypatch.setenv('MMLK_DW_IMPL', 'cpu_kernel')  # named explicitly: the error surfaces
    monkeypatch.setattr(backend, 'usable', None)
    with pytest.raises(RuntimeError, match='no kernel for this machine'):
        grads(depthwise_conv2d, x, w, None)


def test_triton_is_not_used_for_cpu_tensors_in_auto_mode(monkeypatch):
    from mmlk.ops.depthwise import dispatch
    triton = next(b for b in dispatch.BACKENDS if b.name == 'triton')
    monkeypatch.setattr(triton, 'load', lambda: pytest.fail('Triton on a CPU tensor'))
    x = torch.randn(1, 2, 8, 8, requires_grad=True)
    depthwise_conv2d(x, torch.randn(2, 1, 7, 7)).sum().backward()
