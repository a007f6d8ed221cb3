"""RepLKNet: architecture, official state-dict layout, downstream API, re-parameterisation,
checkpoints and converters."""
import os.path as osp
from collections import OrderedDict
from unittest import mock

import re

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmlk.models.backbones import RepLKNet
from mmlk.core.checkpoint_io import CheckpointMismatchError, convert_to_mmlk
from mmlk.ops import ReparamLargeKernelConv
from conftest import REPO, run_tool
from test_ops import randomise_bn

TINY = dict(large_kernel_sizes=[31, 29, 27, 13], layers=[1, 1, 2, 1], channels=[8, 16, 32, 64],
            small_kernel=5, dw_ratio=1)
TINY_XL = dict(TINY, small_kernel=None, dw_ratio=1.5)


def tiny(**kwargs) -> RepLKNet:
    kwargs.setdefault('arch', TINY)
    return RepLKNet(**kwargs)


# ---------------------------------------------------------------------- the official layout
def official_layout(arch: dict, layout: str, num_classes: int = 1000):
    """``[(key, shape)]`` of an official RepLKNet state dict, written from the documented key
    scheme of the official ``replknet.py`` (reference notes, section 1.10), not from our model.

    layout: ``'cls'`` (ImageNet), ``'cls_deploy'`` (``small_kernel_merged=True``) or
    ``'downstream'`` / ``'downstream_norm'`` (mmseg/mmdet backbone, the latter with
    ``norm_intermediate_features`` as XL).
    """
    spec = []

    def bn(prefix, c):
        spec.extend([(f'{prefix}.weight', [c]), (f'{prefix}.bias', [c]),
                     (f'{prefix}.running_mean', [c]), (f'{prefix}.running_var', [c]),
                     (f'{prefix}.num_batches_tracked', [])])

    def conv_bn(prefix, cin, cout, k, groups=1):
        spec.append((f'{prefix}.conv.weight', [cout, cin // groups, k, k]))
        bn(f'{prefix}.bn', cout)

    chans = arch['channels']
    c0 = chans[0]
    conv_bn('stem.0', 3, c0, 3)
    conv_bn('stem.1', c0, c0, 3, c0)
    conv_bn('stem.2', c0, c0, 1)
    conv_bn('stem.3', c0, c0, 3, c0)
    for s, (c, n, k) in enumerate(zip(chans, arch['layers'], arch['large_kernel_sizes'])):
        cdw = int(c * arch['dw_ratio'])
        for i in range(n):
            b = f'stages.{s}.blocks.{2 * i}'
            bn(f'{b}.prelkb_bn', c)
            conv_bn(f'{b}.pw1', c, cdw, 1)
            if layout == 'cls_deploy':
                spec += [(f'{b}.large_kernel.lkb_reparam.weight', [cdw, 1, k, k]),
                         (f'{b}.large_kernel.lkb_reparam.bias', [cdw])]
            else:
                conv_bn(f'{b}.large_kernel.lkb_origin', cdw, cdw, k, cdw)
                if arch['small_kernel'] is not None:
                    sk = arch['small_kernel']
                    conv_bn(f'{b}.large_kernel.small_conv', cdw, cdw, sk, cdw)
            conv_bn(f'{b}.pw2', cdw, c, 1)
            f = f'stages.{s}.blocks.{2 * i + 1}'
            bn(f'{f}.preffn_bn', c)
            conv_bn(f'{f}.pw1', c, 4 * c, 1)
            conv_bn(f'{f}.pw2', 4 * c, c, 1)
        if layout == 'downstream_norm':
            bn(f'stages.{s}.norm', c)
        if s < 3:
            conv_bn(f'transitions.{s}.0', c, chans[s + 1], 1)
            conv_bn(f'transitions.{s}.1', chans[s + 1], chans[s + 1], 3, chans[s + 1])
    if layout.startswith('cls'):
        bn('norm', chans[3])
        spec += [('head.weight', [num_classes, chans[3]]), ('head.bias', [num_classes])]
    return spec


def folded_layout(spec):
    """The layout after folding every ``P.conv`` + ``P.bn`` pair and every block's pre-BN
    (``prelkb_bn``, ``preffn_bn``, into the following 1x1 ``pw1``): our deploy form."""
    spec = [(k, s) for k, s in spec if not re.search(r'\.(prelkb_bn|preffn_bn)\.', k)]
    keys = dict(spec)
    pairs = {k[:-len('.bn.weight')] for k in keys
             if k.endswith('.bn.weight') and k[:-len('.bn.weight')] + '.conv.weight' in keys}
    folded = []
    for key, shape in spec:
        prefix = key.split('.bn.')[0]
        if '.bn.' in key and prefix in pairs:
            if key.endswith('.bn.weight'):
                folded.append((f'{prefix}.conv.bias', shape))
            continue
        folded.append((key, shape))
    return folded


def random_state(spec, seed=0) -> 'OrderedDict[str, torch.Tensor]':
    g = torch.Generator().manual_seed(seed)
    state = OrderedDict()
    for key, shape in spec:
        if key.endswith('num_batches_tracked'):
            state[key] = torch.tensor(11)
        elif key.endswith('running_var'):
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            state[key] = torch.randn(shape, generator=g) * 0.1
    return state


def ours_as_official(model: RepLKNet) -> dict:
    """Our state dict's shapes under official names (``stages.3.norm`` -> ``norm``)."""
    return {(k.replace('stages.3.norm.', 'norm.') if model.final_norm else k): list(v.shape)
            for k, v in model.state_dict().items()}


@pytest.mark.parametrize('arch,layout,entries,params', [
    ('31B', 'cls', 1171, 79_864_168),
    ('31L', 'cls', 1171, 172_671_016),
    ('XL', 'cls', 1027, 335_435_752),
    ('31B', 'cls_deploy', 931, None),
    ('XL', 'downstream_norm', 1040, None),
    ('31B', 'downstream', 1171 - 5 - 2, None),  # no final BN, no head
])
def test_state_dict_equals_official_layout_and_published_size(arch, layout, entries, params):
    spec = official_layout(RepLKNet.arch_zoo[arch], layout)
    assert len(spec) == entries  # the counts quoted in the reference notes
    classification = layout.startswith('cls')
    with torch.device('meta'):  # full-size models without allocating their weights
        model = RepLKNet(arch, out_indices=(3, ) if classification else (0, 1, 2, 3),
                         final_norm=classification, deploy=layout == 'cls_deploy',
                         norm_intermediate_features=layout == 'downstream_norm')
    if layout == 'cls_deploy':  # merged kernels (official) and folded conv-BN pairs (ours)
        spec = folded_layout(spec)
    official = {k: v for k, v in spec if not k.startswith('head.')}
    assert ours_as_official(model) == official
    if params is not None:  # mmpretrain's metafile / the paper, with the 1000-class head
        head = sum(torch.Size(s).numel() for k, s in spec if k.startswith('head.'))
        assert sum(p.numel() for p in model.parameters()) + head == params


# ---------------------------------------------------------------------- shapes and arguments
@pytest.mark.parametrize('out_indices,expected', [
    ((0, 1, 2, 3), [(8, 16), (16, 8), (32, 4), (64, 2)]),
    ((3, ), [(64, 2)]),
    ((-1, 1), [(16, 8), (64, 2)]),
])
def test_output_shapes_and_strides(out_indices, expected):
    model = tiny(out_indices=out_indices)
    outs = model(torch.randn(2, 3, 64, 64))
    assert [(o.shape[1], o.shape[2]) for o in outs] == expected
    assert all(o.shape[2] == o.shape[3] for o in outs)
    assert model.out_channels == [c for c, _ in expected]


def test_xl_style_arch_has_no_small_branch_and_widens_depthwise():
    model = tiny(arch=TINY_XL)
    block = model.stages[0].blocks[0]
    assert not hasattr(block.large_kernel, 'small_conv')
    assert block.pw1.conv.out_channels == 12 and block.large_kernel.channels == 12
    assert [tuple(o.shape) for o in model(torch.randn(1, 3, 64, 64))] == [(1, 64, 2, 2)]


@pytest.mark.parametrize('kwargs,message', [
    (dict(arch='31XL'), "unknown RepLKNet arch '31XL'.*'31B', '31L', 'XL'"),
    (dict(arch=dict(layers=[2, 2, 18, 2])), 'missing'),
    (dict(arch=dict(TINY, large_kernel_sizes=[31, 29, 28, 13])), 'odd positive'),
    (dict(arch=dict(TINY, small_kernel=13)), 'smaller than the large'),
    (dict(arch=dict(TINY, channels=[8, 16, 32])), 'channels needs 4 entries'),
    (dict(norm_intermediate_features=True, final_norm=True), 'exclude each other'),
    (dict(frozen_stages=5), 'frozen_stages'),
    (dict(out_indices=(4, )), 'out of range'),
])
def test_bad_arguments_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny(**kwargs)


def test_output_norms_follow_norm_intermediate_features_not_out_indices():
    plain = tiny(out_indices=(0, 1, 2, 3))
    assert all(isinstance(s.norm, nn.Identity) for s in plain.stages)  # official 31B/31L
    normed = tiny(out_indices=(1, ), norm_intermediate_features=True)
    assert all(isinstance(s.norm, nn.BatchNorm2d) for s in normed.stages)  # official XL
    cls = tiny(final_norm=True)
    assert [isinstance(s.norm, nn.BatchNorm2d) for s in cls.stages] == [False] * 3 + [True]


def test_norm_and_act_cfg_reach_every_layer():
    model = tiny(norm_cfg=dict(type='GN', num_groups=4), act_cfg=dict(type='SiLU'),
                 ffn_act_cfg=dict(type='ReLU'))
    assert not any(isinstance(m, _BatchNorm) for m in model.modules())
    acts = [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.GELU, nn.SiLU))]
    ffn_acts = {id(b.nonlinear) for s in model.stages for b in s.blocks[1::2]}
    assert len(ffn_acts) == sum(TINY['layers']) and not any(isinstance(m, nn.GELU) for m in acts)
    assert all(isinstance(m, nn.ReLU) == (id(m) in ffn_acts) for m in acts)
    assert isinstance(model.stem[0].nonlinear, nn.SiLU)
    assert isinstance(model.transitions[0][1].nonlinear, nn.SiLU)
    assert isinstance(model.stages[1].blocks[0].lk_nonlinear, nn.SiLU)
    assert isinstance(model.stages[1].blocks[1].nonlinear, nn.ReLU)


def test_drop_path_is_linear_over_block_pairs():
    model = tiny(drop_path_rate=0.3)
    rates = [b.drop_path.drop_prob if hasattr(b.drop_path, 'drop_prob') else 0.
             for s in model.stages for b in s.blocks]
    assert rates[0::2] == rates[1::2]  # a RepLK block and its ConvFFN share the rate
    assert rates[0::2] == pytest.approx([0., 0.075, 0.15, 0.225, 0.3])


# ---------------------------------------------------------------------- training-state API
def test_frozen_stages_freeze_stem_stages_and_transitions_between_them():
    model = tiny(frozen_stages=2, out_indices=(0, 1, 2, 3))
    model.train()
    frozen = [model.stem, model.stages[0], model.stages[1], model.transitions[0]]
    trainable = [model.transitions[1], model.stages[2], model.transitions[2], model.stages[3]]
    for module in frozen:
        assert all(not p.requires_grad for p in module.parameters())
        assert all(not m.training for m in module.modules())
    for module in trainable:
        assert all(p.requires_grad for p in module.parameters())
        assert all(m.training for m in module.modules())
    only_stem = tiny(frozen_stages=0)
    assert all(not p.requires_grad for p in only_stem.stem.parameters())
    assert all(p.requires_grad for p in only_stem.stages[0].parameters())
    assert all(p.requires_grad for p in tiny(frozen_stages=-1).parameters())


def test_norm_eval_keeps_bn_statistics():
    model = tiny(norm_eval=True)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and all(not m.training for m in bns)
    before = bns[3].running_mean.clone()
    model(torch.randn(2, 3, 64, 64) * 3 + 1)
    assert torch.equal(bns[3].running_mean, before)
    assert model.stages[0].blocks[0].pw1.conv.training


def test_with_cp_matches_and_only_checkpoints_when_grads_are_needed():
    torch.manual_seed(0)
    ref = tiny(out_indices=(0, 1, 2, 3), drop_path_rate=0.)
    ckpt = tiny(out_indices=(0, 1, 2, 3), drop_path_rate=0., with_cp=True)
    ckpt.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 64, 64)
    sum(o.sum() for o in ref(x)).backward()
    calls = []
    from mmlk.models.utils import activation_checkpoint
    real = activation_checkpoint.cp.checkpoint
    with mock.patch.object(activation_checkpoint.cp, 'checkpoint',
                           side_effect=lambda *a, **k: calls.append(1) or real(*a, **k)):
        sum(o.sum() for o in ckpt(x)).backward()
        assert len(calls) == 3 + 2 * sum(TINY['layers'])  # stem[1:] and every block
        for (name, p), q in zip(ckpt.named_parameters(), ref.parameters()):
            torch.testing.assert_close(p.grad, q.grad, atol=1e-4, rtol=1e-4, msg=name)
        calls.clear()
        ckpt.eval()
        with torch.no_grad():
            ckpt(x)
        ckpt.train()
        ckpt.requires_grad_(False)  # a frozen backbone needs no recomputation either
        ckpt(x)
    assert not calls


