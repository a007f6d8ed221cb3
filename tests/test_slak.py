import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmlk.models.backbones import SLaK
from conftest import TINY_ARCH
from test_ops import randomise_bn


def tiny(**kwargs) -> SLaK:
    kwargs.setdefault('arch', TINY_ARCH)
    kwargs.setdefault('kernel_size', (13, 11, 9, 7, 3))
    return SLaK(**kwargs)


@pytest.mark.parametrize('arch,dims,depths', [
    ('tiny', [124, 249, 499, 998], [3, 3, 9, 3]),
    ('small', [124, 249, 499, 998], [3, 3, 27, 3]),
    ('base', [166, 332, 665, 1331], [3, 3, 27, 3]),
])
def test_arch_widths_use_int_truncation(arch, dims, depths):
    # Built on the meta device: only the shapes matter here.
    with torch.device('meta'):
        model = SLaK(arch=arch, out_indices=(0, 1, 2, 3), gap_before_final_norm=False)
    assert model.dims == dims and model.depths == depths
    assert model.out_channels == dims


def test_slak_t_dense_parameter_count_matches_official():
    # The official SLaK-T classifier has 50,703,838 dense parameters (SLaK issue #12):
    # backbone incl. final norm + a 1000-way linear head.
    with torch.device('meta'):
        model = SLaK(arch='tiny', out_indices=(3, ), gap_before_final_norm=True)
    head = 998 * 1000 + 1000
    assert sum(p.numel() for p in model.parameters()) + head == 50_703_838


def test_slak_t_forward_shapes_small_input():
    model = SLaK(arch='tiny', out_indices=(0, 1, 2, 3), gap_before_final_norm=False)
    model.eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 124, 16, 16), (1, 249, 8, 8), (1, 499, 4, 4),
                                              (1, 998, 2, 2)]


