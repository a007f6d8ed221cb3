"""Small, learnable synthetic datasets written in the real on-disk formats.

No dataset can be downloaded here, yet every config must run end to end. These writers draw
scenes of objects whose class decides shape, colour and texture, on varied backgrounds, and
save them as ADE20K, PASCAL VOC 2007/2012, COCO instances or ImageNet folders, so the real
mmseg/mmdet/mmpretrain dataset classes and pipelines read them unchanged. Everything is
deterministic from the seed; nothing touches the global RNGs.
"""
import functools
import json
import os
import os.path as osp
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple
from xml.etree import ElementTree as ET

import cv2
import numpy as np

__all__ = [
    'DEMO_MARKER', 'SHAPES', 'render_scene', 'make_ade20k', 'make_voc', 'make_coco',
    'make_imagenet',
    'DEMO_ADE20K_CLASSES', 'DEMO_VOC_CLASSES', 'DEMO_COCO_CLASSES'
]


@dataclass(frozen=True)
class ObjectStyle:
    """How one synthetic class looks: polygon shape, base colour (BGR) and texture."""
    shape: str
    color: Tuple[int, int, int]
    texture: str


SHAPES = ('circle', 'square', 'triangle', 'diamond', 'hexagon', 'star', 'cross', 'ring')
_TEXTURES = ('plain', 'h_stripes', 'v_stripes', 'checker', 'dots', 'd_stripes', 'plain', 'checker')
_COLORS = ((40, 40, 220), (40, 200, 40), (220, 60, 40), (0, 200, 230), (200, 0, 200),
           (230, 200, 0), (30, 120, 250), (250, 250, 250))
STYLES = tuple(ObjectStyle(s, c, t) for s, c, t in zip(SHAPES, _COLORS, _TEXTURES))

# Dataset class indices (0-based, in each dataset's own class list) used for the styles above.
DEMO_ADE20K_CLASSES = (12, 20, 6, 8, 15, 19)     # person, car, road, windowpane, table, chair
ADE20K_BACKGROUND = 3                              # floor
DEMO_VOC_CLASSES = ('person', 'car', 'dog', 'bird', 'bottle', 'chair')
DEMO_COCO_CLASSES = ((1, 'person'), (2, 'bicycle'), (3, 'car'), (4, 'motorcycle'),
                     (5, 'airplane'), (6, 'bus'))


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    """Vertices (K, 2) of ``shape`` centred at (cx, cy) with radius r, rotated by angle."""
    if shape == 'circle':
        t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)], 1)
    elif shape == 'ring':  # a thick C-shape: a non-convex outline distinct from the circle
        t_out = np.linspace(0.5, 2 * np.pi - 0.5, 24)
        t_in = t_out[::-1]
        pts = np.concatenate([np.stack([np.cos(t_out), np.sin(t_out)], 1),
                              0.5 * np.stack([np.cos(t_in), np.sin(t_in)], 1)])
    elif shape == 'square':
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float) * 0.8
    elif shape == 'triangle':
        t = np.array([-np.pi / 2, np.pi / 6, 5 * np.pi / 6])
        pts = np.stack([np.cos(t), np.sin(t)], 1)
    elif shape == 'diamond':
        pts = np.array([[0, -1], [0.6, 0], [0, 1], [-0.6, 0]], float)
    elif shape == 'hexagon':
        t = np.arange(6) * np.pi / 3
        pts = np.stack([np.cos(t), np.sin(t)], 1)
    elif shape == 'star':
        t = np.arange(10) * np.pi / 5 - np.pi / 2
        rad = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        pts = np.stack([rad * np.cos(t), rad * np.sin(t)], 1)
    elif shape == 'cross':
        a, b = 1.0, 0.33
        pts = np.array([[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a], [-b, a],
                        [-b, b], [-a, b], [-a, -b], [-b, -b]], float)
    else:
        raise ValueError(f'unknown shape {shape!r}; known: {SHAPES}')
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return pts @ rot.T * r + np.array([cx, cy])


