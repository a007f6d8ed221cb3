"""Datasets that are missing or bad are named: the paths a config expects, per-sample error
reports and a whole-dataset scan.

A config whose data is not where it says stops with :class:`DatasetNotFoundError` naming the
path and how to get the data (:func:`check_dataset_paths`).

mmengine datasets run their pipeline with no idea of which file failed: a zero-byte JPEG dies
as ``cv2.error ... !buf.empty()``, a label PNG with values beyond the classes as ``IndexError:
Target 199 is out of bounds`` inside the loss, both without a path. mmlk's tools install
:func:`install_sample_error_reports`, and ``tools/check_dataset.py`` scans a config's datasets
once with :func:`scan_dataset`.
"""
import json
import os.path as osp
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
from mmengine.config import Config, ConfigDict

from .synthetic_datasets import DEMO_SUBDIRS

__all__ = ['DataSampleError', 'DatasetNotFoundError', 'DatasetReport',
           'build_dataset_with_reports', 'check_dataset_paths',
           'install_sample_error_reports', 'leaf_datasets', 'sample_files', 'scan_dataset']

# mmseg's ignore label (decode heads' ignore_index, reduce_zero_label's target for class 0).
SEG_IGNORE_INDEX = 255


class DataSampleError(ValueError):
    """A data sample cannot be used; the message names its files and what is wrong."""


def sample_files(data_info: dict) -> Dict[str, str]:
    """The files a sample is read from (``img_path``, ``seg_map_path``...)."""
    return {k: v for k, v in data_info.items() if k.endswith('_path') and isinstance(v, str)}


def _describe(dataset, idx: int, data_info: dict) -> str:
    files = ', '.join(f'{k}={v}' for k, v in sample_files(data_info).items()) or 'no file path'
    return f'{type(dataset).__name__} sample {idx} ({files})'


def _check_seg_labels(dataset, data: dict) -> Optional[str]:
    """What is wrong with a packed mmseg sample's labels, or None."""
    sample = data.get('data_samples') if isinstance(data, dict) else None
    seg = getattr(getattr(sample, 'gt_sem_seg', None), 'data', None)
    classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
    if seg is None or not classes:
        return None
    values = seg.unique()
    bad = values[(values >= len(classes)) & (values != SEG_IGNORE_INDEX) | (values < 0)]
    if bad.numel():
        return (f'label values {bad.tolist()[:10]} are outside the {len(classes)} classes '
                f'(valid: 0..{len(classes) - 1} and {SEG_IGNORE_INDEX} = ignore, after '
                'reduce_zero_label when the config sets it)')
    return None


def _check_raw_seg_map(path: str) -> Optional[str]:
    """What mmseg's 8-bit reading would silently change in a label file, or None: a 16-bit
    map with values above 255 (``astype(uint8)`` wraps 304 to 48) or a colour (RGB) map (one
    class index per pixel is expected). Reads the header; decodes only 16/32-bit maps."""
    from PIL import Image
    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode in ('RGB', 'RGBA', 'CMYK', 'YCbCr', 'LAB', 'HSV'):
                return (f'a colour ({mode}) label map: mmseg needs one class index per pixel '
                        '(an 8-bit grey or palette PNG); convert the colours to indices')
            if mode.startswith('I'):  # I;16, I;16B, I (32-bit)
                peak = int(np.asarray(image).max())
                if peak > 255:
                    return (f'a {mode} label map with values up to {peak}: mmseg reads labels '
                            f'as 8 bits, so they would wrap ({peak} -> {peak % 256}); store '
                            'class indices 0..255 in an 8-bit PNG')
    except OSError:
        return None  # unreadable: the pipeline itself reports it with its error
    return None


