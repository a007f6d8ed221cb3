"""mmpretrain's RepLKNet and mmdet's ResNet/MobileNetV2 configs swap in an mmlk backbone.

Their own backbone test cases, re-expressed for our classes (an upstream ``assert`` is a
ValueError/TypeError with a message here), mmpretrain checkpoints through mmengine's loaders,
and a stock mmdet config with only the backbone ``type`` changed.
"""
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import load_checkpoint, save_checkpoint
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmlk.models.backbones import KWMobileNetV2, KWResNet, RepLKNet
from mmlk.core.checkpoint_io import CheckpointMismatchError
from mmlk.ops import ReparamLargeKernelConv

def upstream_config(package: str, path: str) -> Config:
    """A config shipped inside an installed OpenMMLab package (its ``.mim/configs``)."""
    from mmengine.utils import get_installed_path
    return Config.fromfile(osp.join(get_installed_path(package), '.mim', 'configs', path))


# 31B's kernels and small kernel at a CPU-test width and depth.
TINY_31B = dict(RepLKNet.arch_zoo['31B'], layers=[1, 1, 2, 1], channels=[8, 16, 32, 64])


def bn_states(modules, training):
    return all(m.training == training for m in modules if isinstance(m, _BatchNorm))


# ------------------------------------------------------------------ mmpretrain's test_replknet
@pytest.mark.parametrize('channels,kernel,small,size', [
    (12, 31, 5, 64), (12, 27, 5, 48), (12, 31, 7, 64)])
def test_mmpretrain_replk_block_cases(channels, kernel, small, size):
    # mmpretrain's in != out channels and stride-2 cases have no counterpart: mmlk's
    # ReparamLargeKernelConv is the depthwise stride-1 layer every RepLKNet block uses.
    block = ReparamLargeKernelConv(channels, kernel, small).eval()
    x = torch.randn(1, channels, size, size)
    out = block(x)
    assert block.small_kernel <= block.kernel_size
    assert not hasattr(block, 'lkb_reparam') and hasattr(block, 'lkb_origin')
    assert hasattr(block, 'small_conv') and out.shape == (1, channels, size, size)
    block.switch_to_deploy()
    assert block.deploy is True and not hasattr(block, 'lkb_origin')
    torch.testing.assert_close(block(x), out, atol=1e-5, rtol=1e-4)
    deployed = ReparamLargeKernelConv(8, 31, 5, deploy=True)
    assert isinstance(deployed.lkb_reparam, nn.Conv2d)
    assert not hasattr(deployed, 'lkb_origin') and not hasattr(deployed, 'small_conv')
    assert deployed(torch.randn(1, 8, 48, 48)).shape == (1, 8, 48, 48)


def test_mmpretrain_replknet_argument_cases():
    with pytest.raises(TypeError, match='str or a dict'):
        RepLKNet(arch=[4, 6, 16, 1])
    with pytest.raises(ValueError, match="unknown RepLKNet arch '31C'"):
        RepLKNet(arch='31C')
    for partial in (dict(large_kernel_sizes=[31, 29, 27, 13]),
                    dict(large_kernel_sizes=[31, 29, 27, 13], layers=[2, 2, 18, 2]),
                    dict(large_kernel_sizes=[31, 29, 27, 13], layers=[2, 2, 18, 2],
                         channels=[128, 256, 512, 1024])):
        with pytest.raises(ValueError, match='is missing'):
            RepLKNet(arch=partial)
    with pytest.raises(ValueError, match='channels needs 4 entries'):
        RepLKNet(arch=dict(TINY_31B, channels=[8, 16, 32]))
    with pytest.raises(ValueError, match=r'strides=\(2, 2, 2\) is not supported'):
        RepLKNet(TINY_31B, strides=(2, 2, 2))
    with pytest.raises(ValueError, match=r'dilations=\(1, 1, 1\) is not supported'):
        RepLKNet(TINY_31B, strides=(2, 2, 2, 2), dilations=(1, 1, 1))
    with pytest.raises(ValueError, match='out_indices entry 5 is out of range'):
        RepLKNet(TINY_31B, out_indices=(5, ))
    # values mmpretrain accepts and ignores are refused, not ignored
    with pytest.raises(ValueError, match='dilations'):
        RepLKNet(TINY_31B, dilations=(1, 1, 2, 2))
    with pytest.raises(ValueError, match='conv_cfg'):
        RepLKNet(TINY_31B, conv_cfg=dict(type='DCN'))
    # mmpretrain's documented defaults are accepted
    RepLKNet(TINY_31B, strides=[2, 2, 2, 2], dilations=(1, 1, 1, 1), conv_cfg=None)


