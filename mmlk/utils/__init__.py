"""Runner support for the tools (the top layer, docs/architecture.md): the shared command
line, config preparation, resume, dataset checks, distributed start-up without CUDA,
deployment, the converters' command line, mmengine's hub, synthetic datasets and analysis
maths. Nothing below this package imports it."""
from .cli import (add_runner_args, add_trust_argument, apply_trust, init_weights_quietly,
                  install_safe_checkpoint_loader, user_errors_as_messages)
from .complexity import sparse_complexity
from .config import (install_safety_hooks, load_config, prepare_optim_wrapper_for_device,
                     read_config)
from .data_checks import DatasetNotFoundError, check_dataset_paths
from .hub import register_all_modules
from .resume import resolve_resume_checkpoint, use_seed_of_checkpoint, work_dir_lock

__all__ = [
    'DatasetNotFoundError', 'add_runner_args', 'add_trust_argument', 'apply_trust',
    'check_dataset_paths', 'init_weights_quietly', 'install_safe_checkpoint_loader',
    'install_safety_hooks', 'load_config', 'prepare_optim_wrapper_for_device', 'read_config',
    'register_all_modules', 'resolve_resume_checkpoint', 'sparse_complexity',
    'use_seed_of_checkpoint', 'user_errors_as_messages', 'work_dir_lock'
]