def _check_cls_label(dataset, data: dict) -> Optional[str]:
    """An mmpretrain sample's label outside ``0..num_classes-1``, or None."""
    sample = data.get('data_samples') if isinstance(data, dict) else None
    label = getattr(sample, 'gt_label', None)
    classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
    if label is None or not classes or not hasattr(label, 'numel') or not label.numel():
        return None
    bad = label[(label < 0) | (label >= len(classes))]
    if bad.numel():
        return (f'class label {bad.tolist()} is outside the {len(classes)} classes (valid: '
                f'0..{len(classes) - 1})')
    return None


def sample_problem(dataset, data_info: dict, data: dict) -> Optional[str]:
    """What is wrong with a loaded sample that its pipeline did not notice, or None."""
    seg_map = data_info.get('seg_map_path')
    if isinstance(seg_map, str) and osp.isfile(seg_map):
        problem = _check_raw_seg_map(seg_map)
        if problem:
            return problem
    return _check_seg_labels(dataset, data) or _check_cls_label(dataset, data)


def _prepare_data_with_reports(self, idx):
    data_info = self.get_data_info(idx)
    try:
        data = self.pipeline(data_info)
    except DataSampleError:
        raise
    except Exception as err:
        raise DataSampleError(f'{_describe(self, idx, data_info)}: {type(err).__name__}: '
                              f'{err}') from err
    problem = sample_problem(self, data_info, data)
    if problem:
        raise DataSampleError(f'{_describe(self, idx, data_info)}: {problem}')
    return data


def leaf_datasets(cfg) -> Iterator[dict]:
    """Every leaf dataset config inside wrappers (ConcatDataset, RepeatDataset, ...)."""
    if not isinstance(cfg, dict):
        return
    if 'datasets' in cfg:
        for sub in cfg['datasets']:
            yield from leaf_datasets(sub)
    elif 'dataset' in cfg:
        yield from leaf_datasets(cfg['dataset'])
    else:
        yield cfg


def _ann_path(leaf: dict) -> str:
    ann_file, root = str(leaf.get('ann_file') or ''), leaf.get('data_root') or ''
    return osp.join(root, ann_file) if ann_file and root and not osp.isabs(ann_file) else ann_file


def _unparsable_xml(leaf: dict) -> List[str]:
    """The VOC XML files of a VOC-style config's split list that do not parse (an
    ``ET.ParseError`` names no file)."""
    prefix = leaf.get('data_prefix') or {}
    sub_root = osp.join(leaf.get('data_root') or '', prefix.get('sub_data_root', ''))
    bad = []
    try:
        with open(_ann_path(leaf)) as f:
            ids = [line.strip() for line in f if line.strip()]
    except OSError:
        return bad
    for img_id in ids:
        path = osp.join(sub_root, leaf.get('ann_subdir', 'Annotations'), f'{img_id}.xml')
        try:
            ET.parse(path)
        except ET.ParseError as err:
            bad.append(f'{path} ({err})')
        except OSError:
            continue
    return bad


def _is_empty_list(path: str) -> bool:
    """A text split list (``*.txt``) without any entry."""
    if not path.endswith('.txt') or not osp.isfile(path):
        return False
    with open(path) as f:
        return not any(line.strip() for line in f)


