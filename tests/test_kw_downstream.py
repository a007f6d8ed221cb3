"""KernelWarehouse downstream configs as the official COCO runs: which parameters train under
``frozen_stages`` (the official rule vs mmlk's), how the C5 output norm starts (also for the
other ConvNeXt-style families and RepLKNet), and the ImageNet recipes loading converted files.
"""
import os.path as osp
import re
import runpy
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from conftest import CONFIGS, TINY_ARCH
from mmlk.models.backbones import KWConvNeXt, KWMobileNetV2, KWResNet, RepLKNet, SLaK

KW = f'{CONFIGS}/kernelwarehouse'


def _backbone_cfg(config: str) -> dict:
    cfg = Config.fromfile(config)
    backbone = cfg.model.backbone.to_dict()
    backbone.pop('type')
    backbone['init_cfg'] = None
    return backbone


def _trainable(model: torch.nn.Module) -> set:
    model.train()
    return {n for n, p in model.named_parameters() if p.requires_grad}


# -------------------------------------------------------------------------- freezing rules
@pytest.mark.parametrize('config,stage1_warehouses', [
    ('mask-rcnn_kw1x-mobilenetv2-100_fpn_ms-crop-1x_coco.py', 3),  # stem, stage-1 pw and dw
    ('mask-rcnn_kw4x-mobilenetv2-100_fpn_ms-crop-1x_coco.py', 4)])  # stem, pw0, dw0, pw1
def test_mobilenetv2_coco_configs_freeze_as_the_official_backbone(config, stage1_warehouses):
    """Official ``_freeze_stages``: the parameters of ``features[0..3]`` and nothing else; the
    manager's warehouses all train. mmlk's rule additionally freezes the stem's and stage 1's
    warehouses, which only frozen layers use."""
    kwargs = _backbone_cfg(f'{KW}/{config}')
    # the official frozen_stages=1 (features[:4]) is mmdet's convention's 2
    assert kwargs['frozen_stages'] == 2 and kwargs['freeze_warehouses'] is False
    official = KWMobileNetV2(**kwargs)
    names = [n for n, _ in official.named_parameters()]
    expected = {n for n in names if not re.match(r'features\.[0-3]\.', n)}
    assert _trainable(official) == expected
    warehouses = {n for n in names if n.startswith('warehouse_manager.')}
    assert warehouses <= expected  # every warehouse trains, those of the stem and stage 1 too
    mmlk_rule = KWMobileNetV2(**dict(kwargs, freeze_warehouses=True))
    assert expected - _trainable(mmlk_rule) == {f'warehouse_manager.weights.{i}'
                                                for i in range(stage1_warehouses)}
    if kwargs['budget'] == '1x':  # the count of the official backbone
        assert (len(expected), len(_trainable(mmlk_rule))) == (314, 311)
    # the frozen kernels still change through the warehouses under the official rule
    official.eval()
    x = torch.randn(2, 3, 64, 64)
    sum(o.mean() for o in official(x)).backward()
    assert official.warehouse_manager.weights[0].grad.abs().sum() > 0
    assert official.features[0][0].attention.fc1.weight.grad is None


def test_resnet_detection_config_official_rule_and_mmlk_rule_agree():
    """KW-ResNet50 ``frozen_stages=1``: warehouse 0 also serves layer2.0 (hand-over), so both
    rules train the same set: conv1, bn1 and layer1 frozen, every warehouse trained."""
    kwargs = _backbone_cfg(f'{KW}/mask-rcnn_kw1x-resnet50_fpn_ms-crop-1x_coco.py')
    assert kwargs['freeze_warehouses'] is False
    kwargs['base_channels'] = 8
    official = _trainable(KWResNet(**kwargs))
    names = [n for n, _ in KWResNet(**kwargs).named_parameters()]
    assert official == {n for n in names if not n.startswith(('conv1.', 'bn1.', 'layer1.'))}
    assert _trainable(KWResNet(**dict(kwargs, freeze_warehouses=True))) == official


def test_freeze_warehouses_in_convnext():
    arch = dict(depths=[1, 1, 1, 1], dims=[8, 16, 32, 64])
    frozen = KWConvNeXt(arch, frozen_stages=1)
    official = KWConvNeXt(arch, frozen_stages=1, freeze_warehouses=False)
    assert all(w.requires_grad for w in official.warehouse_manager.weights)
    assert _trainable(official) - _trainable(frozen) == {
        f'warehouse_manager.weights.{i}' for i in (0, 4, 5)}  # stem, stage-0 dw and pw


