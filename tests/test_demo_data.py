import hashlib
import os
import os.path as osp

import numpy as np
from mmengine.registry import init_default_scope

from mmlk.utils.synthetic_datasets import make_ade20k, render_scene


def digest(root):
    h = hashlib.sha1()
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            h.update(name.encode())
            h.update(open(osp.join(dirpath, name), 'rb').read())
    return h.hexdigest()


def test_deterministic_from_seed(tmp_path):
    a = make_ade20k(str(tmp_path / 'a'), num_train=3, num_val=1, size=32, seed=5)
    b = make_ade20k(str(tmp_path / 'b'), num_train=3, num_val=1, size=32, seed=5)
    c = make_ade20k(str(tmp_path / 'c'), num_train=3, num_val=1, size=32, seed=6)
    assert digest(a) == digest(b) != digest(c)


def test_classes_differ_in_colour():
    rng = np.random.default_rng(0)
    means = []
    for label in range(6):
        image, labels, objects = render_scene(rng, 64, 64, [label], 0.3, 0.35)
        assert objects and objects[0].label == label
        means.append(image[labels == label].reshape(-1, 3).mean(0))
    distances = [np.linalg.norm(means[i] - means[j]) for i in range(6) for j in range(i)]
    assert min(distances) > 30


def test_ade20k_through_mmseg(demo_data):
    from mmseg.datasets import ADE20KDataset
    init_default_scope('mmseg')
    ds = ADE20KDataset(data_root=demo_data['ade20k'],
                       data_prefix=dict(img_path='images/training',
                                        seg_map_path='annotations/training'),
                       pipeline=[dict(type='LoadImageFromFile'),
                                 dict(type='LoadAnnotations', reduce_zero_label=True)])
    assert len(ds) == 8
    seg = ds[0]['gt_seg_map']
    assert seg.shape == (64, 64)
    values = set(np.unique(seg).tolist())
    assert 3 in values and values <= {3, 12, 20, 6, 8, 15, 19, 255}  # floor + objects


def test_voc_through_mmdet(demo_data):
    from mmdet.datasets import VOCDataset
    init_default_scope('mmdet')
    ds = VOCDataset(data_root=demo_data['voc'], ann_file='VOC2007/ImageSets/Main/test.txt',
                    data_prefix=dict(sub_data_root='VOC2007/'),
                    pipeline=[dict(type='LoadImageFromFile'),
                              dict(type='LoadAnnotations', with_bbox=True)])
    assert len(ds) == 3
    item = ds[0]
    assert item['img'].shape == (128, 160, 3)
    assert len(item['gt_bboxes']) >= 1 and item['gt_bboxes_labels'].max() < 20


def test_coco_through_mmdet_with_masks(demo_data):
    from mmdet.datasets import CocoDataset
    init_default_scope('mmdet')
    ds = CocoDataset(data_root=demo_data['coco'], ann_file='annotations/instances_train2017.json',
                     data_prefix=dict(img='train2017/'),
                     pipeline=[dict(type='LoadImageFromFile'),
                               dict(type='LoadAnnotations', with_bbox=True, with_mask=True)])
    assert len(ds) == 6
    item = ds[0]
    masks = item['gt_masks'].to_ndarray()
    assert masks.shape[0] == len(item['gt_bboxes']) > 0
    box = item['gt_bboxes'].tensor[0].numpy()
    ys, xs = np.nonzero(masks[0])
    assert abs(xs.min() - box[0]) <= 2 and abs(ys.max() + 1 - box[3]) <= 2


def test_imagenet_through_mmpretrain(demo_data):
    from mmpretrain.datasets import ImageNet
    init_default_scope('mmpretrain')
    ds = ImageNet(data_root=demo_data['imagenet'], split='val',
                  pipeline=[dict(type='LoadImageFromFile')])
    assert len(ds) == 8
    assert sorted({ds.get_gt_labels()[i] for i in range(8)}) == [0, 1, 2, 3]


def test_demo_ade20k_class_names_are_mmseg_s():
    """The comment beside DEMO_ADE20K_CLASSES names the classes as mmseg's ADE20K list does."""
    import inspect

    from mmseg.datasets import ADE20KDataset

    from mmlk.utils import synthetic_datasets as demo_data
    line = next(line for line in inspect.getsource(demo_data).splitlines()
                if line.startswith('DEMO_ADE20K_CLASSES ='))
    named = [name.strip() for name in line.split('#', 1)[1].split(',')]
    classes = ADE20KDataset.METAINFO['classes']
    assert named == [classes[i] for i in demo_data.DEMO_ADE20K_CLASSES]
    assert classes[15] == 'table'
