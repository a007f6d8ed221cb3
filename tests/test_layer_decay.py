import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from conftest import CONFIGS, tiny_model_overrides


def build(config: str, scope: str, paramwise_cfg=None, lr=1e-4):
    cfg = Config.fromfile(f'{CONFIGS}/{config}')
    tiny_model_overrides(cfg)
    init_default_scope(scope)
    registry = {
        'mmseg': 'mmseg.registry', 'mmdet': 'mmdet.registry', 'mmpretrain': 'mmpretrain.registry'
    }[scope]
    MODELS = __import__(registry, fromlist=['MODELS']).MODELS
    model = MODELS.build(cfg.model)
    wrapper_cfg = dict(type='OptimWrapper',
                       optimizer=dict(type='AdamW', lr=lr, weight_decay=0.05),
                       constructor='mmlk.LayerDecayOptimWrapperConstructor',
                       paramwise_cfg=paramwise_cfg or cfg.optim_wrapper.paramwise_cfg)
    wrapper = build_optim_wrapper(model, wrapper_cfg)
    by_name = {}
    for group in wrapper.optimizer.param_groups:
        for name in group['param_names']:
            by_name[name] = group
    return model, by_name


def test_stage_wise_scales_of_the_slak_t_ade20k_recipe():
    model, groups = build('upernet_slak_t_ade20k.py', 'mmseg')
    expected = {  # 0.9 ** (8 - id - 1), reference table for T 160k
        'backbone.downsample_layers.0.0.weight': 0.9**7,
        'backbone.downsample_layers.3.1.weight': 0.9**7,
        'backbone.stages.0.0.pwconv1.weight': 0.9**6,
        'backbone.stages.1.0.large_kernel.LoRA1.conv.weight': 0.9**5,
        'backbone.stages.2.0.gamma': 0.9**4,
        'backbone.stages.3.0.pwconv2.weight': 0.9**3,
        'backbone.norm2.weight': 1.0,
        'decode_head.conv_seg.weight': 1.0,
        'auxiliary_head.conv_seg.bias': 1.0,
    }
    for name, scale in expected.items():
        assert groups[name]['lr_scale'] == pytest.approx(scale), name
        assert groups[name]['lr'] == pytest.approx(1e-4 * scale), name
    # every trainable parameter is in exactly one group
    assert set(groups) == {n for n, p in model.named_parameters() if p.requires_grad}


def test_no_weight_decay_for_norms_biases_and_1d():
    _, groups = build('upernet_slak_t_ade20k.py', 'mmseg')
    assert groups['backbone.stages.0.0.pwconv1.weight']['weight_decay'] == 0.05
    assert groups['backbone.stages.0.0.large_kernel.LoRA1.conv.weight']['weight_decay'] == 0.05
    for name in ('backbone.stages.0.0.pwconv1.bias', 'backbone.stages.0.0.gamma',
                 'backbone.stages.0.0.norm.weight', 'backbone.norm0.bias',
                 'backbone.stages.0.0.large_kernel.LoRA1.bn.weight',
                 'decode_head.bottleneck.bn.weight'):
        assert groups[name]['weight_decay'] == 0, name


def test_layer_wise_scales_for_a_detector():
    _, groups = build('cascade_mask_rcnn_slak_t_coco.py', 'mmdet')
    # 0.7 ** (8 - id - 1) with ConvNeXt ids: downsample 1 -> 2, stage 2 block 0 -> 3
    assert groups['backbone.downsample_layers.1.1.weight']['lr_scale'] == pytest.approx(0.7**5)
    assert groups['backbone.stages.2.0.pwconv1.weight']['lr_scale'] == pytest.approx(0.7**4)
    assert groups['backbone.stages.3.0.pwconv1.weight']['lr_scale'] == pytest.approx(0.7**1)
    assert groups['neck.lateral_convs.0.conv.weight']['lr_scale'] == 1.0
    assert groups['roi_head.bbox_head.0.fc_cls.weight']['lr_scale'] == 1.0


def test_works_for_mmpretrain_classifier_and_custom_keys():
    _, groups = build('slak_t_in1k.py', 'mmpretrain', paramwise_cfg=dict(
        decay_rate=0.8, custom_keys={'large_kernel': dict(lr_mult=0.5, decay_mult=2.0)}))
    assert groups['backbone.stages.0.0.pwconv1.weight']['lr_scale'] == pytest.approx(0.8**6)
    lk = groups['backbone.stages.0.0.large_kernel.LoRA1.conv.weight']
    assert lk['lr_scale'] == pytest.approx(0.8**6 * 0.5) and lk['weight_decay'] == 0.1
    assert groups['head.fc.weight']['lr_scale'] == 1.0


def test_errors_are_explicit():
    with pytest.raises(ValueError, match='num_layers=12 does not match'):
        build('upernet_slak_t_ade20k.py', 'mmseg',
              dict(decay_rate=0.9, decay_type='stage_wise', num_layers=12))
    with pytest.raises(ValueError, match='decay_type'):
        build('upernet_slak_t_ade20k.py', 'mmseg', dict(decay_rate=0.9, decay_type='block'))
    with pytest.raises(ValueError, match='unknown paramwise_cfg keys'):
        build('upernet_slak_t_ade20k.py', 'mmseg', dict(decay_rte=0.9))


def test_backbone_without_layer_depth_is_refused():
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    model = torch.nn.Module()
    model.backbone = MODELS.build(dict(type='ResNet', depth=18))
    with pytest.raises(TypeError, match='get_layer_depth'):
        build_optim_wrapper(model, dict(
            optimizer=dict(type='SGD', lr=0.1),
            constructor='mmlk.LayerDecayOptimWrapperConstructor',
            paramwise_cfg=dict(decay_rate=0.9)))