def _texture(style: ObjectStyle, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    color = np.clip(np.array(style.color, float) + rng.normal(0, 12, 3), 0, 255)
    img = np.ones((h, w, 3)) * color
    yy, xx = np.mgrid[0:h, 0:w]
    period = 6
    if style.texture == 'h_stripes':
        pattern = (yy // (period // 2)) % 2
    elif style.texture == 'v_stripes':
        pattern = (xx // (period // 2)) % 2
    elif style.texture == 'd_stripes':
        pattern = ((xx + yy) // (period // 2)) % 2
    elif style.texture == 'checker':
        pattern = ((xx // period) + (yy // period)) % 2
    elif style.texture == 'dots':
        pattern = ((xx % period < 2) & (yy % period < 2)).astype(int)
    else:
        pattern = np.zeros((h, w), int)
    img = img * (1 - 0.45 * pattern[..., None])
    return img


def _background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth random colour gradient with noise and a few faint distractor blobs."""
    corners = rng.uniform(60, 200, (2, 2, 3))
    ys, xs = np.linspace(0, 1, h)[:, None, None], np.linspace(0, 1, w)[None, :, None]
    img = (corners[0, 0] * (1 - ys) * (1 - xs) + corners[0, 1] * (1 - ys) * xs +
           corners[1, 0] * ys * (1 - xs) + corners[1, 1] * ys * xs)
    img = img + rng.normal(0, 8, (h, w, 3))
    for _ in range(int(rng.integers(0, 4))):
        center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(3, max(4, w // 6))), int(rng.integers(3, max(4, h // 6))))
        blob = tuple(float(c) for c in rng.uniform(60, 200, 3))
        cv2.ellipse(img, center, axes, float(rng.uniform(0, 180)), 0, 360, blob, -1)
    return img


@dataclass
class SceneObject:
    label: int                 # index into the styles
    polygon: np.ndarray        # (K, 2) float vertices, image coordinates
    bbox: Tuple[float, float, float, float]   # x1, y1, x2, y2 of the visible part
    area: int                  # visible pixels


def render_scene(rng: np.random.Generator, height: int, width: int, labels: Sequence[int],
                 min_radius: float = 0.12, max_radius: float = 0.28
                 ) -> Tuple[np.ndarray, np.ndarray, List[SceneObject]]:
    """Draw objects of the given style indices on a random background.

    Returns ``(image uint8 HxWx3 BGR, label map int HxW with -1 for background, objects)``.
    Later objects occlude earlier ones; each object's bbox and area describe what stays visible.
    """
    img = _background(height, width, rng)
    label_map = np.full((height, width), -1, np.int32)
    instance_map = np.full((height, width), -1, np.int32)
    polygons = []
    side = min(height, width)
    for index, label in enumerate(labels):
        style = STYLES[label]
        r = rng.uniform(min_radius, max_radius) * side
        cx, cy = rng.uniform(r * 0.8, width - r * 0.8), rng.uniform(r * 0.8, height - r * 0.8)
        poly = _polygon(style.shape, cx, cy, r, rng.uniform(0, 2 * np.pi))
        mask = np.zeros((height, width), np.uint8)
        cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
        tex = _texture(style, height, width, rng)
        img[mask > 0] = tex[mask > 0]
        label_map[mask > 0] = label
        instance_map[mask > 0] = index
        polygons.append(poly)
    objects = []
    for index, (label, poly) in enumerate(zip(labels, polygons)):
        ys, xs = np.nonzero(instance_map == index)
        if len(xs) < 16:  # fully (or almost) hidden: not annotated
            continue
        bbox = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        objects.append(SceneObject(int(label), poly, bbox, int(len(xs))))
    image = np.clip(img, 0, 255).astype(np.uint8)
    return image, label_map, objects


def _rng(seed: int, *salt: int) -> np.random.Generator:
    return np.random.default_rng([seed, *salt])


DEMO_MARKER = '.mmlk-demo-data'
"""The file every demo dataset root carries: only such a root may be written over."""


def _demo_root(writer: Callable[..., str]) -> Callable[..., str]:
    """Guard a dataset writer: it writes only into a missing or empty folder or an earlier
    demo dataset (one with :data:`DEMO_MARKER`), unless ``force=True``, and marks its root.
    ``data/`` is OpenMMLab's standard dataset root: writing the demo into a real
    ``data/VOCdevkit`` or ``data/coco`` would replace the user's annotation files."""
    @functools.wraps(writer)
    def guarded(root: str, *args, force: bool = False, **kwargs) -> str:
        if osp.isdir(root) and os.listdir(root) and not osp.isfile(osp.join(root, DEMO_MARKER)) \
                and not force:
            raise FileExistsError(
                f'{root} already holds files that are not mmlk demo data (no {DEMO_MARKER} '
                'file): writing the demo dataset there would overwrite them (a real dataset?). '
                'Choose another --out (e.g. data/demo), or pass --force to write anyway.')
        out = writer(root, *args, **kwargs)
        with open(osp.join(root, DEMO_MARKER), 'w') as f:
            f.write(f'written by mmlk {writer.__name__}\n')
        return out
    return guarded


def _scene_labels(rng: np.random.Generator, num_classes: int, max_objects: int) -> List[int]:
    return [int(v) for v in rng.integers(0, num_classes, int(rng.integers(1, max_objects + 1)))]


# ---------------------------------------------------------------------------------------- ADE20K
@_demo_root
def make_ade20k(root: str, num_train: int = 80, num_val: int = 20, size: int = 128,
                seed: int = 0) -> str:
    """ADE20K layout (``images/{training,validation}/*.jpg``, ``annotations/.../*.png``).

    PNG values follow ADE20K: 0 is "other" (ignored with ``reduce_zero_label=True``) and
    ``k + 1`` is class ``k`` of the 150; the background is class ``floor`` and objects use
    :data:`DEMO_ADE20K_CLASSES`. Returns ``root``.
    """
    for split, count, salt in (('training', num_train, 0), ('validation', num_val, 1)):
        img_dir, ann_dir = osp.join(root, 'images', split), osp.join(root, 'annotations', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(count):
            rng = _rng(seed, 1, salt, i)
            labels = _scene_labels(rng, len(DEMO_ADE20K_CLASSES), 4)
            image, label_map, _ = render_scene(rng, size, size, labels)
            ann = np.full(label_map.shape, ADE20K_BACKGROUND + 1, np.uint8)
            for k, cls in enumerate(DEMO_ADE20K_CLASSES):
                ann[label_map == k] = cls + 1
            name = f'ADE_{split[:5]}_{i:08d}'
            cv2.imwrite(osp.join(img_dir, name + '.jpg'), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(osp.join(ann_dir, name + '.png'), ann)
    return root


# ---------------------------------------------------------------------------------------- VOC
def _voc_xml(filename: str, width: int, height: int, objects: List[SceneObject]) -> ET.Element:
    root = ET.Element('annotation')
    ET.SubElement(root, 'folder').text = 'VOC'
    ET.SubElement(root, 'filename').text = filename
    size = ET.SubElement(root, 'size')
    for tag, value in (('width', width), ('height', height), ('depth', 3)):
        ET.SubElement(size, tag).text = str(value)
    for obj in objects:
        node = ET.SubElement(root, 'object')
        ET.SubElement(node, 'name').text = DEMO_VOC_CLASSES[obj.label]
        ET.SubElement(node, 'pose').text = 'Unspecified'
        ET.SubElement(node, 'truncated').text = '0'
        ET.SubElement(node, 'difficult').text = '0'
        box = ET.SubElement(node, 'bndbox')
        # VOC boxes are 1-based inclusive pixel coordinates.
        x1, y1, x2, y2 = obj.bbox
        for tag, value in (('xmin', x1 + 1), ('ymin', y1 + 1), ('xmax', x2), ('ymax', y2)):
            ET.SubElement(box, tag).text = str(int(value))
    return root


@_demo_root
def make_voc(root: str, num_train: int = 80, num_test: int = 20, width: int = 160,
             height: int = 128, seed: int = 0) -> str:
    """PASCAL VOC layout under ``root`` (= the ``VOCdevkit`` folder): VOC2007 with
    ``trainval``/``test`` splits and VOC2012 with ``trainval``, so VOC 07+12 configs run as-is.
    Classes are :data:`DEMO_VOC_CLASSES`. Returns ``root``."""
    splits = (('VOC2007', 'trainval', num_train, 0), ('VOC2007', 'test', num_test, 1),
              ('VOC2012', 'trainval', max(1, num_train // 2), 2))
    for year, split, count, salt in splits:
        base = osp.join(root, year)
        for sub in ('Annotations', 'JPEGImages', 'ImageSets/Main'):
            os.makedirs(osp.join(base, sub), exist_ok=True)
        ids = []
        for i in range(count):
            rng = _rng(seed, 2, salt, i)
            image, _, objects = render_scene(rng, height, width,
                                             _scene_labels(rng, len(DEMO_VOC_CLASSES), 3))
            image_id = f'{year[3:]}_{salt}{i:05d}'
            cv2.imwrite(osp.join(base, 'JPEGImages', image_id + '.jpg'), image)
            ET.ElementTree(_voc_xml(image_id + '.jpg', width, height, objects)).write(
                osp.join(base, 'Annotations', image_id + '.xml'))
            ids.append(image_id)
        with open(osp.join(base, 'ImageSets', 'Main', split + '.txt'), 'w') as f:
            f.write('\n'.join(ids) + '\n')
    return root


# ---------------------------------------------------------------------------------------- COCO
@_demo_root
def make_coco(root: str, num_train: int = 80, num_val: int = 20, width: int = 160,
              height: int = 128, seed: int = 0) -> str:
    """COCO instances layout (``annotations/instances_{train,val}2017.json``,
    ``{train,val}2017/*.jpg``) with boxes and polygon masks; categories keep their real COCO
    ids (:data:`DEMO_COCO_CLASSES`). Returns ``root``."""
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    categories = [dict(id=cid, name=name, supercategory='demo') for cid, name in DEMO_COCO_CLASSES]
    for split, count, salt in (('train2017', num_train, 0), ('val2017', num_val, 1)):
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            rng = _rng(seed, 3, salt, i)
            image, _, objects = render_scene(rng, height, width,
                                             _scene_labels(rng, len(DEMO_COCO_CLASSES), 3))
            image_id = salt * 1_000_000 + i + 1
            file_name = f'{image_id:012d}.jpg'
            cv2.imwrite(osp.join(root, split, file_name), image)
            images.append(dict(id=image_id, file_name=file_name, width=width, height=height))
            for obj in objects:
                x1, y1, x2, y2 = obj.bbox
                poly = np.clip(obj.polygon, 0, [width, height]).reshape(-1)
                annotations.append(dict(
                    id=len(annotations) + 1 + salt * 10_000_000, image_id=image_id,
                    category_id=DEMO_COCO_CLASSES[obj.label][0], iscrowd=0, area=obj.area,
                    bbox=[x1, y1, x2 - x1, y2 - y1],
                    segmentation=[[round(float(v), 2) for v in poly]]))
        with open(osp.join(root, 'annotations', f'instances_{split}.json'), 'w') as f:
            json.dump(dict(images=images, annotations=annotations, categories=categories), f)
    return root


# ---------------------------------------------------------------------------------------- ImageNet
@_demo_root
def make_imagenet(root: str, num_classes: int = len(STYLES), per_class_train: int = 12,
                  per_class_val: int = 4, size: int = 64, seed: int = 0) -> str:
    """ImageNet layout for mmpretrain: ``{train,val}/<wnid>/*.JPEG`` plus
    ``meta/{train,val}.txt`` (``relative/path label`` lines). Class ``k`` is the k-th synthetic
    style (one dominant object per image) and the k-th ImageNet class. Returns ``root``."""
    if not 1 <= num_classes <= len(STYLES):
        raise ValueError(f'num_classes must be in [1, {len(STYLES)}], got {num_classes}')
    os.makedirs(osp.join(root, 'meta'), exist_ok=True)
    for split, per_class, salt in (('train', per_class_train, 0), ('val', per_class_val, 1)):
        lines = []
        for label in range(num_classes):
            folder = f'n{label:08d}'
            os.makedirs(osp.join(root, split, folder), exist_ok=True)
            for i in range(per_class):
                rng = _rng(seed, 4, salt, label, i)
                image, _, _ = render_scene(rng, size, size, [label], 0.25, 0.4)
                rel = f'{folder}/{split}_{label}_{i:04d}.JPEG'
                cv2.imwrite(osp.join(root, split, rel), image)
                lines.append(f'{rel} {label}')
        with open(osp.join(root, 'meta', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return root


DEMO_WRITERS: Dict[str, callable] = dict(
    ade20k=make_ade20k, voc=make_voc, coco=make_coco, imagenet=make_imagenet)
# Where each writer puts its data below the demo root; the demo configs read from there.
DEMO_SUBDIRS = dict(ade20k='ade/ADEChallengeData2016', voc='VOCdevkit', coco='coco',
                    imagenet='imagenet')
