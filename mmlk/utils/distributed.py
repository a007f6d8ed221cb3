"""Multi-process training and testing on machines without CUDA, through mmengine's Runner.

mmengine's launchers (``init_dist``) call ``torch.cuda.set_device``, so ``--launcher pytorch``
fails on a CPU machine before the Runner exists ("Found no NVIDIA driver"), whatever
``env_cfg.dist_cfg.backend`` says. :func:`setup_distributed` is what ``tools/train.py`` and
``tools/test.py`` call before building the Runner:

* **with CUDA** it only checks that the launcher's environment is there (a clear message
  instead of a ``KeyError`` deep in mmengine); mmengine then starts NCCL and wraps the model
  with ``device_ids=[local_rank]`` exactly as before;
* **without CUDA** it starts the process group itself with gloo (from torchrun's, Slurm's or
  Open MPI's environment variables), sets ``model_wrapper_cfg`` so that
  ``MMDistributedDataParallel`` is built without ``device_ids`` (a CPU module), and turns
  every ``SyncBN`` of the config into ``BN`` with one warning (torch's SyncBatchNorm needs a
  GPU; each process then normalises over its own batch). mmengine's Runner sees an
  initialised process group, skips ``init_dist`` and otherwise behaves as on GPUs: the same
  samplers (one shard per rank, seeds broadcast from rank 0), the same DDP gradient
  all-reduce, the same result collection and checkpointing on rank 0.
"""
import os
import subprocess
from datetime import timedelta
from typing import Dict, Mapping, Optional

from mmengine.config import Config
from mmengine.logging import print_log

__all__ = ['LauncherEnvironmentError', 'launcher_environment', 'setup_distributed']

# What each launcher must have set, and where it is started from.
_REQUIRED = {
    'pytorch': ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'),
    'slurm': ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'),
    'mpi': ('OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE', 'OMPI_COMM_WORLD_LOCAL_RANK'),
}
_HOW_TO_START = {
    'pytorch': 'start it with tools/dist_train.sh CONFIG NUM_PROCESSES (or torchrun '
               '--nproc_per_node=N tools/train.py CONFIG --launcher pytorch)',
    'slurm': 'start it with tools/slurm_train.sh PARTITION JOB CONFIG WORK_DIR (srun sets them)',
    'mpi': 'start it with mpirun -n N python tools/train.py CONFIG --launcher mpi and set '
           'MASTER_ADDR/MASTER_PORT',
}


class LauncherEnvironmentError(RuntimeError):
    """The chosen launcher's environment variables are missing: the process was not started by
    torchrun / srun / mpirun."""


def launcher_environment(launcher: str, environ: Mapping[str, str] = os.environ,
                         ) -> Dict[str, str]:
    """torch.distributed's ``env://`` variables (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR,
    MASTER_PORT) for a process started by ``launcher``, derived as mmengine's launchers do
    (Slurm: the first host of ``SLURM_NODELIST`` via ``scontrol`` unless MASTER_ADDR is set,
    port 29500 unless MASTER_PORT is set). Raises :class:`LauncherEnvironmentError` naming the
    missing variables and how to start the job."""
    if launcher not in _REQUIRED:
        raise ValueError(f'launcher must be one of {sorted(_REQUIRED)} (or none), got '
                         f'{launcher!r}')
    missing = [k for k in _REQUIRED[launcher] if k not in environ]
    if launcher == 'mpi':
        missing += [k for k in ('MASTER_ADDR', 'MASTER_PORT') if k not in environ]
    if missing:
        raise LauncherEnvironmentError(
            f'--launcher {launcher}: this process was not started by the launcher: '
            f'{", ".join(missing)} not set; {_HOW_TO_START[launcher]}. For one process, drop '
            '--launcher.')
    if launcher == 'pytorch':
        return {k: environ[k] for k in _REQUIRED['pytorch']}
    if launcher == 'mpi':
        return dict(RANK=environ['OMPI_COMM_WORLD_RANK'],
                    LOCAL_RANK=environ['OMPI_COMM_WORLD_LOCAL_RANK'],
                    WORLD_SIZE=environ['OMPI_COMM_WORLD_SIZE'],
                    MASTER_ADDR=environ['MASTER_ADDR'], MASTER_PORT=environ['MASTER_PORT'])
    rank, world = int(environ['SLURM_PROCID']), int(environ['SLURM_NTASKS'])
    if 'SLURM_LOCALID' in environ:
        local_rank = environ['SLURM_LOCALID']
    else:
        per_node = int(environ.get('SLURM_NTASKS_PER_NODE', '1').split('(')[0])
        local_rank = str(rank % per_node)
    address = environ.get('MASTER_ADDR')
    if address is None:
        address = subprocess.getoutput(
            f'scontrol show hostname {environ["SLURM_NODELIST"]} | head -n1').strip()
    return dict(RANK=str(rank), LOCAL_RANK=local_rank, WORLD_SIZE=str(world),
                MASTER_ADDR=address, MASTER_PORT=environ.get('MASTER_PORT', '29500'))


def _sync_bn_to_bn(node, found: list) -> None:
    if isinstance(node, dict):
        if node.get('type') in ('SyncBN', 'MMSyncBN', 'mmengine.SyncBN'):
            found.append(node['type'])
            node['type'] = 'BN'
        for value in node.values():
            _sync_bn_to_bn(value, found)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _sync_bn_to_bn(value, found)


def setup_distributed(cfg: Config, cuda: Optional[bool] = None) -> None:
    """Prepare ``cfg`` (and, without CUDA, the process group) for ``cfg.launcher``.

    Does nothing for ``launcher='none'`` or an already initialised process group. See the
    module docstring for what changes on a machine without CUDA (nothing changes with CUDA).
    """
    import torch
    import torch.distributed as dist
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none':
        return
    if cuda is None:
        cuda = torch.cuda.is_available()
    if dist.is_available() and dist.is_initialized():
        return
    env = launcher_environment(launcher)
    if cuda:
        return  # mmengine's init_dist: NCCL, torch.cuda.set_device(local_rank)
    os.environ.update(env)
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'gloo') != 'gloo':
        print_log(f'no CUDA: using the gloo backend instead of {dist_cfg["backend"]!r}',
                  logger='current', level=30)
    dist_cfg['backend'] = 'gloo'
    timeout = dist_cfg.get('timeout', 1800)
    dist.init_process_group('gloo', init_method='env://', rank=int(env['RANK']),
                            world_size=int(env['WORLD_SIZE']),
                            timeout=timedelta(seconds=timeout))
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    if wrapper['type'] in ('MMDistributedDataParallel', 'mmengine.MMDistributedDataParallel'):
        wrapper['device_ids'] = None
        wrapper.setdefault('broadcast_buffers', False)
        wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = wrapper
    found: list = []
    _sync_bn_to_bn(cfg.get('model'), found)
    if cfg.get('sync_bn'):
        found.append(f'sync_bn={cfg.sync_bn!r}')
        cfg.sync_bn = None
    if found and int(env['RANK']) == 0:
        print_log(f'no CUDA: {len(found)} SyncBN setting(s) of the config use BN instead '
                  '(torch.nn.SyncBatchNorm needs a GPU; each process normalises over its own '
                  'batch)', logger='current', level=30)
