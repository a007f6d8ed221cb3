"""Layers and helpers shared by mmlk's backbones (mmpretrain keeps its in
``mmpretrain.models.utils`` too)."""
from .activation_checkpoint import checkpointed
from .layers import GRN, SEBlock, make_divisible

# The checkpoint API lived here until 0.2; it is checkpoint file I/O, not a model layer, and
# moved to mmlk.core.checkpoint_io. These names stay importable from here for 0.2 code.
from mmlk.core.checkpoint_io import (CheckpointMismatchError, CheckpointReadError,  # noqa: E402
                                     atomic_write_bytes, check_checkpoint_file,
                                     compare_state_dicts, convert_to_mmlk,
                                     load_checkpoint_file, load_local_checkpoint,
                                     load_state_dict_checked, save_checkpoint_file,
                                     state_dict_container, strip_prefix, unwrap_state_dict)

__all__ = [
    'GRN', 'SEBlock', 'checkpointed', 'make_divisible', 'CheckpointMismatchError',
    'CheckpointReadError', 'atomic_write_bytes',
    'check_checkpoint_file', 'compare_state_dicts', 'convert_to_mmlk', 'load_checkpoint_file',
    'load_local_checkpoint', 'load_state_dict_checked', 'save_checkpoint_file',
    'state_dict_container', 'strip_prefix', 'unwrap_state_dict'
]