def build_dataset_with_reports(dataset_cfg):
    """``DATASETS.build`` + ``full_init`` of a dataset config whose failures name the
    annotation files (and the broken XML files: an ``ET.ParseError`` names none), and which
    refuses a training/validation split with no sample at all (mmengine would build a
    dataloader of nothing, or fail later without a name). Returns the dataset."""
    from mmengine.registry import DATASETS
    leaves = list(leaf_datasets(dataset_cfg))
    where = '; '.join(f"{leaf.get('type')} ann_file={_ann_path(leaf) or '(none)'}"
                      for leaf in leaves) or repr(dataset_cfg)
    try:
        dataset = DATASETS.build(dataset_cfg)
        if hasattr(dataset, 'full_init'):
            dataset.full_init()
    except DataSampleError:
        raise
    except Exception as err:
        empty = [path for path in map(_ann_path, leaves) if _is_empty_list(path)]
        if empty:
            raise DataSampleError(f'the dataset {where} has no samples: the split list '
                                  f'{", ".join(empty)} is empty') from err
        text = str(err).split('\n')[0]
        detail = ''
        if isinstance(err, ET.ParseError) or 'ParseError' in type(err).__name__:
            broken = [b for leaf in leaves for b in _unparsable_xml(leaf)]
            detail = ('; unparsable XML: ' + ', '.join(broken[:5])) if broken else ''
        if not isinstance(err, (OSError, ValueError, KeyError, IndexError, TypeError,
                                AttributeError, ET.ParseError)) and not detail:
            raise
        raise DataSampleError(f'cannot read the annotations of {where}: '
                              f'{type(err).__name__}: {text}{detail}') from err
    if len(dataset) == 0:
        raise DataSampleError(
            f'the dataset {where} has no samples (an empty split list, wrong data_root or '
            'data_prefix, or filter_cfg removed every sample)')
    return dataset


def _build_dataloader_with_reports(dataloader, *args, **kwargs):
    if isinstance(dataloader, dict) and isinstance(dataloader.get('dataset'), dict):
        dataloader = dict(dataloader)
        dataloader['dataset'] = build_dataset_with_reports(dataloader['dataset'])
    return _ORIGINAL_BUILD_DATALOADER[0](dataloader, *args, **kwargs)


_ORIGINAL_BUILD_DATALOADER: list = []


def install_sample_error_reports() -> None:
    """Make every mmengine dataset (mmdet, mmseg, mmpretrain) raise :class:`DataSampleError`
    naming the sample's files when its pipeline fails, and check mmseg label values against
    the classes, so a bad label stops the run at its file instead of as an index error in the
    loss. One replacement of ``BaseDataset.prepare_data`` (the same body plus the report);
    idempotent; the tools call it, library code never does."""
    from mmengine.dataset import BaseDataset
    if getattr(BaseDataset.prepare_data, '_mmlk_reports', False):
        return
    _prepare_data_with_reports._mmlk_reports = True
    BaseDataset.prepare_data = _prepare_data_with_reports
    # Dataset construction too: a broken annotation file or an empty split names its files.
    from mmengine.runner import Runner
    _ORIGINAL_BUILD_DATALOADER.append(Runner.build_dataloader)
    Runner.build_dataloader = staticmethod(_build_dataloader_with_reports)


@dataclass
class DatasetReport:
    """What :func:`scan_dataset` found in one dataset."""
    name: str
    num_samples: int = 0
    bad_samples: List[str] = field(default_factory=list)
    degenerate_boxes: List[str] = field(default_factory=list)
    num_boxes: int = 0
    # annotations a parser drops or mislabels without a word: unknown classes, boxes outside
    # their image
    annotation_problems: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.bad_samples and not self.degenerate_boxes and \
            not self.annotation_problems

    def summary(self) -> str:
        lines = [f'{self.name}: {self.num_samples} samples, {len(self.bad_samples)} unusable'
                 + (f', {len(self.degenerate_boxes)} of {self.num_boxes} boxes degenerate '
                    '(zero or negative width/height)' if self.num_boxes else '')
                 + (f', {len(self.annotation_problems)} annotations dropped or wrong '
                    '(unknown class, box outside its image)' if self.annotation_problems
                    else '')]
        for found in (self.bad_samples, self.degenerate_boxes, self.annotation_problems):
            lines += [f'  {line}' for line in found[:20]]
            if len(found) > 20:
                lines.append(f'  ... (+{len(found) - 20} more)')
        return '\n'.join(lines)


def _outside(x1: float, y1: float, x2: float, y2: float, width, height) -> bool:
    """True when the box does not overlap its image at all."""
    if not width or not height:
        return False
    return x2 <= 0 or y2 <= 0 or x1 >= float(width) or y1 >= float(height)


