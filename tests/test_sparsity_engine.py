"""SparseEngine invariants on small models, driven like a training loop."""
import math
import os

import pytest
import torch
from torch import nn

from mmlk.compat import register_step_post_hook
from mmlk.engine import SparseEMA
from mmlk.sparsity import (SparseEngine, allocate_densities, cosine_prune_rate,
                           select_sparse_targets)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 16, 5, padding=2, groups=8), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 32))
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        return self.head(self.backbone(x))


def make(seed=0, **kwargs):
    torch.manual_seed(seed)
    net = Net()
    targets = select_sparse_targets(net, scope=kwargs.pop('scope', 'backbone'),
                                    block_shapes=kwargs.pop('block_shapes', None))
    kwargs.setdefault('init', 'uniform')
    engine = SparseEngine(targets, total_steps=kwargs.pop('total_steps', 100), **kwargs)
    return net, engine


def train(net, engine, optimizer, steps, seed=1):
    g = torch.Generator().manual_seed(seed)
    # as SparseTrainingHook does: through compat, which keeps it firing on torch 2.1
    register_step_post_hook(optimizer, lambda opt, a, k: engine.on_optimizer_step(opt))
    for _ in range(steps):
        x = torch.randn(4, 3, 8, 8, generator=g)
        y = torch.randint(0, 4, (4, ), generator=g)
        loss = nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        yield


def expected_active(engine, densities):
    return sum(int(round(d * t.num_units)) for t, d in zip(engine.targets, densities))


def active(engine):
    return sum(int(t.mask.sum()) for t in engine.targets)


def test_selection_defaults_to_backbone_conv_and_linear_weights():
    net = Net()
    names = [t.name for t in select_sparse_targets(net)]
    assert names == ['backbone.0.weight', 'backbone.2.weight', 'backbone.6.weight']
    assert [t.name for t in select_sparse_targets(net, scope='model')][-1] == 'head.weight'
    assert [t.name for t in select_sparse_targets(net, exclude=[r'\.6\.'])] == [
        'backbone.0.weight', 'backbone.2.weight']
    with pytest.raises(ValueError, match='block_shape'):
        select_sparse_targets(net, block_shapes={r'backbone\.2': (1, 1, 2, 5)})


@pytest.mark.parametrize('optimizer', ['sgd_momentum', 'adamw'])
def test_exact_sparsity_and_zeros_after_every_step(optimizer):
    net, engine = make(sparsity=0.4, prune_rate=0.5, update_interval=3)
    densities = engine.init_masks()
    target_active = expected_active(engine, densities)
    assert active(engine) == target_active
    params = [p for p in net.parameters()]
    opt = (torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-2)
           if optimizer == 'sgd_momentum' else torch.optim.AdamW(params, lr=0.05, weight_decay=0.1))
    masks_seen = []
    for _ in train(net, engine, opt, 10):
        for t in engine.targets:
            assert torch.count_nonzero(t.param.detach()[~t.mask]) == 0, t.name
        assert active(engine) == target_active  # exact count, also after updates
        masks_seen.append(torch.cat([t.mask.flatten() for t in engine.targets]).clone())
    assert engine.step == 10
    # updates happened at steps 3, 6, 9 and changed the masks
    assert not torch.equal(masks_seen[1], masks_seen[2])
    assert torch.equal(masks_seen[0], masks_seen[1])