def test_mmpretrain_replknet_train_state_cases():
    model = RepLKNet(TINY_31B).train()
    assert bn_states(model.modules(), True)
    model = RepLKNet(TINY_31B, frozen_stages=1).train()
    assert all(not p.requires_grad for p in model.stem.parameters())
    assert all(not p.requires_grad for p in model.stages[0].parameters())
    assert bn_states(model.stages[0].modules(), False)
    assert bn_states(model.stages[1].modules(), True)
    model = RepLKNet(TINY_31B, norm_eval=True).train()
    assert bn_states(model.modules(), False)


def test_mmpretrain_replknet_forward_and_deploy_cases():
    torch.manual_seed(0)
    model = RepLKNet(TINY_31B, out_indices=(3, ))
    model.init_weights()
    model.train()
    assert all(isinstance(m, _BatchNorm) for m in model.modules()
               if isinstance(m, (nn.GroupNorm, _BatchNorm)))
    imgs = torch.randn(1, 3, 224, 224)
    feat = model(imgs)
    assert isinstance(feat, tuple) and len(feat) == 1 and feat[0].shape == (1, 64, 7, 7)
    model = RepLKNet(TINY_31B, out_indices=(0, 1, 2, 3))
    model.init_weights()
    model.train()
    feat = model(imgs)
    assert [f.shape for f in feat] == [(1, 8, 56, 56), (1, 16, 28, 28), (1, 32, 14, 14),
                                       (1, 64, 7, 7)]
    model.eval()
    feat = model(imgs)
    model.switch_to_deploy()
    assert all(m.deploy for m in model.modules() if isinstance(m, ReparamLargeKernelConv))
    for a, b in zip(feat, model(imgs)):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_mmpretrain_replknet_load_case(tmp_path):
    """mmpretrain's test_replknet_load: a switched model's file loads strictly into a model
    built with ``small_kernel_merged=True`` through mmengine's load_checkpoint."""
    torch.manual_seed(0)
    model = RepLKNet(TINY_31B, out_indices=(0, 1, 2, 3))
    inputs = torch.randn(1, 3, 64, 64)
    model.switch_to_deploy()
    model.eval()
    outputs = model(inputs)
    deploy = RepLKNet(TINY_31B, out_indices=(0, 1, 2, 3), small_kernel_merged=True).eval()
    assert deploy.deploy
    save_checkpoint(model.state_dict(), str(tmp_path / 'ckpt.pth'))
    load_checkpoint(deploy, str(tmp_path / 'ckpt.pth'), strict=True)
    for a, b in zip(outputs, deploy(inputs)):
        torch.testing.assert_close(a, b)


# ------------------------------------------------------------- mmpretrain's own checkpoints
def mmpretrain_replknet(out_indices, deploy: bool):
    from mmpretrain.models.backbones import RepLKNet as UpstreamRepLKNet
    torch.manual_seed(0)
    upstream = UpstreamRepLKNet(TINY_31B, out_indices=out_indices)
    # trained-looking BN statistics, so that folding them is really exercised
    for m in upstream.modules():
        if isinstance(m, _BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    upstream.eval()
    if deploy:
        upstream.switch_to_deploy()
    return upstream


@pytest.mark.parametrize('deploy', [False, True])
def test_mmpretrain_checkpoint_loads_through_mmengine_and_computes_the_same(tmp_path, deploy):
    # mmpretrain builds a BN on every out_indices stage: norm_intermediate_features here.
    upstream = mmpretrain_replknet((0, 1, 2, 3), deploy)
    path = str(tmp_path / 'mmpretrain.pth')
    save_checkpoint({'state_dict': {f'backbone.{k}': v for k, v in
                                    upstream.state_dict().items()}}, path)
    ours = RepLKNet(TINY_31B, out_indices=(0, 1, 2, 3), norm_intermediate_features=True,
                    small_kernel_merged=deploy).eval()
    load_checkpoint(ours, path, strict=True, revise_keys=[(r'^backbone\.', '')])
    if deploy:  # conv-BN pairs and pre-BNs folded on the way in: no BatchNorm left
        assert not any(isinstance(m, _BatchNorm) for m in ours.stages[0].modules()
                       if m is not ours.stages[0].norm)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(upstream(x), ours(x)):
            torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)


def test_mmpretrain_output_norm_is_never_dropped_silently(tmp_path):
    upstream = mmpretrain_replknet((3, ), deploy=False)
    path = str(tmp_path / 'cls.pth')
    save_checkpoint({'state_dict': {f'backbone.{k}': v for k, v in
                                    upstream.state_dict().items()}}, path)
    revise = [(r'^backbone\.', '')]
    same_arguments = RepLKNet(TINY_31B, out_indices=(3, ))
    # mmengine's default non-strict load would drop stages.3.norm: the backbone refuses
    with pytest.raises(CheckpointMismatchError, match=r'stages\.\{3\}\.norm.*final_norm=True'):
        load_checkpoint(same_arguments, path, strict=False, revise_keys=revise)
    with pytest.raises(CheckpointMismatchError, match='final_norm=True'):
        same_arguments.load_state_dict(
            {k: v for k, v in upstream.state_dict().items()}, strict=False)
    ours = RepLKNet(TINY_31B, out_indices=(3, ), final_norm=True).eval()
    load_checkpoint(ours, path, strict=True, revise_keys=revise)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x)[0], upstream(x)[0], atol=1e-5, rtol=1e-4)


