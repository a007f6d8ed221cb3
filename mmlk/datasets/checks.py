"""Bad data names its file: per-sample error reports and a whole-dataset scan.

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
from typing import Dict, List, Optional

import numpy as np

__all__ = ['DataSampleError', 'DatasetReport', 'install_sample_error_reports', 'sample_files',
           'scan_dataset']

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


def _prepare_data_with_reports(self, idx):
    data_info = self.get_data_info(idx)
    try:
        data = self.pipeline(data_info)
    except DataSampleError:
        raise
    except Exception as err:
        raise DataSampleError(f'{_describe(self, idx, data_info)}: {type(err).__name__}: '
                              f'{err}') from err
    problem = _check_seg_labels(self, data)
    if problem:
        raise DataSampleError(f'{_describe(self, idx, data_info)}: {problem}')
    return data


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


@dataclass
class DatasetReport:
    """What :func:`scan_dataset` found in one dataset."""
    name: str
    num_samples: int = 0
    bad_samples: List[str] = field(default_factory=list)
    degenerate_boxes: List[str] = field(default_factory=list)
    num_boxes: int = 0

    @property
    def ok(self) -> bool:
        return not self.bad_samples and not self.degenerate_boxes

    def summary(self) -> str:
        lines = [f'{self.name}: {self.num_samples} samples, {len(self.bad_samples)} unusable'
                 + (f', {len(self.degenerate_boxes)} of {self.num_boxes} boxes degenerate '
                    '(zero or negative width/height)' if self.num_boxes else '')]
        for found in (self.bad_samples, self.degenerate_boxes):
            lines += [f'  {line}' for line in found[:20]]
            if len(found) > 20:
                lines.append(f'  ... (+{len(found) - 20} more)')
        return '\n'.join(lines)


def _raw_degenerate_boxes(dataset) -> Optional[tuple]:
    """Degenerate boxes in the raw annotation files, which mmdet's parsers may drop silently
    (COCO: ``w < 1 or h < 1`` boxes are skipped): ``(list of lines, number of boxes)``."""
    ann_file = getattr(dataset, 'ann_file', '')
    if ann_file.endswith('.json'):
        with open(ann_file) as f:
            coco = json.load(f)
        files = {im['id']: im.get('file_name', im['id']) for im in coco.get('images', [])}
        bad = [f'{ann_file}: annotation {a.get("id")} of image {files.get(a.get("image_id"))}: '
               f'bbox {a["bbox"]} (mmdet drops it)'
               for a in coco.get('annotations', []) if a['bbox'][2] < 1 or a['bbox'][3] < 1]
        return bad, len(coco.get('annotations', []))
    if hasattr(dataset, 'data_list') and getattr(dataset, 'ann_subdir', None) is not None:
        bad, total = [], 0
        for info in dataset.data_list:
            path = info.get('xml_path')
            if not path or not osp.isfile(path):
                continue
            for obj in ET.parse(path).getroot().findall('object'):
                box = obj.find('bndbox')
                x1, y1, x2, y2 = (float(box.find(t).text) for t in ('xmin', 'ymin', 'xmax', 'ymax'))
                total += 1
                if x2 <= x1 or y2 <= y1:
                    bad.append(f'{path}: {obj.find("name").text} box {[x1, y1, x2, y2]}')
        return bad, total
    return None


def scan_dataset(dataset, name: str, progress: bool = True) -> DatasetReport:
    """Run every sample of ``dataset`` through its pipeline once (unreadable images, labels
    outside the classes, any pipeline error, each naming the file) and count degenerate boxes
    (raw annotations for COCO/VOC, parsed instances otherwise)."""
    from mmengine.utils import ProgressBar
    install_sample_error_reports()
    dataset.full_init()
    report = DatasetReport(name, num_samples=len(dataset))
    raw = _raw_degenerate_boxes(dataset)
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
        report.degenerate_boxes, report.num_boxes = raw
    else:
        report.num_boxes = boxes_seen
    return report