def test_layer_depth_is_the_official_replknet_rule():
    with torch.device('meta'):
        model = RepLKNet('31B')
    cases = {
        'backbone.stem.0.conv.weight': 0,
        'backbone.stages.0.blocks.1.pw1.conv.weight': 1,
        'backbone.transitions.0.1.bn.weight': 1,
        'backbone.stages.1.blocks.3.preffn_bn.bias': 2,
        'backbone.transitions.1.0.conv.weight': 2,
        'backbone.stages.2.blocks.0.large_kernel.lkb_origin.conv.weight': 3,
        'backbone.stages.2.blocks.3.pw2.bn.weight': 3,
        'backbone.stages.2.blocks.4.pw1.conv.weight': 4,
        'backbone.stages.2.blocks.35.pw2.conv.weight': 11,
        'backbone.transitions.2.0.conv.weight': 11,
        'backbone.stages.3.blocks.2.pw1.conv.weight': 12,
        'backbone.stages.3.norm.weight': 12,
        'decode_head.conv_seg.weight': 13,
    }
    for name, layer_id in cases.items():
        assert model.get_layer_depth(name, 'backbone.') == (layer_id, 14), name
    assert model.get_stage_depth('backbone.transitions.1.0.conv.weight', 'backbone.') == (2, 14)
    assert model.get_stage_depth('backbone.stem.2.bn.bias', 'backbone.') == (0, 14)