def test_mmpretrain_deploy_config_swaps_in_mmlk_replknet():
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    # mmpretrain 1.2's replknet/deploy/replknet-31B-deploy_32xb64_in1k.py: its
    # _base_/models/replknet-31B_in1k.py imports mmpretrain at config level, which mmengine
    # 0.10.7 refuses to parse ("must match the current configuration file type"), so the
    # model those two files define is written out here.
    cfg = Config(dict(model=dict(
        type='ImageClassifier',
        backbone=dict(type='RepLKNet', arch='31B', out_indices=(3, ), small_kernel_merged=True),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=1024,
                  loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, 5)))))
    cfg.model.backbone.type = 'mmlk.RepLKNet'
    cfg.model.backbone.arch = TINY_31B
    cfg.model.backbone.final_norm = True  # mmpretrain's stage-3 BN (see the test above)
    cfg.model.head.in_channels = 64
    init_default_scope('mmpretrain')
    model = MODELS.build(cfg.model)
    assert type(model.backbone).__name__ == 'RepLKNet' and model.backbone.deploy
    assert not any(hasattr(m, 'lkb_origin') for m in model.modules())
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64), mode='tensor').shape == (2, 1000)


# ------------------------------------------------------ mmdet's ResNet / MobileNetV2 cases
def test_mmdet_resnet_argument_cases():
    with pytest.raises(ValueError, match='depth must be one of'):
        KWResNet(20)
    for kwargs in (dict(num_stages=0), dict(num_stages=5), dict(num_stages=3),
                   dict(strides=(1, ), dilations=(1, 1)), dict(style='tensorflow'),
                   dict(style='caffe'), dict(deep_stem=True), dict(avg_down=True),
                   dict(dcn=dict(type='DCN', deform_groups=1)),
                   dict(stage_with_dcn=(False, True, True, True)),
                   dict(plugins=[dict(cfg=dict(type='ContextBlock', ratio=1. / 16),
                                      stages=(False, True, True, True), position='after_conv3')]),
                   dict(conv_cfg=dict(type='ConvWS'))):
        name = next(iter(kwargs))
        with pytest.raises(ValueError, match=f'{name}=.* is not supported'):
            KWResNet(50, base_channels=8, **kwargs)
    with pytest.raises(ValueError, match='either pretrained'):
        KWResNet(50, pretrained='a.pth', init_cfg=dict(type='Pretrained', checkpoint='a.pth'))
    with pytest.raises(TypeError, match='pretrained must be'):
        KWResNet(50, base_channels=8, pretrained=0)
    model = KWResNet(50, base_channels=8, pretrained='b.pth')
    assert model.init_cfg == dict(type='Pretrained', checkpoint='b.pth')


def test_mmdet_resnet_defaults_freezing_and_forward_cases():
    model = KWResNet(50, base_channels=8)
    # mmdet's defaults
    assert model.out_indices == (0, 1, 2, 3) and model.norm_eval and model.zero_init_residual
    model.init_weights()
    for m in model.modules():
        if hasattr(m, 'bn3'):
            assert torch.all(m.bn3.weight == 0)  # zero_init_residual
    model.train()
    assert bn_states(model.modules(), False)  # norm_eval=True
    model = KWResNet(50, base_channels=8, frozen_stages=1, norm_eval=False)
    model.train()
    assert not model.bn1.training and bn_states(model.layer1.modules(), False)
    assert all(not p.requires_grad for m in (model.conv1, model.bn1, model.layer1)
               for p in m.parameters())
    assert bn_states(model.layer2.modules(), True)
    x = torch.randn(2, 3, 32, 32)
    feat = model(x)
    assert [f.shape for f in feat] == [(2, 32, 8, 8), (2, 64, 4, 4), (2, 128, 2, 2),
                                       (2, 256, 1, 1)]
    model = KWResNet(18, base_channels=8, stem_channels=16, out_indices=(3, ), with_cp=True,
                     zero_init_residual=False)
    model.init_weights()
    assert model.conv1.out_channels == 16 and model.layer1[0].conv1.in_channels == 16
    assert all(torch.all(m.bn2.weight == 1) for m in model.modules() if hasattr(m, 'bn2'))
    model.train()
    out = model(x)
    assert [f.shape for f in out] == [(2, 64, 1, 1)]
    out[0].sum().backward()