def _raw_annotation_problems(dataset) -> Optional[tuple]:
    """Read the raw annotation files (COCO JSON, VOC XML) for what mmdet's parsers drop or
    keep wrong without a word: degenerate boxes (COCO ``w < 1 or h < 1`` are skipped), class
    names / category ids outside the dataset's classes (skipped), boxes entirely outside
    their image (kept, trained as empty crops). ``(degenerate, other problems, number of
    boxes)``, or None for datasets without such files."""
    ann_file = getattr(dataset, 'ann_file', '')
    classes = list((getattr(dataset, 'metainfo', None) or {}).get('classes') or [])
    if ann_file.endswith('.json'):
        with open(ann_file) as f:
            coco = json.load(f)
        images = {im['id']: im for im in coco.get('images', [])}
        categories = {c['id']: c.get('name') for c in coco.get('categories', [])}
        used = {i for i, name in categories.items() if not classes or name in classes}
        degenerate, problems = [], []
        for a in coco.get('annotations', []):
            image = images.get(a.get('image_id'), {})
            where = f'{ann_file}: annotation {a.get("id")} of image ' \
                f'{image.get("file_name", a.get("image_id"))}'
            x, y, w, h = a['bbox']
            if w < 1 or h < 1:
                degenerate.append(f'{where}: bbox {a["bbox"]} (mmdet drops it)')
            if a.get('category_id') not in categories:
                problems.append(f'{where}: category_id {a.get("category_id")} is not in the '
                                f'file\'s categories {sorted(categories)} (mmdet drops it)')
            elif a.get('category_id') not in used:
                problems.append(f'{where}: category {categories[a["category_id"]]!r} is not '
                                'one of the dataset classes (mmdet drops it)')
            if _outside(x, y, x + w, y + h, image.get('width'), image.get('height')):
                problems.append(f'{where}: bbox {a["bbox"]} lies entirely outside the '
                                f'{image.get("width")}x{image.get("height")} image')
        return degenerate, problems, len(coco.get('annotations', []))
    if getattr(dataset, 'ann_subdir', None) is not None:
        degenerate, problems, total = [], [], 0
        # get_data_info: mmengine serialises data_list away after full_init
        for info in (dataset.get_data_info(i) for i in range(len(dataset))):
            path = info.get('xml_path')
            if not path or not osp.isfile(path):
                continue
            root = ET.parse(path).getroot()
            size = root.find('size')
            width = size.find('width').text if size is not None else None
            height = size.find('height').text if size is not None else None
            for obj in root.findall('object'):
                name = obj.find('name').text
                box = obj.find('bndbox')
                x1, y1, x2, y2 = (float(box.find(t).text) for t in ('xmin', 'ymin', 'xmax', 'ymax'))
                total += 1
                if x2 <= x1 or y2 <= y1:
                    degenerate.append(f'{path}: {name} box {[x1, y1, x2, y2]}')
                if classes and name not in classes:
                    problems.append(f'{path}: class {name!r} is not one of the dataset '
                                    f'classes (mmdet drops the box; misspelt?)')
                if _outside(x1, y1, x2, y2, width, height):
                    problems.append(f'{path}: {name} box {[x1, y1, x2, y2]} lies entirely '
                                    f'outside the {width}x{height} image')
        return degenerate, problems, total
    return None


