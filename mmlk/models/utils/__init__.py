from .checkpoint import (CheckpointMismatchError, CheckpointReadError, atomic_write_bytes,
                         check_checkpoint_file, compare_state_dicts, convert_to_mmlk,
                         load_checkpoint_file, load_state_dict_checked, save_checkpoint_file,
                         state_dict_container, strip_prefix, unwrap_state_dict)

__all__ = [
    'CheckpointMismatchError', 'CheckpointReadError', 'atomic_write_bytes',
    'check_checkpoint_file', 'compare_state_dicts', 'convert_to_mmlk', 'load_checkpoint_file',
    'load_state_dict_checked', 'save_checkpoint_file', 'state_dict_container', 'strip_prefix',
    'unwrap_state_dict'
]