# ------------------------------------------------------------------------------- C5 norm
def _classification_checkpoint(tmp_path, backbone: torch.nn.Module, num_classes=10):
    """An mmlk/mmpretrain ImageClassifier file: ``backbone.*`` (norm3 = the pooled norm, random
    here so a load is visible) and ``head.fc.*``."""
    state = {f'backbone.{k}': torch.randn_like(v) if v.is_floating_point() else v
             for k, v in backbone.state_dict().items()}
    width = backbone.out_channels[-1] if hasattr(backbone, 'out_channels') else 64
    state['head.fc.weight'] = torch.randn(num_classes, width)
    state['head.fc.bias'] = torch.randn(num_classes)
    path = tmp_path / 'classifier.pth'
    torch.save({'state_dict': state, 'meta': {}}, path)
    return str(path), state


def _check_c5_norm(dense, path, state, norm_prefix, expect_fresh=True):
    dense.init_weights()
    for name, value in dense.state_dict().items():
        loaded = state.get(f'backbone.{name}')
        if name.startswith(norm_prefix):
            if expect_fresh:
                fresh = (torch.ones_like(value) if name.endswith('weight')
                         else torch.zeros_like(value))
                torch.testing.assert_close(value, fresh, msg=name)
            else:
                torch.testing.assert_close(value, loaded, msg=name)
        elif loaded is not None and value.is_floating_point():
            torch.testing.assert_close(value, loaded, msg=name)


@pytest.mark.parametrize('config', [
    f'{KW}/mask-rcnn_kw1x-convnext-t_fpn_ms-crop-1x_coco.py',
    f'{KW}/upernet_kw1x-convnext-t_4xb4-160k_ade20k-512x512.py'])
def test_kw_convnext_dense_configs_start_c5_norm_as_the_official_backbone(tmp_path, config):
    torch.manual_seed(0)
    path, state = _classification_checkpoint(tmp_path, KWConvNeXt(TINY_ARCH))
    kwargs = _backbone_cfg(config)
    assert kwargs['gap_before_final_norm'] is False
    kwargs.update(arch=TINY_ARCH, init_cfg=dict(type='Pretrained', checkpoint=path,
                                                prefix='backbone.'))
    _check_c5_norm(KWConvNeXt(**kwargs), path, state, 'norm')
    # mmpretrain's convention on request: the pooled norm becomes C5's
    kwargs['init_cfg']['load_classification_norm'] = True
    dense = KWConvNeXt(**kwargs)
    dense.init_weights()
    torch.testing.assert_close(dense.norm3.weight, state['backbone.norm3.weight'])
    torch.testing.assert_close(dense.norm2.weight, torch.ones_like(dense.norm2.weight))


def test_slak_converted_and_official_files_give_the_same_c5_norm(tmp_path):
    """The official SLaK file (``norm.*`` + ``head.*``) and its mmlk conversion
    (``backbone.norm3.*`` + ``head.fc.*``) initialise the dense backbone identically."""
    torch.manual_seed(0)
    small = dict(arch=TINY_ARCH, kernel_size=(7, 7, 7, 5, 3))
    path, state = _classification_checkpoint(tmp_path, SLaK(**small))
    official = {k[len('backbone.'):].replace('norm3.', 'norm.'): v for k, v in state.items()
                if k.startswith('backbone.')}
    official['head.weight'], official['head.bias'] = state['head.fc.weight'], state['head.fc.bias']
    official_path = tmp_path / 'official.pth'
    torch.save({'model': official}, official_path)
    dense_from = {}
    for name, ckpt in (('converted', path), ('official', str(official_path))):
        dense = SLaK(**small, out_indices=(0, 1, 2, 3), gap_before_final_norm=False,
                     init_cfg=dict(type='Pretrained', checkpoint=ckpt, prefix='backbone.'))
        _check_c5_norm(dense, ckpt, state, 'norm')
        dense_from[name] = dense.state_dict()
    for key, value in dense_from['official'].items():
        assert torch.equal(value, dense_from['converted'][key]), key


