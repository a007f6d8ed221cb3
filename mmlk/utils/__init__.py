"""Helpers for the tools: config preparation, dataset checks, complexity."""
from .complexity import sparse_complexity
from .runtime import (DatasetNotFoundError, add_runner_args, check_dataset_paths, load_config,
                      prepare_optim_wrapper_for_device, setup_torch_load)

__all__ = [
    'DatasetNotFoundError', 'add_runner_args', 'check_dataset_paths', 'load_config',
    'prepare_optim_wrapper_for_device', 'setup_torch_load', 'sparse_complexity'
]
