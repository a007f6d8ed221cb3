"""Warnings of the pinned OpenMMLab stack that no mmlk user can act on, silenced by mmlk's
tools at start-up (before mmengine is imported). Importing the library changes no warning
filter: a user's own scripts see everything.

Leaf module: imports nothing but ``warnings``.
"""
import warnings

__all__ = ['PINNED_STACK_WARNINGS', 'silence_pinned_stack_warnings']

# (message prefix, category, why it cannot be acted on)
PINNED_STACK_WARNINGS = (
    ('pkg_resources is deprecated as an API', UserWarning,
     "mmengine 0.10.7 and mmcv 2.1.0 import pkg_resources (once per process and once per "
     "'pkg::' config base); setuptools < 81 is pinned because mmcv's build needs it"),
    # mmseg 1.2.2 warns about its own code and its own base configs, which mmlk's inherit:
    ('``build_loss`` would be deprecated soon', UserWarning, 'mmseg calls its own deprecated '
     'builder inside its heads'),
    ('`reduce_zero_label` will be deprecated', UserWarning, "mmseg's own ADE20K dataset base "
     'config passes it (and its datasets still need it)'),
    ('The draw is False', UserWarning, "mmseg's default_runtime.py: the visualisation hook is "
     'off unless --show/--show-dir, which the tools offer'),
    ('Default ``avg_non_ignore`` is False', UserWarning, "mmseg's UperNet base config: the "
     "official recipes' loss, kept as published"),
)


def silence_pinned_stack_warnings() -> None:
    for message, category, _ in PINNED_STACK_WARNINGS:
        warnings.filterwarnings('ignore', message=message, category=category)
