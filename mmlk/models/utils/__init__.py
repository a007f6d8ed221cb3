from .checkpoint import (CheckpointMismatchError, compare_state_dicts, convert_to_mmlk,
                         load_checkpoint_file, load_state_dict_checked, strip_prefix,
                         unwrap_state_dict)

__all__ = [
    'CheckpointMismatchError', 'compare_state_dicts', 'convert_to_mmlk', 'load_checkpoint_file',
    'load_state_dict_checked', 'strip_prefix', 'unwrap_state_dict'
]