@pytest.mark.parametrize('out_indices,expected', [
    ((0, 1, 2, 3), [(2, 10, 16, 16), (2, 20, 8, 8), (2, 41, 4, 4), (2, 83, 2, 2)]),
    ((1, 3), [(2, 20, 8, 8), (2, 83, 2, 2)]),
    (-1, [(2, 83, 2, 2)]),
])
def test_tiny_shapes_per_out_indices(out_indices, expected):
    model = tiny(out_indices=out_indices, gap_before_final_norm=False)
    outs = model(torch.randn(2, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == expected
    assert model.out_channels == [s[1] for s in expected]


def test_gap_before_final_norm_returns_vectors():
    model = tiny(out_indices=(2, 3), gap_before_final_norm=True)
    outs = model(torch.randn(2, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(2, 41), (2, 83)]


@pytest.mark.parametrize('kwargs,error,message', [
    (dict(arch='huge'), ValueError, "unknown SLaK arch 'huge'"),
    (dict(arch=dict(depths=[1, 1, 1, 1])), ValueError, 'missing'),
    (dict(kernel_size=(51, 49, 47, 12, 5)), ValueError, 'odd positive'),
    (dict(kernel_size=(51, 49, 47, 13, 0)), ValueError, 'odd positive'),
    (dict(kernel_size=(51, 49, 47, 5, 5)), ValueError, 'smaller than the large'),
    (dict(kernel_size=(51, 49, 47, 13)), ValueError, 'short side'),
    (dict(out_indices=(0, 4)), ValueError, 'out of range'),
    (dict(out_indices=(-5, )), ValueError, 'out of range'),
    (dict(frozen_stages=5), ValueError, 'frozen_stages'),
])
def test_bad_arguments_say_what_is_wrong(kwargs, error, message):
    with pytest.raises(error, match=message):
        tiny(**kwargs)


def test_frozen_stages():
    model = tiny(frozen_stages=2, out_indices=(0, 1, 2, 3), gap_before_final_norm=False)
    model.train()
    for i in range(4):
        frozen = i < 2
        for module in (model.downsample_layers[i], model.stages[i], getattr(model, f'norm{i}')):
            assert all(not m.training for m in module.modules()) == frozen
            assert all(p.requires_grad != frozen for p in module.parameters())
    out = model(torch.randn(2, 3, 64, 64))[-1].sum()
    out.backward()
    assert model.stages[0][0].pwconv1.weight.grad is None
    assert model.stages[3][0].pwconv1.weight.grad is not None


def test_norm_eval_keeps_bn_statistics():
    model = tiny(norm_eval=True)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and all(not m.training for m in bns)
    before = bns[0].running_mean.clone()
    model(torch.randn(2, 3, 32, 32) * 3 + 1)
    assert torch.equal(bns[0].running_mean, before)
    assert model.stages[0][0].pwconv1.training  # only norms are switched


def test_with_cp_matches_and_only_checkpoints_with_grad():
    torch.manual_seed(0)
    ref = tiny(out_indices=(0, 1, 2, 3), gap_before_final_norm=False)
    cp = tiny(out_indices=(0, 1, 2, 3), gap_before_final_norm=False, with_cp=True)
    cp.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    sum(o.sum() for o in ref(x)).backward()
    grad_ref = {n: p.grad.clone() for n, p in ref.named_parameters()}
    x.grad = None
    sum(o.sum() for o in cp(x)).backward()
    for n, p in cp.named_parameters():
        torch.testing.assert_close(p.grad, grad_ref[n], atol=1e-5, rtol=1e-4)
    cp.eval()
    with torch.no_grad():  # no checkpointing needed (nor possible for export) without grads
        outs = cp(torch.randn(1, 3, 32, 32))
    assert len(outs) == 4


@pytest.mark.parametrize('dtype,tol', [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_backbone_deploy_equivalence(dtype, tol):
    model = tiny(out_indices=(0, 1, 2, 3), gap_before_final_norm=False,
                 kernel_size=(51, 49, 47, 13, 5)).to(dtype)
    randomise_bn(model, seed=3)
    model.eval()
    x = torch.randn(2, 3, 64, 64, dtype=dtype)
    with torch.no_grad():
        reference = model(x)
        model.switch_to_deploy()
        deployed = model(x)
    assert model.deploy
    assert not any(isinstance(m, _BatchNorm) for m in model.modules())
    for a, b in zip(deployed, reference):
        torch.testing.assert_close(a, b, atol=tol, rtol=tol)


def test_deploy_constructor_builds_the_merged_form():
    trained = tiny()
    trained.switch_to_deploy()
    direct = tiny(deploy=True)
    assert trained.state_dict().keys() == direct.state_dict().keys()
    direct.load_state_dict(trained.state_dict())  # strict: same keys and shapes


def test_layer_depth_follows_convnext_rule():
    t = tiny()
    assert t.max_layer_id == 6
    assert t.get_layer_depth('backbone.downsample_layers.0.0.weight', 'backbone.') == (0, 8)
    assert t.get_layer_depth('backbone.downsample_layers.1.1.weight', 'backbone.') == (2, 8)
    assert t.get_layer_depth('backbone.downsample_layers.3.1.weight', 'backbone.') == (6, 8)
    assert t.get_layer_depth('backbone.stages.1.0.gamma', 'backbone.') == (2, 8)
    assert t.get_layer_depth('backbone.stages.2.0.pwconv1.weight', 'backbone.') == (3, 8)
    assert t.get_layer_depth('backbone.norm3.weight', 'backbone.') == (7, 8)
    assert t.get_layer_depth('decode_head.conv_seg.weight', 'backbone.') == (7, 8)
    with torch.device('meta'):
        s = SLaK(arch='small')
    assert s.get_layer_depth('stages.2.26.norm.weight') == (3 + 26 // 3, 14)
    assert s.get_stage_depth('backbone.stages.3.0.gamma', 'backbone.') == (4, 14)
    assert s.get_stage_depth('backbone.downsample_layers.2.1.bias', 'backbone.') == (0, 14)
    assert s.get_stage_depth('head.fc.weight', 'backbone.') == (13, 14)


def test_default_init_is_truncated_normal_with_zero_bias():
    model = tiny()
    model.init_weights()
    w = model.stages[0][0].pwconv1.weight
    # trunc_normal_(std=.02) with the official (timm) absolute bounds of +-2
    assert 0.015 < w.std().item() < 0.025 and w.abs().max().item() <= 2
    assert torch.count_nonzero(model.stages[0][0].pwconv1.bias) == 0
    assert isinstance(model.stages[0][0].large_kernel.LoRA1.bn, nn.BatchNorm2d)
