"""The memory layout stays inside the backbone: what mmdet/mmseg/mmcv receive is NCHW.

The large-kernel layers compute in channels-last memory. mmcv's compiled ops read
``data_ptr`` as NCHW without looking at the strides, so a channels-last feature map that
leaks out of a backbone is pooled as scrambled features by ``RoIAlign`` (no error) and refused
by ``DeformConv2d``. These tests check every family's outputs and compare the RoI features of
detectors built from our configs with ``torchvision.ops.roi_align``, which honours strides.
"""
import os.path as osp

import pytest
import torch
import torchvision
from mmengine.config import Config
from mmengine.registry import init_default_scope

from conftest import CONFIGS, det_batch, tiny_model_overrides

# One config per backbone family (dense outputs: detection or segmentation).
FAMILY_CONFIGS = {
    'SLaK': 'slak/faster-rcnn_slak-t_fpn_ms-3x_voc0712.py',
    'RepLKNet': 'replknet/faster-rcnn_replknet-31b_fpn_ms-3x_voc0712.py',
    'ShiftWiseNet': 'shiftwise/faster-rcnn_sw-t_fpn_ms-3x_voc0712.py',
    'ShiftWiseConvNeXt': 'shiftwise/upernet_shiftwise-convnext-t_4xb4-160k_ade20k-512x512.py',
    'KWResNet': 'kernelwarehouse/faster-rcnn_kw1x-resnet50_fpn_ms-3x_voc0712.py',
    'KWMobileNetV2': 'kernelwarehouse/mask-rcnn_kw1x-mobilenetv2-100_fpn_ms-crop-1x_coco.py',
    'KWConvNeXt': 'kernelwarehouse/mask-rcnn_kw1x-convnext-t_fpn_ms-crop-1x_coco.py',
}


def tiny_config(config: str) -> Config:
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    tiny_model_overrides(cfg)
    return cfg


def build_backbone(config: str):
    from mmlk.registry import MODELS
    backbone = MODELS.build(tiny_config(config).model.backbone)
    backbone.init_weights()
    return backbone


@pytest.mark.parametrize('mode', ['train', 'eval', 'deploy'])
@pytest.mark.parametrize('family', sorted(FAMILY_CONFIGS))
def test_every_backbone_returns_nchw_contiguous_maps(family, mode):
    torch.manual_seed(0)
    backbone = build_backbone(FAMILY_CONFIGS[family])
    assert type(backbone).__name__ == family
    backbone.train(mode == 'train')
    if mode == 'deploy':
        backbone.switch_to_deploy()
    x = torch.randn(2, 3, 96, 96)
    with torch.set_grad_enabled(mode == 'train'):
        outs = backbone(x)
    assert len(outs) == len(backbone.out_indices) >= 3
    for out in outs:
        # C > 1 and H * W > 1, so NCHW and channels-last strides differ
        assert out.dim() == 4 and out.shape[1] > 1 and out.shape[2] * out.shape[3] > 1
        assert out.is_contiguous(), (family, mode, out.shape, out.stride())
    if mode == 'train':
        sum(o.sum() for o in outs).backward()  # the copy is differentiable


def test_channels_last_input_gives_nchw_outputs_too():
    backbone = build_backbone(FAMILY_CONFIGS['SLaK']).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = backbone(x)
        outs = backbone(x.contiguous(memory_format=torch.channels_last))
    for a, b in zip(ref, outs):
        assert b.is_contiguous()
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------- detectors
DETECTOR_CONFIGS = [
    'slak/faster-rcnn_slak-t_fpn_ms-3x_voc0712.py',
    'slak/mask-rcnn_slak-t_fpn_1x_coco.py',
    'replknet/faster-rcnn_replknet-31b_fpn_ms-3x_voc0712.py',
    'shiftwise/cascade-mask-rcnn_sw-t_fpn_4conv1fc-giou_ms-crop-3x_coco.py',
]


def build_detector(config: str):
    cfg = tiny_config(config)
    init_default_scope('mmdet')
    from mmdet.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