def test_update_prunes_smallest_active_and_grows_as_many():
    # The strict variant: grown units come only from the old zeros, so pruned/grown are the
    # mask differences.
    net, engine = make(sparsity=0.5, prune_rate=0.25, update_interval=1000,
                       regrow_just_pruned=False)
    engine.init_masks()
    engine.step = 0
    t = engine.targets[2]  # the Linear(16, 32)
    before = t.mask.clone()
    magnitude = t.param.detach().abs().clone()
    n_active = int(before.sum())
    k = math.ceil(engine.prune_rate * n_active)
    update = engine.update()
    after = t.mask
    pruned = before & ~after
    grown = after & ~before
    assert int(pruned.sum()) == k and int(grown.sum()) == k
    smallest = torch.topk(magnitude[before], k, largest=False).values
    assert torch.equal(torch.sort(magnitude[pruned]).values, torch.sort(smallest).values)
    assert torch.count_nonzero(t.param.detach()[grown]) == 0  # grown weights start at zero
    assert update['num_pruned'] == update['num_grown'] == sum(
        math.ceil(engine.prune_rate * int(x.mask.sum())) for x in engine.targets)


def _official_prune_set(t, k):
    """The k smallest-magnitude active units (random floats: no ties)."""
    magnitude = t.param.detach().abs().flatten().clone()
    magnitude[~t.mask.flatten()] = float('inf')
    return torch.zeros(t.num_units, dtype=torch.bool).index_fill_(
        0, torch.topk(magnitude, k, largest=False).indices, True).reshape(t.unit_shape)


def _sgd_trained(regrow_just_pruned, growth='random', seed=0):
    net, engine = make(seed=seed, sparsity=0.5, prune_rate=0.5, growth=growth,
                       update_interval=1000, regrow_just_pruned=regrow_just_pruned)
    engine.init_masks()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for _ in train(net, engine, opt, 2):
        pass
    engine.step = 0  # prune rate p0 = 0.5
    return net, engine, opt


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_official_growth_regrows_just_pruned_units_with_their_value_and_state(seed):
    # SLaK's truncate_weights: prune, grow among the zeros of the *pruned* mask, then mask.
    net, engine, opt = _sgd_trained(True, seed=seed)
    t = engine.targets[2]  # Linear(16, 32): 256 active, 128 pruned, 384 candidates
    before = t.mask.clone()
    k = math.ceil(0.5 * int(before.sum()))
    pruned = _official_prune_set(t, k)
    value = t.param.detach().clone()
    momentum = opt.state[t.param]['momentum_buffer'].clone()
    engine.update(opt)
    after = t.mask
    regrown = pruned & after
    from_old_zeros = after & ~before
    # about a third of the regrowth is just-pruned units at this density and rate
    assert 0 < int(regrown.sum()) < k
    assert int(regrown.sum()) + int(from_old_zeros.sum()) == k  # exact count
    assert int(after.sum()) == int(before.sum())
    assert torch.count_nonzero(value[regrown]) == int(regrown.sum())
    assert torch.equal(t.param.detach()[regrown], value[regrown])  # old value kept
    assert torch.equal(opt.state[t.param]['momentum_buffer'][regrown], momentum[regrown])
    # units grown from long ago start at 0 with fresh state; pruned ones are zero
    assert torch.count_nonzero(t.param.detach()[from_old_zeros]) == 0
    assert torch.count_nonzero(opt.state[t.param]['momentum_buffer'][from_old_zeros]) == 0
    assert torch.count_nonzero(t.param.detach()[~after]) == 0
    # the units kept active are exactly the unpruned ones plus the grown ones
    assert torch.equal(after & before & ~pruned, before & ~pruned)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_strict_growth_never_regrows_just_pruned_units(seed):
    net, engine, opt = _sgd_trained(False, seed=seed)
    expected = []
    for t in engine.targets:
        before = t.mask.clone()
        k = min(math.ceil(0.5 * int(before.sum())), int((~before).sum()))
        expected.append((before, _official_prune_set(t, k), k))
    engine.update(opt)
    for t, (before, pruned, k) in zip(engine.targets, expected):
        assert not (pruned & t.mask).any()
        assert int((t.mask & ~before).sum()) == k
        assert torch.count_nonzero(t.param.detach()[t.mask & ~before]) == 0


