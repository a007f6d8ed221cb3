"""Every shipped config builds its model and runs one train_step on CPU at a reduced size."""
import glob
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.utils import import_modules_from_strings

from conftest import CONFIGS, det_batch, tiny_model_overrides

ALL_CONFIGS = sorted(
    osp.relpath(p, CONFIGS) for p in glob.glob(f'{CONFIGS}/**/*.py', recursive=True)
    if '_base_' not in p)


def alias_target(config: str):
    """The config a flat entry point (comments + one ``_base_``) stands for, else None."""
    lines = [line for line in open(osp.join(CONFIGS, config)).read().splitlines()
             if line.strip() and not line.startswith('#')]
    if len(lines) == 1 and lines[0].startswith('_base_ = ['):
        return osp.normpath(osp.join(osp.dirname(config), lines[0].split("'")[1]))
    return None


ALIASES = [c for c in ALL_CONFIGS if alias_target(c)]
TRAINED_CONFIGS = [c for c in ALL_CONFIGS if not alias_target(c)]


def test_config_inventory():
    for required in ('upernet_slak_t_ade20k.py', 'upernet_slak_s_ade20k.py',
                     'upernet_slak_b_ade20k.py', 'faster_rcnn_slak_t_voc0712.py',
                     'cascade_mask_rcnn_slak_t_coco.py', 'mask_rcnn_slak_t_coco.py',
                     'slak_t_in1k.py', 'upernet_replknet_31b_ade20k.py',
                     'upernet_replknet_31l_ade20k.py', 'upernet_replknet_xl_ade20k.py',
                     'cascade_mask_rcnn_replknet_31b_coco.py',
                     'faster_rcnn_replknet_31b_voc0712.py',
                     'replknet_31b_in1k.py', 'replknet_31b_in1k_deploy.py',
                     'upernet_sw_t_ade20k.py', 'cascade_mask_rcnn_sw_t_coco.py',
                     'faster_rcnn_sw_t_voc0712.py', 'sw_t_in1k.py', 'shiftwise_convnext_t_in1k.py',
                     'upernet_shiftwise_convnext_t_ade20k.py', 'mask_rcnn_kw1x_resnet50_coco.py',
                     'mask_rcnn_kw4x_resnet50_coco.py', 'mask_rcnn_kw1x_mobilenetv2_coco.py',
                     'mask_rcnn_kw1x_convnext_t_coco.py', 'upernet_kw1x_convnext_t_ade20k.py',
                     'faster_rcnn_kw1x_resnet50_voc0712.py', 'kw1x_resnet18_in1k.py',
                     'kw1x_resnet50_in1k.py'):
        assert required in ALL_CONFIGS


def seg_batch(size=64):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(2):
        sample = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                             pad_shape=(size, size)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, size, size), generator=g))
        samples.append(sample)
    return dict(inputs=[torch.randint(0, 255, (3, size, size), dtype=torch.uint8)
                        for _ in range(2)], data_samples=samples)


def cls_batch(num_classes: int):
    from mmpretrain.structures import DataSample
    return dict(inputs=[torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8) for _ in range(2)],
                data_samples=[DataSample().set_gt_label(3 % num_classes),
                              DataSample().set_gt_label(7 % num_classes)])


@pytest.mark.parametrize('config', ALIASES)
def test_entry_point_equals_its_target(config):
    target = alias_target(config)
    assert target in TRAINED_CONFIGS, f'{config} points at {target}, which does not exist'
    alias = Config.fromfile(osp.join(CONFIGS, config)).to_dict()
    assert alias == Config.fromfile(osp.join(CONFIGS, target)).to_dict()


@pytest.mark.parametrize('config', TRAINED_CONFIGS)
def test_config_builds_and_trains_one_step(config):
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    scope = cfg.default_scope
    if cfg.get('custom_imports'):  # as the Runner does
        import_modules_from_strings(**cfg.custom_imports)
    dims = tiny_model_overrides(cfg)
    init_default_scope(scope)
    if scope == 'mmseg':
        from mmseg.registry import MODELS
        cfg.model.data_preprocessor.size = (64, 64)
        batch = seg_batch()
    elif scope == 'mmdet':
        from mmdet.registry import MODELS
        roi = cfg.model.roi_head
        bbox_head = roi.bbox_head[0] if isinstance(roi.bbox_head, list) else roi.bbox_head
        batch = det_batch('mask_head' in roi, bbox_head.num_classes)
    else:
        assert scope == 'mmpretrain', scope
        from mmpretrain.registry import MODELS
        # as Runner.from_cfg does: mmpretrain configs keep the preprocessor at top level
        cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
        batch = cls_batch(cfg.model.head.num_classes)
    assert cfg.model.backbone.type in ('mmlk.SLaK', 'mmlk.RepLKNet', 'mmlk.ShiftWiseConvNeXt',
                                       'mmlk.ShiftWiseNet', 'mmlk.KWResNet', 'mmlk.KWMobileNetV2',
                                       'mmlk.KWConvNeXt')
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert model.backbone.out_channels[-1] == dims[-1]
    # The config's own optimiser and constructor, in fp32 (AmpOptimWrapper needs a GPU).
    wrapper_cfg = cfg.optim_wrapper.copy()
    wrapper_cfg.type = 'OptimWrapper'
    wrapper_cfg.pop('loss_scale', None)
    wrapper = build_optim_wrapper(model, wrapper_cfg)
    model.train()
    losses = model.train_step(batch, wrapper)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert math.isfinite(float(total)) and float(total) > 0
    model.eval()
    with torch.no_grad():
        outputs = model.val_step(batch)
    assert len(outputs) == 2
