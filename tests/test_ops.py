import pytest
import torch
from torch import nn

from mmlk.ops import (ConvBN, DecomposedLargeKernelConv, LayerNorm2d, fuse_conv_bn,
                      merge_branches, pad_kernel_to, switch_to_deploy)


def randomise_bn(module: nn.Module, seed: int = 0) -> None:
    """Give every BN non-trivial statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(c, generator=g) * 2 + 0.1)
            m.weight.data.copy_(torch.randn(c, generator=g))
            m.bias.data.copy_(torch.randn(c, generator=g))


@pytest.mark.parametrize('dtype,tol', [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_fuse_conv_bn_is_exact(dtype, tol):
    block = ConvBN(6, 6, (7, 3), groups=6).to(dtype)
    randomise_bn(block)
    block.eval()
    kernel, bias = block.fuse()
    x = torch.randn(2, 6, 11, 9, dtype=dtype)
    fused = nn.functional.conv2d(x, kernel, bias, padding=(3, 1), groups=6)
    torch.testing.assert_close(fused, block(x), atol=tol, rtol=tol)


def test_fuse_without_norm_and_errors():
    kernel = torch.randn(4, 1, 3, 3)
    k, b = fuse_conv_bn(kernel, None)
    assert k is kernel and torch.equal(b, torch.zeros(4))
    with pytest.raises(TypeError, match='BatchNorm'):
        fuse_conv_bn(kernel, nn.LayerNorm(4))
    with pytest.raises(ValueError, match='running statistics'):
        fuse_conv_bn(kernel, nn.BatchNorm2d(4, track_running_stats=False))


def test_pad_kernel_centres_and_rejects_odd_offsets():
    k = torch.arange(9.).reshape(1, 1, 3, 3)
    padded = pad_kernel_to(k, (7, 5))
    assert padded.shape == (1, 1, 7, 5)
    assert torch.equal(padded[..., 2:5, 1:4], k) and padded.sum() == k.sum()
    with pytest.raises(ValueError, match='even and non-negative'):
        pad_kernel_to(k, (6, 3))
    with pytest.raises(ValueError, match='even and non-negative'):
        pad_kernel_to(k, (1, 3))


def test_merge_branches_equals_sum_of_convs():
    x = torch.randn(1, 3, 10, 10, dtype=torch.float64)
    k1, b1 = torch.randn(3, 1, 7, 3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    k2, b2 = torch.randn(3, 1, 3, 3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    ref = (nn.functional.conv2d(x, k1, b1, padding=(3, 1), groups=3) +
           nn.functional.conv2d(x, k2, b2, padding=1, groups=3))
    k, b = merge_branches([(k1, b1), (k2, b2)])
    assert k.shape[-2:] == (7, 3)
    torch.testing.assert_close(nn.functional.conv2d(x, k, b, padding=(3, 1), groups=3), ref)


@pytest.mark.parametrize('dtype,tol', [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize('long_side,size', [(13, 20), (31, 12), (7, 7)])
def test_decomposed_kernel_deploy_equivalence(dtype, tol, long_side, size):
    module = DecomposedLargeKernelConv(8, long_side, 5).to(dtype)
    randomise_bn(module, seed=long_side)
    module.eval()
    x = torch.randn(2, 8, size, size + 3, dtype=dtype)
    reference = module(x)
    assert reference.shape == x.shape  # "same" padding per axis, also for kernels > map
    module.switch_to_deploy()
    assert module.deploy and not hasattr(module, 'LoRA1') and not hasattr(module, 'small_conv')
    assert module.tall_conv.weight.shape == (8, 1, long_side, 5)
    assert module.wide_conv.weight.shape == (8, 1, 5, long_side)
    torch.testing.assert_close(module(x), reference, atol=tol, rtol=tol)


def test_decomposed_kernel_keeps_official_names_and_shapes():
    module = DecomposedLargeKernelConv(4, 51, 5)
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert shapes['LoRA1.conv.weight'] == (4, 1, 51, 5)
    assert shapes['LoRA2.conv.weight'] == (4, 1, 5, 51)
    assert shapes['small_conv.conv.weight'] == (4, 1, 5, 5)
    assert 'LoRA1.bn.running_var' in shapes and 'LoRA1.conv.bias' not in shapes


@pytest.mark.parametrize('long_side,short_side,message', [
    (50, 5, 'odd positive'), (51, 4, 'odd positive'), (-3, 1, 'odd positive'),
    (5, 5, 'smaller than the large'), (3, 5, 'smaller than the large')])
def test_kernel_size_errors(long_side, short_side, message):
    with pytest.raises(ValueError, match=message):
        DecomposedLargeKernelConv(4, long_side, short_side)


def test_switch_to_deploy_walks_nested_modules():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Sequential(DecomposedLargeKernelConv(4, 9, 3)))
    randomise_bn(net)
    net.eval()
    x = torch.randn(1, 3, 12, 12)
    ref = net(x)
    switch_to_deploy(net)
    assert net[1][0].deploy
    torch.testing.assert_close(net(x), ref, atol=1e-5, rtol=1e-5)


def test_layernorm2d_matches_channels_first_formula():
    ln = LayerNorm2d(5)
    ln.weight.data.normal_()
    ln.bias.data.normal_()
    x = torch.randn(2, 5, 4, 3)
    mean = x.mean(1, keepdim=True)
    var = (x - mean).pow(2).mean(1, keepdim=True)
    ref = ln.weight[:, None, None] * (x - mean) / torch.sqrt(var + 1e-6) + ln.bias[:, None, None]
    torch.testing.assert_close(ln(x), ref, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match='N, C, H, W'):
        ln(torch.randn(2, 5))


def test_conv_bn_deploy_folds_the_norm_and_keeps_the_activation():
    block = ConvBN(4, 6, 3, stride=2, groups=2, act_cfg=dict(type='ReLU')).double()
    randomise_bn(block, seed=4)
    block.eval()
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    reference = block(x)
    block.switch_to_deploy()
    assert block.bn is None and block.conv.bias is not None and block.conv.stride == (2, 2)
    torch.testing.assert_close(block(x), reference, atol=1e-12, rtol=1e-12)
    direct = ConvBN(4, 6, 3, stride=2, groups=2, act_cfg=dict(type='ReLU'), deploy=True)
    assert direct.state_dict().keys() == block.state_dict().keys()


def test_fold_conv_bn_state_matches_module_folding():
    from mmlk.ops import fold_conv_bn_state
    net = nn.Sequential(ConvBN(3, 4, 3), nn.BatchNorm2d(4))
    randomise_bn(net, seed=6)
    folded = fold_conv_bn_state(net.state_dict())
    net.eval()[0].switch_to_deploy()
    assert folded.keys() == net.state_dict().keys()  # a BN without a conv stays
    for key, value in net.state_dict().items():
        torch.testing.assert_close(folded[key], value)
