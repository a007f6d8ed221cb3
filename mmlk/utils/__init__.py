"""Helpers for the tools: config preparation and dataset checks."""
from .runtime import (DatasetNotFoundError, check_dataset_paths, prepare_optim_wrapper_for_device,
                      setup_torch_load)

__all__ = [
    'DatasetNotFoundError', 'check_dataset_paths', 'prepare_optim_wrapper_for_device',
    'setup_torch_load'
]
