"""Helpers for the tools: config preparation and dataset checks."""
from .runtime import (DatasetNotFoundError, add_runner_args, check_dataset_paths, load_config,
                      prepare_optim_wrapper_for_device, setup_torch_load)

__all__ = [
    'DatasetNotFoundError', 'add_runner_args', 'check_dataset_paths', 'load_config',
    'prepare_optim_wrapper_for_device', 'setup_torch_load'
]
