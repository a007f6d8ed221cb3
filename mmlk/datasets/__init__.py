"""Synthetic datasets in real formats for demos and tests (see :mod:`mmlk.datasets.demo_data`)."""
from .demo_data import (DEMO_SUBDIRS, DEMO_WRITERS, make_ade20k, make_coco, make_imagenet,
                        make_voc, render_scene)

__all__ = ['DEMO_SUBDIRS', 'DEMO_WRITERS', 'make_ade20k', 'make_coco', 'make_imagenet',
           'make_voc', 'render_scene']