def scan_dataset(dataset, name: str, progress: bool = True) -> DatasetReport:
    """Run every sample of ``dataset`` through its pipeline once (unreadable images, labels
    outside the classes, any pipeline error, each naming the file) and count degenerate boxes
    (raw annotations for COCO/VOC, parsed instances otherwise)."""
    from mmengine.utils import ProgressBar
    install_sample_error_reports()
    dataset.full_init()
    report = DatasetReport(name, num_samples=len(dataset))
    if len(dataset) == 0:
        report.bad_samples.append(f'the split has no samples (ann_file='
                                  f'{getattr(dataset, "ann_file", None)})')
    raw = _raw_annotation_problems(dataset)
    bar = ProgressBar(len(dataset)) if progress else None
    boxes_seen = 0
    for idx in range(len(dataset)):
        info = dataset.get_data_info(idx)
        try:
            dataset.prepare_data(idx)
        except DataSampleError as err:
            report.bad_samples.append(str(err).split('\n')[0])
        if raw is None:
            for inst in info.get('instances', []):
                if 'bbox' not in inst:
                    continue
                boxes_seen += 1
                x1, y1, x2, y2 = inst['bbox']
                if x2 <= x1 or y2 <= y1:
                    report.degenerate_boxes.append(f'{_describe(dataset, idx, info)}: box '
                                                   f'{np.round(inst["bbox"], 2).tolist()}')
        if bar is not None:
            bar.update()
    if bar is not None:
        print()
    if raw is not None:
        report.degenerate_boxes, report.annotation_problems, report.num_boxes = raw
    else:
        report.num_boxes = boxes_seen
    return report


class DatasetNotFoundError(FileNotFoundError):
    """A config's dataset is not where the config says."""


# How to get each dataset family's real data, and which demo writer mimics it.
_DATA_HELP = {
    'ADE20KDataset': ('ADE20K: download ADEChallengeData2016 from the MIT Scene Parsing '
                      'benchmark and unpack it to the data_root', 'ade20k'),
    'VOCDataset': ('PASCAL VOC: unpack VOCtrainval_06-Nov-2007, VOCtest_06-Nov-2007 and '
                   'VOCtrainval_11-May-2012 so that data_root contains VOC2007/ and VOC2012/',
                   'voc'),
    'CocoDataset': ('COCO 2017: unpack train2017/, val2017/ and annotations/ into the data_root',
                    'coco'),
    'ImageNet': ('ImageNet-1k: place train/ and val/ (class sub-folders) and meta/{train,val}.txt '
                 'in the data_root', 'imagenet'),
}


def _expected_paths(dataset: ConfigDict) -> List[str]:
    root = dataset.get('data_root') or ''
    paths = []
    ann_file = dataset.get('ann_file')
    if ann_file:
        paths.append(ann_file if osp.isabs(ann_file) else osp.join(root, ann_file))
    prefix = dataset.get('data_prefix') or {}
    for value in (prefix.values() if isinstance(prefix, dict) else [prefix]):
        if isinstance(value, str) and value:
            paths.append(value if osp.isabs(value) else osp.join(root, value))
    split = dataset.get('split')
    if not ann_file and isinstance(split, str) and split:  # mmpretrain ImageNet(split=...)
        paths.append(osp.join(root, split))
    if not paths and root:
        paths.append(root)
    return paths


def check_dataset_paths(cfg: Config, loaders: Tuple[str, ...] = ('train_dataloader',
                                                                'val_dataloader',
                                                                'test_dataloader')) -> None:
    """Raise :class:`DatasetNotFoundError` naming the missing path and how to get the data,
    instead of a stack trace from deep inside a dataset class."""
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if not loader_cfg or 'dataset' not in loader_cfg:
            continue
        for dataset in leaf_datasets(loader_cfg['dataset']):
            missing = [p for p in _expected_paths(dataset) if not osp.exists(p)]
            if not missing:
                continue
            kind = dataset.get('type', '?')
            how, demo = _DATA_HELP.get(str(kind).split('.')[-1], ('see the dataset docs', None))
            lines = [f'{loader}: the {kind} data is not where the config expects it.',
                     'Missing: ' + ', '.join(missing), f'To use the real data — {how}.']
            if demo is not None:
                lines.append(
                    f'To try the embedded synthetic data instead: python tools/make_demo_data.py '
                    f'{demo} --out data/demo, then set the data_root of the datasets to '
                    f'data/demo/{DEMO_SUBDIRS[demo]}/ (README, "Embedded datasets").')
            raise DatasetNotFoundError('\n'.join(lines))