def test_official_gradient_growth_ranks_just_pruned_units_too():
    net, engine, opt = _sgd_trained(True, growth='gradient')
    t = engine.targets[2]
    k = math.ceil(0.5 * int(t.mask.sum()))
    pruned = _official_prune_set(t, k)
    candidates = ~(t.mask & ~pruned)
    grad = t.param.grad.detach().abs().clone()
    grad[~candidates] = -1
    expected = torch.zeros_like(pruned).flatten().index_fill_(
        0, torch.topk(grad.flatten(), k).indices, True).reshape(pruned.shape)
    engine.update(opt)
    assert torch.equal(t.mask, (t.mask & ~candidates) | expected)
    assert torch.equal(t.mask & candidates, expected)
    assert (expected & pruned).any()  # some of the best-gradient units were just pruned


def test_regrow_option_is_checked():
    with pytest.raises(TypeError, match='regrow_just_pruned must be True'):
        make(regrow_just_pruned='yes')


def test_gradient_growth_picks_largest_gradients_and_resets_optimizer_state():
    net, engine = make(sparsity=0.5, prune_rate=0.2, growth='gradient', update_interval=1000,
                       regrow_just_pruned=False)
    engine.init_masks()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for _ in train(net, engine, opt, 1):
        pass
    t = engine.targets[2]
    before = t.mask.clone()
    grad = t.param.grad.detach().abs().clone()
    engine.update(opt)
    grown = t.mask & ~before
    k = int(grown.sum())
    best = torch.topk(grad[~before], k).values
    assert torch.equal(torch.sort(grad[grown]).values, torch.sort(best).values)
    assert torch.count_nonzero(opt.state[t.param]['momentum_buffer'][grown]) == 0


def test_snip_densities_differ_and_match_global_target():
    net, engine = make(sparsity=0.4, init='snip')
    x = torch.randn(8, 3, 8, 8)
    loss = net(x).logsumexp(1).mean()
    loss.backward()
    scores = [(t.param * t.param.grad).abs().detach() for t in engine.targets]
    densities = engine.init_masks(scores)
    assert len(set(round(d, 3) for d in densities)) > 1
    total = sum(t.num_units for t in engine.targets)
    assert abs(active(engine) - 0.6 * total) <= len(engine.targets)


def test_erk_allocation_is_proportional_and_meets_budget():
    net, engine = make()
    sizes = [t.num_units for t in engine.targets]
    raw = [sum(t.unit_shape) / t.num_units for t in engine.targets]
    densities = allocate_densities(engine.targets, 0.3, 'ERK')
    assert sum(d * s for d, s in zip(densities, sizes)) == pytest.approx(0.3 * sum(sizes))
    # density proportional to sum(shape) / prod(shape)
    for i in range(3):
        assert densities[i] / densities[0] == pytest.approx(raw[i] / raw[0])
    # a budget too large for the densest layer caps it at 1 and rescales the others
    capped = allocate_densities(engine.targets, 0.9, 'ERK')
    densest = max(range(3), key=lambda i: raw[i])
    assert capped[densest] == 1.0 and all(d <= 1 for d in capped)
    assert sum(d * s for d, s in zip(capped, sizes)) == pytest.approx(0.9 * sum(sizes))