def rois_on_every_level(batch_size: int) -> torch.Tensor:
    """Boxes whose sizes map to each FPN level (mmdet's finest_scale 56: sqrt(area) of about
    30, 120, 250 and 500 px), centred at several points of each image, some reaching out of
    it; fractional coordinates so bilinear sampling is exercised."""
    rois = []
    g = torch.Generator().manual_seed(0)
    for image in range(batch_size):
        for size in (30., 120., 250., 500.):
            for _ in range(3):
                cx, cy = (torch.rand(2, generator=g) * 60 + 2).tolist()
                w = size * (0.8 + 0.4 * float(torch.rand(1, generator=g)))
                h = size * size / w
                rois.append([image, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    return torch.tensor(rois)


def reference_roi_features(extractor, feats, rois) -> torch.Tensor:
    """The extractor's output computed with torchvision's stride-aware roi_align."""
    num_levels = len(extractor.featmap_strides)
    levels = extractor.map_roi_levels(rois, num_levels)
    out = torch.zeros(rois.shape[0], feats[0].shape[1], *extractor.roi_layers[0].output_size)
    for level in range(num_levels):
        index = levels == level
        if not index.any():
            continue
        layer = extractor.roi_layers[level]
        assert layer.pool_mode == 'avg'
        out[index] = torchvision.ops.roi_align(
            feats[level], rois[index], output_size=layer.output_size,
            spatial_scale=layer.spatial_scale, sampling_ratio=layer.sampling_ratio,
            aligned=layer.aligned)
    assert len(set(levels.tolist())) == num_levels  # every level was compared
    return out


def first_stage(module):
    """A cascade head's first stage, or the head itself."""
    return module[0] if isinstance(module, torch.nn.ModuleList) else module


def extractors(roi_head):
    """(name, extractor) for the bbox and mask RoI extractors, cascade stages included."""
    found = []
    for name in ('bbox_roi_extractor', 'mask_roi_extractor'):
        module = getattr(roi_head, name, None)
        if module is None:
            continue
        stages = module if isinstance(module, torch.nn.ModuleList) else [module]
        found += [(f'{name}[{i}]', m) for i, m in enumerate(stages)]
    return found


@pytest.mark.parametrize('config', DETECTOR_CONFIGS)
def test_detector_roi_features_equal_torchvision_roi_align(config):
    model = build_detector(config)
    roi = model.roi_head
    with_mask = 'mask' in osp.basename(config)
    assert with_mask == bool(getattr(roi, 'with_mask', False))
    bbox_head = first_stage(roi.bbox_head)
    data = model.data_preprocessor(det_batch(with_mask, bbox_head.num_classes), False)
    inputs = data['inputs']
    with torch.no_grad():
        stages = model.backbone.forward_stages(inputs)
        if 'slak' in config or 'replknet' in config:
            # The seam is real: these backbones compute in channels-last memory.
            assert not all(s.is_contiguous() for s in stages)
        feats = model.extract_feat(inputs)
        assert all(f.is_contiguous() for f in feats)
        rois = rois_on_every_level(inputs.shape[0])
        checked = extractors(roi)
        assert len(checked) >= (2 if with_mask else 1)
        for name, extractor in checked:
            ours = extractor(feats[:extractor.num_inputs], rois)
            ref = reference_roi_features(extractor, feats[:extractor.num_inputs], rois)
            assert ours.abs().max() > 0, name
            torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize('config', DETECTOR_CONFIGS[:2])
def test_detector_predictions_equal_those_of_contiguous_backbone_outputs(config, monkeypatch):
    model = build_detector(config)
    roi = model.roi_head
    bbox_head = first_stage(roi.bbox_head)
    with_mask = 'mask' in osp.basename(config)
    batch = det_batch(with_mask, bbox_head.num_classes)
    model.test_cfg.rcnn.score_thr = 0.0  # random weights: keep every box to compare
    with torch.no_grad():
        ours = model.test_step(batch)
        backbone = model.backbone
        # the layout-independent reference: copy whatever the stages return to NCHW here
        monkeypatch.setattr(backbone, 'forward', lambda x: tuple(
            o.contiguous(memory_format=torch.contiguous_format)
            for o in type(backbone).forward_stages(backbone, x)))
        ref = model.test_step(batch)
    for a, b in zip(ours, ref):
        pa, pb = a.pred_instances, b.pred_instances
        assert len(pa) == len(pb) > 0
        torch.testing.assert_close(pa.bboxes, pb.bboxes, rtol=0, atol=1e-4)
        torch.testing.assert_close(pa.scores, pb.scores, rtol=0, atol=1e-6)
        assert torch.equal(pa.labels, pb.labels)
        if with_mask:
            assert torch.equal(pa.masks, pb.masks)


# ---------------------------------------------------------------------- the mmcv ops audit
def test_audit_mmcv_ops_misread_channels_last_maps():
    """What docs/layout.md states about mmcv 2.1.0's compiled ops, on a channels-last map."""
    from mmcv.ops import DeformConv2dPack, RoIAlign
    torch.manual_seed(0)
    x = torch.randn(2, 16, 12, 12)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    rois = torch.tensor([[0, 1., 1., 9., 10.], [1, 0.5, 2., 11., 7.]])
    align = RoIAlign(7, spatial_scale=1., sampling_ratio=0, aligned=True)
    ref = torchvision.ops.roi_align(x, rois, 7, 1., 0, True)
    torch.testing.assert_close(align(x, rois), ref, rtol=1e-5, atol=1e-5)
    # RoIAlign reads the channels-last storage as NCHW: wrong values, no error
    assert (align(x_cl, rois) - ref).abs().max() > 0.1
    deform = DeformConv2dPack(16, 8, 3, padding=1)
    deform(x)
    with pytest.raises(Exception, match='contiguous'):
        deform(x_cl)