def test_replknet_dense_backbone_accepts_a_converted_classifier(tmp_path):
    """31B-style downstream (no output norms): the classifier's ``stages.3.norm`` is dropped,
    not an error; XL-style (``norm_intermediate_features``): C5's BN starts fresh."""
    torch.manual_seed(0)
    arch = dict(large_kernel_sizes=[7, 7, 7, 5], layers=[1, 1, 1, 1], channels=[8, 16, 32, 64],
                small_kernel=3, dw_ratio=1)
    path, state = _classification_checkpoint(tmp_path, RepLKNet(arch, final_norm=True))
    plain = RepLKNet(arch, out_indices=(0, 1, 2, 3),
                     init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    _check_c5_norm(plain, path, state, 'stages.3.norm.')
    xl = RepLKNet(arch, out_indices=(0, 1, 2, 3), norm_intermediate_features=True,
                  init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    xl.init_weights()
    torch.testing.assert_close(xl.stages[3].norm.weight, torch.ones(64))
    torch.testing.assert_close(xl.stages[3].norm.running_var, torch.ones(64))


# ------------------------------------------------------------------- ImageNet recipes
RECIPES = [
    ('kw1x-mobilenetv2-100_8xb32_in1k.py', 'mobilenetv2_100', '1x', 0.1),
    ('kw4x-mobilenetv2-100_8xb32_in1k.py', 'mobilenetv2_100', '4x', 0.1),
    ('kw1d2x-mobilenetv2-100_8xb32_in1k.py', 'mobilenetv2_100', '1/2x', 0),
    ('kw1x-mobilenetv2-050_8xb32_in1k.py', 'mobilenetv2_050', '1x', 0),
    ('kw4x-mobilenetv2-050_8xb32_in1k.py', 'mobilenetv2_050', '4x', 0.1),
    ('kw1d2x-mobilenetv2-050_8xb32_in1k.py', 'mobilenetv2_050', '1/2x', 0),
    ('kw1x-convnext-t_32xb128_in1k.py', 'convnext_tiny', '1x', 0.1),
]


def _official_layout(model, budget, classifier):
    """An official training file's ``model`` dict for a released variant, built from the
    config's own classifier (names as in OSVAI/KernelWarehouse)."""
    state = {}
    for key, value in classifier.state_dict().items():
        if key.startswith('backbone.'):
            key = key[len('backbone.'):]
            if model == 'convnext_tiny':
                key = re.sub(r'^(stages\.\d+\.\d+)\.large_kernel\.', r'\1.dwconv.', key)
                key = key.replace('norm3.', 'norm.')
                if key.endswith('.gamma'):
                    value = value.reshape(1, -1, 1, 1)
        elif budget == '1/2x':
            key = key[len('head.'):].replace('fc.', 'classifier.1.', 1).replace(
                'warehouse_manager.weights.0', 'warehouse_manager.weights.9')
        else:
            key = key.replace('head.fc.', {'convnext_tiny': 'head.'}.get(model, 'classifier.'))
        state[key] = torch.randn_like(value) if value.is_floating_point() else value
    return state


@pytest.mark.parametrize('config,model,budget,smoothing', RECIPES, ids=[r[0] for r in RECIPES])
def test_imagenet_recipe_loads_the_converted_official_file(tmp_path, monkeypatch, config, model,
                                                           budget, smoothing):
    from mmpretrain.registry import MODELS
    from mmengine.utils import import_modules_from_strings
    cfg = Config.fromfile(f'{KW}/{config}')
    import_modules_from_strings(**cfg.custom_imports)  # as the Runner does
    init_default_scope('mmpretrain')
    classifier = MODELS.build(cfg.model)
    # the recipe as the JSON file says
    loss = cfg.model.head.loss
    assert loss.get('label_smooth_val', 0) == smoothing
    assert cfg.model.head.get('dropout', 0) == 0
    hooks = {h['type']: h for h in cfg.custom_hooks}
    assert hooks['mmlk.KWTemperatureHook']['epochs'] == (20 if model == 'convnext_tiny' else 15)
    if model == 'convnext_tiny':
        assert hooks['EMAHook']['momentum'] == 1e-4 and cfg.model.backbone.drop_path_rate == 0.3
    else:
        assert cfg.optim_wrapper.optimizer.type == 'SGD' and cfg.train_cfg.max_epochs == 150
        assert cfg.optim_wrapper.optimizer.nesterov and cfg.auto_scale_lr.base_batch_size == 256
    # the converted official file loads into the config's model, every tensor
    official = _official_layout(model, budget, classifier)
    src, dst = tmp_path / 'official.pth', tmp_path / 'converted.pth'
    torch.save({'model': official, 'epoch': 149}, src)
    monkeypatch.setattr(sys, 'argv', ['kw_to_mmlk.py', str(src), str(dst), '--model', model,
                                      '--budget', budget])
    runpy.run_path(osp.join(CONFIGS, '..', 'tools', 'model_converters', 'kw_to_mmlk.py'),
                   run_name='__main__')
    converted = torch.load(dst)['state_dict']
    classifier.load_state_dict(converted, strict=True)
    assert set(converted) == set(classifier.state_dict())


def test_kw_head_dropout_default_and_resnet18_quarter_count():
    from mmlk.models.heads import KWLinearClsHead
    assert isinstance(KWLinearClsHead(10, 64, cell_inplane_ratio=0.25).dropout, torch.nn.Identity)
    with torch.device('meta'):
        backbone = KWResNet(18, '1/4x')
    # the official code and mmlk build 4,031,768 (the official README table says 4.08M)
    assert sum(p.numel() for p in backbone.parameters()) + 512 * 1000 + 1000 == 4_031_768