def test_block_granularity_zeroes_whole_tiles():
    net, engine = make(sparsity=0.5, prune_rate=0.5, update_interval=2,
                       block_shapes={r'backbone\.2\.': (1, 1, 5, 5)})
    engine.init_masks()
    t = next(x for x in engine.targets if x.name == 'backbone.2.weight')
    assert t.unit_shape == (16, 1, 1, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for _ in train(net, engine, opt, 5):
        w = t.param.detach().reshape(16, -1)
        dead = ~t.mask.flatten()
        assert int(dead.sum()) == 8
        assert torch.count_nonzero(w[dead]) == 0


def test_state_round_trip_and_schedule():
    net, engine = make(sparsity=0.4, prune_rate=0.5, update_interval=2, total_steps=10)
    engine.init_masks()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in train(net, engine, opt, 3):
        pass
    state = engine.state_dict()
    net2, engine2 = make(sparsity=0.4, prune_rate=0.5, update_interval=2, total_steps=10)
    engine2.load_state_dict(state)
    assert engine2.step == 3
    for a, b in zip(engine.targets, engine2.targets):
        assert torch.equal(a.mask, b.mask)
    assert cosine_prune_rate(0, 10, 0.5) == 0.5
    assert cosine_prune_rate(10, 10, 0.5) == pytest.approx(0.005)
    assert cosine_prune_rate(5, 10, 0.5) == pytest.approx((0.5 + 0.005) / 2)
    with pytest.raises(ValueError, match='expected'):
        bad = dict(state, masks={k: v[:1] for k, v in state['masks'].items()})
        make()[1].load_state_dict(bad)


def test_bad_options_are_explicit():
    net = Net()
    targets = select_sparse_targets(net)
    with pytest.raises(ValueError, match='unknown sparse init'):
        SparseEngine(targets, init='random')
    with pytest.raises(ValueError, match='unknown growth'):
        SparseEngine(targets, growth='momentum')
    with pytest.raises(ValueError, match='no parameter matched'):
        SparseEngine([])


def test_sparse_ema_follows_the_pattern():
    net = nn.Linear(4, 3)
    ema = SparseEMA(net, momentum=0.5)
    with torch.no_grad():
        net.weight[0, 0] = 0           # pruned in the model
    ema.update_parameters(net)
    assert ema.module.weight[0, 0] == 0
    with torch.no_grad():
        net.weight[0, 0] = 2.0         # regrown: EMA takes the live value, no stale blend
    ema.update_parameters(net)
    assert ema.module.weight[0, 0] == 2.0


def _ddp_worker(rank, world, port, result_dir):
    import torch.distributed as dist
    from mmengine.dist import broadcast  # noqa: F401  (the helper the hook uses)
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    torch.manual_seed(0)  # identical initial weights on both ranks, like DDP's broadcast
    net = Net()
    model = nn.parallel.DistributedDataParallel(net)
    targets = select_sparse_targets(net)
    engine = SparseEngine(targets, sparsity=0.5, init='uniform', prune_rate=0.5,
                          update_interval=2, total_steps=20, seed=7)
    engine.init_masks()
    engine.broadcast_masks(lambda t: dist.broadcast(t, src=0))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def after_step(optimizer, args, kwargs):
        if engine.on_optimizer_step(optimizer):
            engine.broadcast_masks(lambda t: dist.broadcast(t, src=0))
            engine.apply()

    register_step_post_hook(opt, after_step)
    g = torch.Generator().manual_seed(100 + rank)  # different data on each rank
    for _ in range(7):
        loss = model(torch.randn(4, 3, 8, 8, generator=g)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.save({t.name: t.mask for t in engine.targets}, f'{result_dir}/masks{rank}.pt')
    dist.destroy_process_group()


def test_two_process_gloo_masks_identical(tmp_path):
    import socket

    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    m0, m1 = (torch.load(tmp_path / f'masks{r}.pt') for r in (0, 1))
    assert m0.keys() == m1.keys() and len(m0) == 3
    for k in m0:
        assert torch.equal(m0[k], m1[k]), k
    # three updates happened (steps 2, 4, 6): the masks differ from the initial draw
    torch.manual_seed(0)
    fresh = SparseEngine(select_sparse_targets(Net()), sparsity=0.5, init='uniform', seed=7)
    fresh.init_masks()
    assert any(not torch.equal(t.mask, m0[t.name]) for t in fresh.targets)


def test_hook_rejects_bad_options_when_built():
    from mmlk.engine.hooks import SparseTrainingHook
    with pytest.raises(ValueError, match="unknown growth 'momentum'"):
        SparseTrainingHook(growth='momentum')
    with pytest.raises(ValueError, match='sparsity must be in'):
        SparseTrainingHook(sparsity=1.5)
