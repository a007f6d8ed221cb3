"""Helpers for the tools: config preparation, dataset checks, complexity."""
from .complexity import sparse_complexity
from .hub import register_all_modules
from .runtime import (DatasetNotFoundError, add_runner_args, add_trust_argument, apply_trust,
                      check_dataset_paths,
                      init_weights_quietly, install_safety_hooks, load_config,
                      prepare_optim_wrapper_for_device, read_config, resolve_resume_checkpoint,
                      setup_torch_load, use_seed_of_checkpoint, user_errors_as_messages,
                      work_dir_lock)

__all__ = [
    'DatasetNotFoundError', 'add_runner_args', 'add_trust_argument', 'apply_trust',
    'check_dataset_paths', 'init_weights_quietly',
    'install_safety_hooks', 'load_config', 'resolve_resume_checkpoint',
    'prepare_optim_wrapper_for_device', 'read_config', 'register_all_modules', 'setup_torch_load',
    'sparse_complexity',
    'use_seed_of_checkpoint', 'user_errors_as_messages', 'work_dir_lock'
]
