"""Shift-wise convolution (Shift-ConvNets): the pure-PyTorch shift-add equals dense depthwise
strip convolutions, borders included, and SLaK's kernels convert exactly (equ-SLaK)."""
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import needs_cpu_float16_conv
from mmlk.compat import register_step_post_hook
from mmlk.ops import DecomposedLargeKernelConv
from mmlk.ops.shift_wise import (ShiftWiseLargeKernelConv, shift_add_strip, strip_to_tiles,
                                 tile_starts, tiles_to_strip)
from test_ops import randomise_bn

CASES = [(51, 3, 9, 12), (49, 3, 20, 17), (47, 3, 30, 31), (13, 3, 5, 7), (51, 5, 14, 60),
         (13, 5, 3, 3), (7, 3, 16, 16), (15, 5, 8, 40), (9, 3, 9, 9), (45, 5, 11, 6), (5, 5, 6, 6)]


def shift_wise_strip(x, strip, k, horizontal, anchor, long_side=None):
    """The strip convolution computed shift-wise: tiles by one grouped conv, then shift-add."""
    channels = x.shape[1]
    long_side = long_side or (strip.shape[-1] if horizontal else strip.shape[-2])
    nk = math.ceil(long_side / k)
    y = F.conv2d(x, strip_to_tiles(strip, k, horizontal), padding=k - 1, groups=channels)
    y = y.view(x.shape[0], channels, nk, y.shape[-2], y.shape[-1])
    return shift_add_strip(y, tile_starts(long_side, k, anchor), k, x.shape[-2:], horizontal)