def test_layer_decay_constructor_groups_replknet_parameters():
    from mmengine.optim import build_optim_wrapper
    model = nn.Module()
    model.backbone = tiny(arch=dict(TINY, layers=[1, 1, 17, 1]))
    model.head = nn.Linear(64, 10)
    wrapper = build_optim_wrapper(model, dict(
        optimizer=dict(type='AdamW', lr=1.0, weight_decay=0.05),
        constructor='mmlk.LayerDecayOptimWrapperConstructor',
        paramwise_cfg=dict(decay_rate=0.5, num_layers=12, norm_decay_mult=0.0,
                           bias_decay_mult=1.0, flat_decay_mult=1.0)))
    lr_of = {name: g['lr'] for g in wrapper.optimizer.param_groups for name in g['param_names']}
    assert lr_of['backbone.stem.0.conv.weight'] == pytest.approx(0.5**13)
    assert lr_of['backbone.stages.2.blocks.33.pw1.conv.weight'] == pytest.approx(0.5**2)
    assert lr_of['head.weight'] == 1.0
    decay_of = {n: g['weight_decay'] for g in wrapper.optimizer.param_groups
                for n in g['param_names']}
    assert decay_of['backbone.stem.0.bn.weight'] == 0 and decay_of['head.bias'] == 0.05