def test_mmdet_mobilenetv2_cases():
    with pytest.raises(ValueError, match='out_indices entry 8 is out of range'):
        KWMobileNetV2(out_indices=(8, ))
    with pytest.raises(ValueError, match='frozen_stages'):
        KWMobileNetV2(frozen_stages=9)
    with pytest.raises(ValueError, match='act_cfg'):
        KWMobileNetV2(act_cfg=dict(type='ReLU'))
    model = KWMobileNetV2(0.25, '1x')
    assert model.out_indices == (1, 2, 4, 7) and not model.norm_eval  # mmdet's defaults
    model = KWMobileNetV2(0.25, '1x', frozen_stages=0).train()
    assert not model.features[0].training and model.features[1].training
    assert all(p.requires_grad for p in model.features[1].parameters())
    model = KWMobileNetV2(0.25, '1x', frozen_stages=1).train()  # the stem and layer 1
    assert not model.features[1].training and model.features[2].training
    model = KWMobileNetV2(0.25, '1x', norm_eval=True).train()
    assert bn_states(model.modules(), False)
    model = KWMobileNetV2(1.0, '1x', out_indices=range(0, 8)).train()
    feat = model(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in feat] == [
        (16, 32, 32), (24, 16, 16), (32, 8, 8), (64, 4, 4), (96, 4, 4), (160, 2, 2),
        (320, 2, 2), (1280, 2, 2)]
    model = KWMobileNetV2(0.5, '1x', out_indices=(7, ))
    assert model.out_channels == [1280]


def test_stock_mmdet_faster_rcnn_r50_with_only_the_type_changed_trains(demo_data):
    from mmengine.optim import OptimWrapper
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    from mmdet.registry import MODELS
    cfg = upstream_config('mmdet', 'pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py')
    backbone = cfg.model.backbone
    assert backbone.type == 'ResNet' and backbone.depth == 50
    backbone.type = 'mmlk.KWResNet'
    backbone.init_cfg = None  # torchvision://resnet50 is a download; none here
    init_default_scope('mmdet')
    import mmlk  # noqa: F401  (what custom_imports does in a config)
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert type(model.backbone).__name__ == 'KWResNet'
    # the data side made small for a CPU: the embedded VOC at 160x128
    loader_cfg = cfg.train_dataloader
    voc = loader_cfg.dataset.dataset.datasets[0]
    voc.data_root = demo_data['voc'] + '/'
    voc.pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
                    dict(type='Resize', scale=(160, 128), keep_ratio=True),
                    dict(type='PackDetInputs')]
    loader_cfg.dataset.dataset.datasets = [voc]
    loader_cfg.update(batch_size=2, num_workers=0, persistent_workers=False)
    loader = Runner.build_dataloader(loader_cfg, seed=0)
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    model.train()
    batch = next(iter(loader))
    before = model.backbone.warehouse_manager.weights[1].detach().clone()
    losses = [model.train_step(batch, wrapper) for _ in range(2)]
    for step in losses:
        total = sum(v for k, v in step.items() if 'loss' in k)
        assert math.isfinite(float(total)) and float(total) > 0
    assert not torch.equal(before, model.backbone.warehouse_manager.weights[1])
    # mmdet's frozen_stages=1 froze the stem and layer1
    assert not model.backbone.layer1.training and model.backbone.layer2.training


# ------------------------------------------------------------ mmseg's pretrained argument
def test_mmseg_encoder_decoder_pretrained_reaches_every_backbone_as_init_cfg():
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    from conftest import CONFIGS, tiny_model_overrides
    for config in ('upernet_slak_t_ade20k.py', 'upernet_replknet_31b_ade20k.py',
                   'upernet_sw_t_ade20k.py', 'upernet_kw1x_convnext_t_ade20k.py'):
        cfg = Config.fromfile(osp.join(CONFIGS, config))
        tiny_model_overrides(cfg)
        cfg.model.pretrained = 'checkpoints/imagenet.pth'  # what stock mmseg configs set
        init_default_scope('mmseg')
        model = MODELS.build(cfg.model)
        assert model.backbone.init_cfg == dict(type='Pretrained',
                                               checkpoint='checkpoints/imagenet.pth'), config


def test_an_unknown_argument_names_the_registered_type():
    from mmlk.registry import MODELS
    with pytest.raises(TypeError, match=r"mmlk.SLaK got unexpected argument\(s\) \['bogus'\]; "
                       r"it accepts \['arch', 'deploy', 'drop_path_rate'"):
        MODELS.build(dict(type='mmlk.SLaK', arch=dict(depths=[1, 1, 1, 1], dims=[8, 16, 32, 64]),
                          bogus=1))
    with pytest.raises(ValueError, match='either pretrained'):
        MODELS.build(dict(type='mmlk.SLaK', pretrained='a.pth',
                          init_cfg=dict(type='Pretrained', checkpoint='a.pth')))