@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize('long_side,k,height,width', CASES)
@pytest.mark.parametrize('horizontal', [True, False])
def test_official_anchor_equals_dense_strip_conv(long_side, k, height, width, horizontal, dtype,
                                                 tol):
    g = torch.Generator().manual_seed(long_side * 100 + height)
    x = torch.randn(2, 3, height, width, generator=g, dtype=dtype)
    shape = (3, 1, k, long_side) if horizontal else (3, 1, long_side, k)
    strip = torch.randn(shape, generator=g, dtype=dtype)
    padding = (k // 2, long_side // 2) if horizontal else (long_side // 2, k // 2)
    reference = F.conv2d(x, strip, padding=padding, groups=3)
    out = shift_wise_strip(x, strip, k, horizontal, 'official')
    assert out.shape == reference.shape
    torch.testing.assert_close(out, reference, atol=tol * reference.abs().max().item(), rtol=0)


@pytest.mark.parametrize('long_side,k,height,width', CASES)
def test_official_footprint_is_anchored_at_half_m_and_centred_is_symmetric(long_side, k, height,
                                                                          width):
    nk = math.ceil(long_side / k)
    official, centred = tile_starts(long_side, k), tile_starts(long_side, k, 'centred')
    assert official[0] == -(long_side // 2) and len(official) == nk
    assert centred[0] == -((nk * k) // 2)
    # the centred footprint as a dense (nk*k)-wide kernel with asymmetric "same" padding
    g = torch.Generator().manual_seed(7)
    x = torch.randn(1, 2, height, width, generator=g, dtype=torch.float64)
    strip = torch.randn(2, 1, k, nk * k, generator=g, dtype=torch.float64)
    left = (nk * k) // 2
    reference = F.conv2d(F.pad(x, (left, nk * k - 1 - left, k // 2, k // 2)), strip, groups=2)
    out = shift_wise_strip(x, strip, k, True, 'centred', long_side=long_side)
    torch.testing.assert_close(out, reference, atol=1e-12, rtol=0)


def test_tiles_round_trip_and_zero_tail():
    strip = torch.randn(4, 1, 3, 49)
    tiles = strip_to_tiles(strip, 3, horizontal=True)
    assert tiles.shape == (4 * 17, 1, 3, 3)
    dense = tiles_to_strip(tiles, 49, horizontal=True)
    assert torch.equal(dense[..., :49], strip) and not dense[..., 49:].any()
    assert torch.equal(tiles[1], strip[0, :, :, 3:6])  # tile t of channel c is channel c*nk+t
    tall = torch.randn(2, 1, 13, 5)
    assert torch.equal(tiles_to_strip(strip_to_tiles(tall, 5, False), 13, False)[..., :13, :], tall)


def test_gradients_match_the_dense_convolution():
    x = torch.randn(1, 2, 7, 9, dtype=torch.float64, requires_grad=True)
    strip = torch.randn(2, 1, 3, 13, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda a, w: shift_wise_strip(a, w, 3, True, 'official'),
                             (x, strip))


@pytest.mark.parametrize('dtype', [torch.bfloat16,
                                   pytest.param(torch.float16, marks=needs_cpu_float16_conv)])
def test_low_precision_runs_and_matches(dtype):
    x = torch.randn(1, 4, 12, 12)
    strip = torch.randn(4, 1, 13, 3)
    reference = F.conv2d(x, strip, padding=(6, 1), groups=4)
    out = shift_wise_strip(x.to(dtype), strip.to(dtype), 3, False, 'official')
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), reference, atol=0.1 * reference.abs().max().item(),
                               rtol=0.05)


@pytest.mark.parametrize('impl', ['dense', 'shift_add'])
@pytest.mark.parametrize('long_side,k,size', [(51, 5, 20), (13, 5, 7), (47, 3, 30), (49, 5, 40)])
def test_equ_slak_conversion_is_exact(long_side, k, size, impl):
    slak = DecomposedLargeKernelConv(6, long_side, k).double()
    randomise_bn(slak, seed=long_side)
    slak.eval()
    shift_wise = ShiftWiseLargeKernelConv.from_decomposed(slak).double().eval()
    shift_wise.impl = impl
    assert shift_wise.tiles.weight.shape == (2 * 6 * math.ceil(long_side / k), 1, k, k)
    x = torch.randn(2, 6, size, size + 3, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(shift_wise(x), slak(x), atol=1e-12, rtol=0)
    tall, wide = shift_wise.equivalent_strips()
    assert torch.equal(tall[:, :, :long_side], slak.LoRA1.conv.weight.detach())
    assert torch.equal(wide[..., :long_side], slak.LoRA2.conv.weight.detach())


@pytest.mark.parametrize('kwargs,message', [
    (dict(kernel_size=50), 'odd positive'), (dict(small_kernel=4), 'odd positive'),
    (dict(kernel_size=5, small_kernel=5), 'smaller than the long side'),
    (dict(anchor='left'), "anchor must be one of"),
])
def test_bad_arguments_say_what_is_wrong(kwargs, message):
    args = dict(channels=4, kernel_size=13, small_kernel=5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        ShiftWiseLargeKernelConv(**args)


@pytest.mark.parametrize('anchor', ['official', 'centred'])
def test_deploy_folds_the_strip_bns_exactly(anchor):
    module = ShiftWiseLargeKernelConv(5, 13, 3, anchor=anchor).double()
    randomise_bn(module, seed=3)
    module.eval()
    x = torch.randn(2, 5, 11, 9, dtype=torch.float64)
    with torch.no_grad():
        reference = module(x)
        module.switch_to_deploy()
        deployed = module(x)
    assert module.deploy and not hasattr(module, 'bn_tall') and module.small_conv.bn is None
    torch.testing.assert_close(deployed, reference, atol=1e-12, rtol=0)
    direct = ShiftWiseLargeKernelConv(5, 13, 3, anchor=anchor, deploy=True)
    assert direct.state_dict().keys() == module.state_dict().keys()


# ---------------------------------------------------------------------- the 2024 backbone
def test_shift_wise_convnext_is_slak_with_shift_wise_kernels():
    from mmlk.models.backbones import SLaK, ShiftWiseConvNeXt
    from mmlk.registry import MODELS
    from conftest import TINY_ARCH, TINY_DIMS
    model = MODELS.build(dict(type='mmlk.ShiftWiseConvNeXt', arch=TINY_ARCH,
                              out_indices=(0, 1, 2, 3), gap_before_final_norm=False))
    assert isinstance(model, ShiftWiseConvNeXt) and isinstance(model, SLaK)
    kernel = model.stages[0][0].large_kernel
    assert isinstance(kernel, ShiftWiseLargeKernelConv) and kernel.num_tiles == 11  # 51 / 5
    outs = model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, c, 16 // 2**i, 16 // 2**i)
                                            for i, c in enumerate(TINY_DIMS)]


def test_equ_slak_network_has_identical_outputs_and_deploys_exactly():
    from mmlk.models.backbones import SLaK, ShiftWiseConvNeXt
    from conftest import TINY_ARCH
    slak = SLaK(arch=TINY_ARCH, kernel_size=(13, 11, 9, 7, 5), out_indices=(0, 1, 2, 3),
                gap_before_final_norm=False).double()
    randomise_bn(slak, seed=11)
    slak.eval()
    converted = ShiftWiseConvNeXt.from_slak(slak).eval()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        reference = slak(x)
        for a, b in zip(converted(x), reference):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
        converted.switch_to_deploy()
        for a, b in zip(converted(x), reference):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    rebuilt = ShiftWiseConvNeXt(arch=TINY_ARCH, kernel_size=(13, 11, 9, 7, 5),
                                out_indices=(0, 1, 2, 3), gap_before_final_norm=False,
                                deploy=True)
    rebuilt.load_state_dict(converted.state_dict())  # strict: the deploy constructor matches
    slak.switch_to_deploy()
    with pytest.raises(ValueError, match='training form'):
        ShiftWiseConvNeXt.from_slak(slak)


# ---------------------------------------------------------------------- the CVPR 2025 operator
def dense_branch_kernels(op):
    """K_H (k x nk*k), K_V (nk*k x k) and K_S (k x k) per rep channel, built from the tile
    weights and the replica tables as the reference describes (section 1.6)."""
    from mmlk.ops.shift_wise import ShiftWiseConv  # noqa: F401
    k, nk = op.small_kernel, op.num_tiles
    w = sum(conv.weight.detach() for conv in op.LoRAs).view(-1, nk, k, k)  # (R, nk, k, k)
    reps = w.shape[0]
    k_h = torch.zeros(reps, 1, k, nk * k, dtype=w.dtype)
    k_v = torch.zeros(reps, 1, nk * k, k, dtype=w.dtype)
    k_s = torch.zeros(reps, 1, k, k, dtype=w.dtype)
    for r in range(len(op.index_h)):
        for c in range(reps):
            for i in range(nk):
                k_h[c, 0, :, i * k:(i + 1) * k] += w[c, op.index_h[r, c, i]]
                k_v[c, 0, i * k:(i + 1) * k, :] += w[c, op.index_v[r, c, i]]
            k_s[c, 0] += w[c, op.index_small[r, c]]
    return k_h, k_v, k_s


@pytest.mark.parametrize('impl', ['dense', 'shift_add'])
@pytest.mark.parametrize('long_side,k,size', [(13, 3, 9), (51, 3, 7), (15, 5, 20), (47, 3, 12)])
def test_cvpr_operator_equals_dense_cross_shaped_convolutions(long_side, k, size, impl):
    from mmlk.ops.shift_wise import ShiftWiseConv
    op = ShiftWiseConv(10, long_side, k, ghost_ratio=0.23, num_paths=2, num_replicas=4,
                       impl=impl).double()
    reps, nk, mid = len(op.rep_index), op.num_tiles, long_side // 2
    x = torch.randn(2, reps, size, size + 2, dtype=torch.float64)
    h, v, s = op.branches(x)
    k_h, k_v, k_s = dense_branch_kernels(op)
    right = nk * k - 1 - mid
    ref_h = F.conv2d(F.pad(x, (mid, right, k // 2, k // 2)), k_h, groups=reps)
    ref_v = F.conv2d(F.pad(x, (k // 2, k // 2, mid, right)), k_v, groups=reps)
    ref_s = F.conv2d(x, k_s, padding=k // 2, groups=reps)
    for out, ref in ((h, ref_h), (v, ref_v), (s, ref_s)):
        torch.testing.assert_close(out, ref, atol=1e-11, rtol=0)


def test_cvpr_operator_tables_are_seeded_buffers_and_ghosts_pass_through():
    from mmlk.ops.shift_wise import ShiftWiseConv, ghost_split, replica_tables
    state = torch.random.get_rng_state()
    replica_tables(60, 17, 4)
    ghost_split(80, 0.23)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched
    torch.manual_seed(0)
    a = ShiftWiseConv(80, 51, 3)
    torch.manual_seed(999)  # the tables do not depend on the global seed either
    b = ShiftWiseConv(80, 51, 3)
    for name in ('rep_index', 'ghost_index', 'index_h', 'index_v', 'index_small'):
        assert torch.equal(getattr(a, name), getattr(b, name)) and name in a.state_dict()
    assert len(a.rep_index) == 60 and len(a.ghost_index) == 20  # SW-T stage 0 (ghost 0.23)
    assert [len(ghost_split(c, 0.23)[0]) for c in (80, 160, 320, 640)] == [60, 122, 246, 492]
    assert sorted(a.index_h[0, 5].tolist()) == list(range(17))  # a permutation per channel
    x = torch.randn(1, 80, 8, 8)
    out = a.eval()(x)
    assert out.shape == x.shape
    assert torch.equal(out[:, 60:], x[:, a.ghost_index])  # ghosts appended, unchanged


# ---------------------------------------------------------------------- the CVPR 2025 SW-T
def released_sw_layout(depths=(3, 3, 18, 3), dims=(80, 160, 320, 640),
                       kernels=(51, 49, 47, 13), k=3, num_classes=1000):
    """``[(key, shape)]`` of the released SW-T checkpoint's ``model``, written from the key list
    in the reference notes (section 4.4) and the operator's shapes, not from our model."""
    from mmlk.ops.shift_wise import ghost_split
    spec = []

    def norm(prefix, c, bn=False):
        spec.extend([(f'{prefix}.weight', [c]), (f'{prefix}.bias', [c])])
        if bn:
            spec.extend([(f'{prefix}.running_mean', [c]), (f'{prefix}.running_var', [c]),
                         (f'{prefix}.num_batches_tracked', [])])

    d0 = dims[0]
    spec += [('downsample_layers.0.0.weight', [d0 // 2, 3, 3, 3]),
             ('downsample_layers.0.0.bias', [d0 // 2])]
    norm('downsample_layers.0.1', d0 // 2)
    spec += [('downsample_layers.0.3.weight', [d0, d0 // 2, 3, 3]),
             ('downsample_layers.0.3.bias', [d0])]
    norm('downsample_layers.0.4', d0)
    for i in range(1, 4):
        spec += [(f'downsample_layers.{i}.0.weight', [dims[i], dims[i - 1], 3, 3]),
                 (f'downsample_layers.{i}.0.bias', [dims[i]])]
        norm(f'downsample_layers.{i}.1', dims[i])
    for s, (depth, d, m) in enumerate(zip(depths, dims, kernels)):
        reps, nk = len(ghost_split(d, 0.23)[0]), math.ceil(m / k)
        for b in range(depth):
            p = f'stages.{s}.{b}'
            spec += [(f'{p}.large_kernel.LoRAs.{j}.weight', [reps * nk, 1, k, k]) for j in (0, 1)]
            for bn in ('bn_lora1', 'bn_lora2', 'bn_small'):
                norm(f'{p}.large_kernel.{bn}', reps, bn=True)
            norm(f'{p}.norm', d, bn=True)
            spec += [(f'{p}.se.down.weight', [d // 4, d, 1, 1]), (f'{p}.se.down.bias', [d // 4]),
                     (f'{p}.se.up.weight', [d, d // 4, 1, 1]), (f'{p}.se.up.bias', [d]),
                     (f'{p}.pwconv1.1.weight', [4 * d, d]), (f'{p}.pwconv1.1.bias', [4 * d]),
                     (f'{p}.act.1.gamma', [1, 1, 1, 4 * d]), (f'{p}.act.1.beta', [1, 1, 1, 4 * d]),
                     (f'{p}.pwconv2.0.weight', [d, 4 * d])]
            norm(f'{p}.pwconv2.2', d, bn=True)
            spec.append((f'{p}.gamma', [d]))
    norm('norm', dims[3])
    spec += [('head.weight', [num_classes, dims[3]]), ('head.bias', [num_classes])]
    return spec


def test_sw_t_has_the_released_layout_and_size():
    from mmlk.models.backbones import ShiftWiseNet
    with torch.device('meta'):
        model = ShiftWiseNet('tiny', out_indices=(3, ), gap_before_final_norm=True)
    spec = dict(released_sw_layout())
    ours = {('norm.' + k[6:] if k.startswith('norm3.') else k): list(v.shape)
            for k, v in model.state_dict().items()
            if k.rsplit('.', 1)[-1] not in ShiftWiseNet._table_buffers}
    assert ours == {k: v for k, v in spec.items() if not k.startswith('head.')}
    total = sum(p.numel() for p in model.parameters()) + 640 * 1000 + 1000
    assert round(total / 1e6, 1) == 31.8  # the reference's count of the training form


def test_released_checkpoint_loads_strictly_and_regenerates_the_tables(tmp_path):
    from mmlk.models.backbones import ShiftWiseNet
    arch = dict(depths=[1, 1, 2, 1], dims=[16, 32, 64, 128])
    g = torch.Generator().manual_seed(0)
    state = {k: (torch.tensor(5) if k.endswith('num_batches_tracked') else
                 torch.rand(s, generator=g) + 0.5 if k.endswith('running_var') else
                 torch.randn(s, generator=g))
             for k, s in released_sw_layout(arch['depths'], arch['dims'])}
    path = tmp_path / 'checkpoint-best.pth'
    torch.save({'model': state, 'epoch': 299, 'args': None}, path)
    model = ShiftWiseNet(arch, out_indices=(0, 1, 2, 3), gap_before_final_norm=False,
                         init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    reference_tables = ShiftWiseNet(arch, out_indices=(0, 1, 2, 3),
                                    gap_before_final_norm=False).state_dict()
    model.init_weights()
    sd = model.state_dict()
    assert torch.equal(sd['stages.2.1.large_kernel.LoRAs.1.weight'],
                       state['stages.2.1.large_kernel.LoRAs.1.weight'])
    assert torch.equal(sd['stages.2.1.large_kernel.index_h'],
                       reference_tables['stages.2.1.large_kernel.index_h'])
    outs = model.eval()(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 16, 16, 16), (1, 32, 8, 8), (1, 64, 4, 4),
                                            (1, 128, 2, 2)]
    del state['stages.0.0.se.up.bias']
    torch.save({'model': state}, path)
    with pytest.raises(Exception, match=r'stages\.0\.0\.se\.up\.bias'):
        ShiftWiseNet(arch, init_cfg=dict(type='Pretrained', checkpoint=str(path))).init_weights()


def test_sw_t_trains_with_checkpointing_and_layer_decay_ids():
    from mmlk.models.backbones import ShiftWiseNet
    arch = dict(depths=[1, 1, 2, 1], dims=[16, 32, 64, 128])
    torch.manual_seed(0)
    model = ShiftWiseNet(arch, kernel_size=(13, 11, 9, 7, 3), out_indices=(0, 1, 2, 3),
                         gap_before_final_norm=False, with_cp=True, frozen_stages=1)
    model.train()
    assert not any(p.requires_grad for p in model.stages[0].parameters())
    # (a plain mean would have no gradient through the train-mode BN closing each block)
    sum((o * torch.randn_like(o)).sum() for o in model(torch.randn(2, 3, 64, 64))).backward()
    assert model.stages[3][0].large_kernel.LoRAs[0].weight.grad.abs().sum() > 0
    assert model.get_layer_depth('backbone.stages.1.0.se.up.weight', 'backbone.') == (2, 8)


def test_converter_writes_a_self_contained_checkpoint(tmp_path):
    from conftest import run_tool
    arch_layout = released_sw_layout()
    g = torch.Generator().manual_seed(1)
    state = {k: (torch.tensor(5) if k.endswith('num_batches_tracked') else
                 torch.randn(s, generator=g) * 0.1) for k, s in arch_layout}
    src, dst = tmp_path / 'checkpoint-best.pth', tmp_path / 'sw.pth'
    torch.save({'model': state, 'args': None}, src)
    proc = run_tool('tools/model_converters/shiftwise_to_mmlk.py', str(src), str(dst))
    assert 'wrote' in proc.stdout
    converted = torch.load(dst, weights_only=False)['state_dict']
    assert torch.equal(converted['head.fc.weight'], state['head.weight'])
    assert torch.equal(converted['backbone.norm3.bias'], state['norm.bias'])
    assert 'backbone.stages.2.17.large_kernel.index_v' in converted
    refused = run_tool('tools/model_converters/shiftwise_to_mmlk.py', str(src),
                       str(tmp_path / 'x.pth'), '--arch', 'small', check=False)
    assert refused.returncode != 0 and 'shape mismatch' in refused.stderr


# ---------------------------------------------------------------------- sparse groups
def test_sparse_groups_prune_whole_tiles_of_the_shift_wise_convs():
    """The SW-T ImageNet config's hook arguments on a tiny SW net: one mask bit per 3x3 tile
    of the LoRAs (nothing else selected), SNIP densities, tiles stay whole through updates and
    the engine state round-trips."""
    from mmengine.config import Config
    from mmlk.sparsity import SparseEngine, select_sparse_targets
    from mmlk.models.backbones import ShiftWiseNet
    from conftest import CONFIGS
    hook = next(h for h in Config.fromfile(f'{CONFIGS}/sw_t_in1k.py').custom_hooks
                if h['type'] == 'mmlk.SparseTrainingHook')
    torch.manual_seed(0)
    net = torch.nn.Module()
    net.backbone = ShiftWiseNet(dict(depths=[1, 1, 2, 1], dims=[16, 32, 64, 128]),
                                kernel_size=(13, 11, 9, 7, 3), out_indices=(3, ))
    net.head = torch.nn.Linear(128, 4)
    targets = select_sparse_targets(net, scope=hook['scope'],
                                    only_large_kernels=hook['only_large_kernels'],
                                    block_shapes=hook['block_shapes'])
    assert targets and all('large_kernel.LoRAs.' in t.name for t in targets)
    assert all(t.unit_shape == (t.param.shape[0], 1, 1, 1) for t in targets)  # a bit per tile
    assert hook['tie_every'] == 131  # the official --sparse_gap
    engine = SparseEngine(targets, sparsity=hook['sparsity'], init='snip', growth='random',
                          prune_rate=hook['prune_rate'], update_interval=2, total_steps=20,
                          tie=hook['tie'], tie_every=2)
    groups = engine.tied_groups()
    assert groups and all(len(g) == 2 and g[0].name.endswith('LoRAs.0.weight') for g in groups)
    x, y = torch.randn(4, 3, 64, 64), torch.randint(0, 4, (4, ))

    def loss():
        return F.cross_entropy(net.head(net.backbone(x)[0]), y)

    loss().backward()
    engine.init_masks([t.param.grad * t.param.detach() for t in targets])
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    register_step_post_hook(opt, lambda o, a, k: engine.on_optimizer_step(o))
    for leader, follower in groups:  # the paths start from one mask
        assert torch.equal(leader.mask, follower.mask)
    counts = [int(t.mask.sum()) for t in targets]
    for step in range(1, 9):
        opt.zero_grad()
        loss().backward()
        opt.step()
        for t in targets:
            tiles = t.param.detach().flatten(1)
            dead = ~t.mask.flatten()
            assert torch.count_nonzero(tiles[dead]) == 0
        if step % 4 == 0:  # the 2nd, 4th... update (every tie_every=2 updates) re-ties the paths
            assert all(torch.equal(a.mask, b.mask) for a, b in groups)
        elif step % 4 == 2:  # a free update lets the paths evolve independently
            assert any(not torch.equal(a.mask, b.mask) for a, b in groups)
    assert [int(t.mask.sum()) for t in targets] == counts  # per-layer density is constant
    kept = sum(counts) / sum(t.num_units for t in targets)
    assert abs(kept - (1 - hook['sparsity'])) < 0.05
    restored = SparseEngine(targets, sparsity=hook['sparsity'], init='snip', update_interval=2,
                            total_steps=20)
    restored.load_state_dict(engine.state_dict())
    assert all(torch.equal(a.mask, b.mask) for a, b in zip(engine.targets, restored.targets))


@pytest.mark.parametrize('long_side,k,anchor', [(13, 3, 'official'), (51, 3, 'official'),
                                                (49, 3, 'official'), (15, 5, 'centred'),
                                                (47, 3, 'centred')])
def test_cvpr_operator_deploy_is_exact(long_side, k, anchor):
    from mmlk.ops.shift_wise import ShiftWiseConv
    op = ShiftWiseConv(12, long_side, k, num_paths=2, num_replicas=4, anchor=anchor).double()
    randomise_bn(op, seed=long_side)
    op.eval()
    x = torch.randn(2, 12, 10, 13, dtype=torch.float64)
    with torch.no_grad():
        reference = op(x)
        op.switch_to_deploy()
        deployed = op(x)
    assert op.deploy and not hasattr(op, 'LoRAs')
    torch.testing.assert_close(deployed, reference, atol=1e-10, rtol=0)
    direct = ShiftWiseConv(12, long_side, k, anchor=anchor, deploy=True)
    assert direct.state_dict().keys() == op.state_dict().keys()


def test_sw_net_deploy_form_is_exact_and_rebuilt_by_the_constructor():
    from mmlk.models.backbones import ShiftWiseNet
    arch = dict(depths=[1, 1, 1, 1], dims=[16, 32, 64, 128])
    model = ShiftWiseNet(arch, kernel_size=(13, 11, 9, 7, 3), out_indices=(0, 1, 2, 3),
                         gap_before_final_norm=False).double()
    randomise_bn(model, seed=4)
    model.eval()
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        reference = model(x)
        model.switch_to_deploy()
        for a, b in zip(model(x), reference):
            torch.testing.assert_close(a, b, atol=1e-9, rtol=0)
    assert model.deploy
    direct = ShiftWiseNet(arch, kernel_size=(13, 11, 9, 7, 3), out_indices=(0, 1, 2, 3),
                          gap_before_final_norm=False, deploy=True)
    direct.load_state_dict(model.state_dict())


@pytest.mark.parametrize('anchor', ['official', 'centred'])
def test_dense_and_shift_add_executions_train_identically(anchor):
    """Both operators, training mode (BN batch statistics): same outputs and same gradients
    whether the tiles run as dense strips or as the tile conv + shift-add."""
    from mmlk.ops.shift_wise import ShiftWiseConv
    torch.manual_seed(0)
    for build in (lambda impl: ShiftWiseLargeKernelConv(6, 13, 3, anchor=anchor, impl=impl),
                  lambda impl: ShiftWiseConv(10, 15, 3, anchor=anchor, impl=impl)):
        dense, shifted = build('dense').double(), build('shift_add').double()
        shifted.load_state_dict(dense.state_dict())
        x = torch.randn(2, dense.channels, 9, 11, dtype=torch.float64)
        outs, grads = [], []
        for module in (dense, shifted):
            module.train()
            inp = x.clone().requires_grad_(True)
            out = module(inp)
            weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
            (out * weights).sum().backward()
            outs.append(out)
            grads.append([inp.grad] + [p.grad for p in module.parameters()])
        torch.testing.assert_close(outs[0], outs[1], atol=1e-11, rtol=0)
        for a, b in zip(*grads):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
        torch.testing.assert_close(dense.state_dict(), shifted.state_dict(), atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match='impl must be one of'):
        ShiftWiseLargeKernelConv(4, 13, 3, impl='fft')


def test_tables_are_the_released_constructors_draws_for_every_sw_t_layer():
    """The release stores neither the ghost split nor the tile arrangements: each layer's
    constructor draws them (SW_v2_unirep.py: ``np.random.seed(123)`` then ``choice`` without
    replacement for the ghosts; add_shift.py ``shuffle_idx_2_gen_pads``:
    ``torch.manual_seed(123)``, then per replica one ``randperm(nk)`` per channel for the
    horizontal strip, the same for the vertical one, then one ``randint(0, nk, [R])`` per
    replica for the reused k x k tile). Those exact calls on the *global* generators, as the
    released code makes them, give mmlk's buffers for every layer of SW-T, so the regenerated
    tables are the ones the released weights were trained with."""
    import numpy as np

    from mmlk.models.backbones import ShiftWiseNet
    from mmlk.ops.shift_wise import ShiftWiseConv
    torch.manual_seed(0)
    model = ShiftWiseNet('tiny')
    layers = [m for m in model.modules() if isinstance(m, ShiftWiseConv)]
    assert len(layers) > 10
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    try:
        for layer in layers:
            channels = layer.channels
            reps = int(channels * (1 - 0.23)) // 2 * 2
            np.random.seed(123)
            ghost = sorted(np.random.choice(channels, channels - reps, replace=False).tolist())
            rep = list(set(range(channels)) - set(ghost))
            assert layer.ghost_index.tolist() == ghost and layer.rep_index.tolist() == rep
            nk, replicas = layer.num_tiles, layer.index_h.shape[0]
            torch.manual_seed(123)
            horizontal = [torch.cat([torch.randperm(nk) + c * nk for c in range(reps)])
                          for _ in range(replicas)]
            vertical = [torch.cat([torch.randperm(nk) + c * nk for c in range(reps)])
                        for _ in range(replicas)]
            identity = [torch.randint(0, nk, [reps]) + torch.arange(reps) * nk
                        for _ in range(replicas)]
            offsets = torch.arange(reps).view(-1, 1) * nk
            for r in range(replicas):
                assert torch.equal((layer.index_h[r] + offsets).flatten(), horizontal[r])
                assert torch.equal((layer.index_v[r] + offsets).flatten(), vertical[r])
                assert torch.equal(layer.index_small[r] + offsets.flatten(), identity[r])
    finally:
        torch.set_rng_state(torch_state)
        np.random.set_state(np_state)