# ---------------------------------------------------------------------- re-parameterisation
@pytest.mark.parametrize('dtype,tol', [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize('kernel,small,size', [(31, 5, 12), (13, 5, 20), (27, None, 9), (7, 3, 7)])
def test_large_kernel_block_deploy_equivalence(dtype, tol, kernel, small, size):
    module = ReparamLargeKernelConv(6, kernel, small).to(dtype)
    randomise_bn(module, seed=kernel)
    module.eval()
    x = torch.randn(2, 6, size, size + 2, dtype=dtype)
    with torch.no_grad():
        reference = module(x)
        module.switch_to_deploy()
        deployed = module(x)
    assert reference.shape == x.shape
    assert module.deploy and not hasattr(module, 'lkb_origin') and not hasattr(module, 'small_conv')
    assert module.lkb_reparam.weight.shape == (6, 1, kernel, kernel)
    torch.testing.assert_close(deployed, reference, atol=tol, rtol=tol)


@pytest.mark.parametrize('arch', [TINY, TINY_XL])
@pytest.mark.parametrize('dtype,tol', [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_backbone_deploy_equivalence_and_deploy_constructor(arch, dtype, tol, tmp_path):
    model = tiny(arch=arch, out_indices=(0, 1, 2, 3), norm_intermediate_features=True).to(dtype)
    randomise_bn(model, seed=5)
    model.eval()
    x = torch.randn(2, 3, 64, 64, dtype=dtype)
    with torch.no_grad():
        reference = model(x)
        model.switch_to_deploy()
        deployed = model(x)
    assert model.deploy
    assert not any(k.endswith('.bn.running_var') for k in model.state_dict())  # no conv-BN left
    for a, b in zip(deployed, reference):
        torch.testing.assert_close(a, b, atol=tol * b.abs().max().item(), rtol=tol)
    # the deploy constructor builds the same structure, and a deploy checkpoint round-trips
    path = tmp_path / 'deploy.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in model.state_dict().items()}}, path)
    direct = tiny(arch=arch, out_indices=(0, 1, 2, 3), norm_intermediate_features=True,
                  deploy=True, init_cfg=dict(type='Pretrained', checkpoint=str(path))).to(dtype)
    direct.init_weights()
    direct.eval()
    assert direct.state_dict().keys() == model.state_dict().keys()
    with torch.no_grad():
        for a, b in zip(direct(x), deployed):
            assert torch.equal(a, b)


def test_official_deploy_checkpoint_loads_into_deploy_model_with_same_outputs(tmp_path):
    trained = tiny(out_indices=(0, 1, 2, 3))
    randomise_bn(trained, seed=2)
    trained.eval()
    official_deploy = tiny(out_indices=(0, 1, 2, 3))
    official_deploy.load_state_dict(trained.state_dict())
    for module in official_deploy.modules():  # official small_kernel_merged: large kernels only
        if isinstance(module, ReparamLargeKernelConv):
            module.switch_to_deploy()
    assert any('.pw1.bn.' in k for k in official_deploy.state_dict())
    path = tmp_path / 'official_deploy.pth'
    torch.save({'model': official_deploy.state_dict()}, path)
    deployed = tiny(out_indices=(0, 1, 2, 3), deploy=True,
                    init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    deployed.init_weights()
    deployed.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(deployed(x), trained(x)):
            torch.testing.assert_close(a, b, atol=1e-4 * b.abs().max().item(), rtol=1e-4)


def test_training_checkpoint_into_deploy_model_says_how_to_convert(tmp_path):
    path = tmp_path / 'train.pth'
    torch.save(tiny().state_dict(), path)
    model = tiny(deploy=True, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CheckpointMismatchError, match='tools/reparameterize.py'):
        model.init_weights()


def test_same_outputs_as_mmpretrain_replknet_with_its_weights():
    from mmpretrain.models.backbones import RepLKNet as MMPretrainRepLKNet
    theirs = MMPretrainRepLKNet(TINY, out_indices=(3, ))
    randomise_bn(theirs, seed=9)
    ours = tiny(final_norm=True)
    ours.load_state_dict(theirs.state_dict(), strict=True)  # identical keys and shapes
    theirs.eval()
    ours.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x)[0], theirs(x)[0], atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------- official checkpoints
def test_pretrained_init_loads_official_imagenet_file_into_a_dense_backbone(tmp_path):
    official = random_state(official_layout(TINY, 'cls'))
    path = tmp_path / 'RepLKNet-31B_ImageNet-1K_224.pth'
    torch.save(official, path)  # official ImageNet files are raw state dicts
    model = tiny(arch=TINY, out_indices=(0, 1, 2, 3), norm_intermediate_features=True,
                 init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    sd = model.state_dict()
    for key in ('stages.2.blocks.2.large_kernel.lkb_origin.conv.weight',
                'transitions.1.1.bn.running_var', 'stem.3.conv.weight'):
        assert torch.equal(sd[key], official[key]), key
    assert torch.equal(sd['stages.3.norm.weight'], torch.ones(64))  # new output norm, not `norm.`
    # a classifier takes the final BN from `norm.`
    cls = tiny(final_norm=True, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    cls.init_weights()
    assert torch.equal(cls.state_dict()['stages.3.norm.running_mean'],
                       official['norm.running_mean'])


def test_pretrained_init_never_loads_half_a_checkpoint(tmp_path):
    official = random_state(official_layout(TINY, 'cls'))
    del official['stages.1.blocks.1.pw2.conv.weight']
    path = tmp_path / 'broken.pth'
    torch.save({'model': official}, path)
    model = tiny(init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    before = model.stem[0].conv.weight.clone()
    with pytest.raises(CheckpointMismatchError, match=r'stages\.1\.blocks\.1\.pw2\.conv\.weight'):
        model.init_weights()
    assert torch.equal(model.stem[0].conv.weight, before)


@pytest.mark.parametrize('layout,arch', [('downstream', TINY), ('downstream_norm', TINY_XL),
                                         ('cls_deploy', TINY)])
def test_convert_downstream_and_deploy_layouts(layout, arch):
    official = random_state(official_layout(arch, layout))
    if layout.startswith('downstream'):  # an mmseg 0.x checkpoint: backbone + heads
        official = OrderedDict(('backbone.' + k, v) for k, v in official.items())
        official['decode_head.conv_seg.weight'] = torch.randn(150, 512, 1, 1)
        checkpoint = {'state_dict': official, 'meta': {}}
    else:
        checkpoint = {'model': official}

    def build(state, classification):
        deploy = any('.lkb_reparam.' in k for k in state)
        with_norms = any(k.startswith('stages.0.norm.') for k in state)
        return tiny(arch=arch, out_indices=(3, ) if classification else (0, 1, 2, 3),
                    final_norm=classification, deploy=deploy,
                    norm_intermediate_features=with_norms and not classification)

    converted = convert_to_mmlk(checkpoint, build)
    if layout == 'cls_deploy':
        assert torch.equal(converted['backbone.stages.3.norm.weight'], official['norm.weight'])
        assert torch.equal(converted['head.fc.weight'], official['head.weight'])
        assert 'backbone.stages.0.blocks.0.large_kernel.lkb_reparam.bias' in converted
    else:
        assert torch.equal(converted['decode_head.conv_seg.weight'],
                           official['decode_head.conv_seg.weight'])  # heads pass through
        assert converted.keys() == official.keys()


def test_converter_cli_round_trip_31b_into_image_classifier(tmp_path):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    official = random_state(official_layout(RepLKNet.arch_zoo['31B'], 'cls'))
    src = tmp_path / 'RepLKNet-31B_ImageNet-1K_224.pth'
    torch.save(official, src)
    dst = tmp_path / 'converted.pth'
    proc = run_tool('tools/model_converters/replknet_to_mmlk.py', str(src), str(dst))
    assert 'wrote 1171 tensors' in proc.stdout

    cfg = Config.fromfile(osp.join(REPO, 'configs', 'replknet_31b_in1k.py'))
    cfg.model.backbone.norm_cfg = dict(type='BN')
    init_default_scope('mmpretrain')
    classifier = MODELS.build(cfg.model)
    result = classifier.load_state_dict(torch.load(dst, weights_only=False)['state_dict'])
    assert not result.missing_keys and not result.unexpected_keys
    sd = classifier.state_dict()
    for theirs, ours in [('stages.2.blocks.35.pw2.bn.running_var',
                          'backbone.stages.2.blocks.35.pw2.bn.running_var'),
                         ('norm.bias', 'backbone.stages.3.norm.bias'),
                         ('head.weight', 'head.fc.weight')]:
        assert torch.equal(sd[ours], official[theirs]), ours

    # another arch is refused, naming a key and both shapes, and nothing is written
    refused = run_tool('tools/model_converters/replknet_to_mmlk.py', str(src),
                       str(tmp_path / 'o.pth'), '--arch', '31L', check=False)
    assert refused.returncode != 0
    assert 'stem.0.conv.weight: checkpoint (128, 3, 3, 3) vs model (192, 3, 3, 3)' in refused.stderr
    assert not (tmp_path / 'o.pth').exists()


def test_imagenet_22k_checkpoint_is_usable_as_is_and_for_1k_fine_tuning(tmp_path):
    """The 21841-class checkpoint loads strictly into the 22K config, and the 22K -> 1K
    fine-tuning config takes its backbone and leaves the 1000-class head to train (instead of
    'size mismatch for head.fc.weight')."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    from mmlk.core.checkpoint_io import load_state_dict_checked
    init_default_scope('mmpretrain')
    tiny = dict(RepLKNet.arch_zoo['31L'], layers=[1, 1, 1, 1], channels=[8, 16, 32, 64])

    def build(name):
        cfg = Config.fromfile(osp.join(REPO, 'configs', 'replknet', name))
        cfg.model.backbone.arch = tiny
        cfg.model.backbone.norm_cfg = dict(type='BN')
        cfg.model.head.in_channels = 64
        return cfg

    cfg22 = build('replknet-31l_in21k.py')
    assert cfg22.model.head.num_classes == 21841 and cfg22.model.backbone.arch['channels']
    torch.manual_seed(0)
    model22 = MODELS.build(cfg22.model)
    state = model22.state_dict()
    assert state['head.fc.weight'].shape == (21841, 64)
    path = tmp_path / 'replknet-31l_in21k_mmlk.pth'
    torch.save({'state_dict': state}, path)
    load_state_dict_checked(MODELS.build(cfg22.model), state)  # strict: every key fits
    cfg1k = build('replknet-31l_in21k-pre_32xb64_in1k-384px.py')
    assert cfg1k.model.head.num_classes == 1000
    assert cfg1k.model.backbone.init_cfg.type == 'Pretrained'
    cfg1k.model.backbone.init_cfg.checkpoint = str(path)
    model1k = MODELS.build(cfg1k.model)
    model1k.init_weights()
    torch.testing.assert_close(model1k.backbone.stages[2].blocks[0].pw1.conv.weight,
                               state['backbone.stages.2.blocks.0.pw1.conv.weight'])
    assert model1k.head.fc.weight.shape == (1000, 64)
    # the recipe: 384 px, layer decay 0.7 over RepLKNet's ids, drop path 0.3
    assert cfg1k.optim_wrapper.paramwise_cfg.decay_rate == 0.7
    assert cfg1k.model.backbone.drop_path_rate == 0.3
    xl = Config.fromfile(osp.join(REPO, 'configs', 'replknet',
                                  'replknet-xl_meg73m-pre_32xb64_in1k-320px.py'))
    assert xl.data_preprocessor.mean == [127.5] * 3 and xl.data_preprocessor.std == [127.5] * 3
    assert xl.model.backbone.arch == 'XL'
    assert any(t.get('scale') == (320, 320) for t in xl.test_pipeline)
