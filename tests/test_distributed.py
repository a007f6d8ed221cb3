"""Distributed training and testing through tools/dist_train.sh / dist_test.sh: real processes,
gloo, 2 ranks on CPU (mmlk/utils/distributed.py), embedded data, tiny models.

What is compared across ranks is written by each rank (tests/dist_probe.py)."""
import json
import os
import os.path as osp
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import (CONFIGS, REPO, TINY_BACKBONE, TINY_DIMS, run_tool, tiny_imagenet_body,
                      tiny_seg_config, tiny_voc_config, write_config)

TESTS = osp.dirname(osp.abspath(__file__))
PROBE = '''
custom_imports = dict(imports=['mmlk', 'dist_probe'], allow_failed_imports=False)
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run_dist(script: str, *args: str, nproc: int = 2, check: bool = True, env_extra=None):
    env = dict(os.environ, PYTHONPATH=f'{REPO}:{TESTS}', PYTHON=sys.executable,
               PORT=str(free_port()), OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               **(env_extra or {}))
    env.pop('CUDA_VISIBLE_DEVICES', None)
    if script == 'dist_train.sh':
        cmd = ['bash', f'{REPO}/tools/dist_train.sh', args[0], str(nproc), *args[1:]]
    else:
        cmd = ['bash', f'{REPO}/tools/dist_test.sh', args[0], args[1], str(nproc), *args[2:]]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f'{cmd} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n'
                             f'{proc.stderr[-8000:]}')
    return proc


def rank_states(work: str, world: int = 2):
    states = [torch.load(osp.join(work, f'rank{r}.pth'), weights_only=False)
              for r in range(world)]
    assert all(s['world_size'] == world for s in states)
    assert all(s['wrapped'] == 'MMDistributedDataParallel' for s in states)
    return states


def assert_ranks_identical(states, what: str) -> None:
    first = states[0][what]
    for other in states[1:]:
        assert first.keys() == other[what].keys()
        for name, value in first.items():
            assert torch.equal(value, other[what][name]), f'{what} {name} differs across ranks'


def sparse_imagenet_config(tmp_path, demo_data, growth: str) -> str:
    return write_config(tmp_path, f'{CONFIGS}/slak_t_in1k.py', tiny_imagenet_body(
        demo_data['imagenet']) + PROBE + textwrap.dedent(f'''
        model = dict({TINY_BACKBONE}, head=dict(in_channels={TINY_DIMS[-1]}))
        train_cfg = dict(max_epochs=3)
        randomness = dict(seed=0)
        custom_hooks = [
            dict(type='mmlk.SparseTrainingHook', sparsity=0.5, init='ERK', growth={growth!r},
                 prune_rate=0.5, update_interval=2, scope='backbone'),
            dict(type='mmlk.RankStateProbe'),
        ]
        '''), name=f'sparse_{growth}.py')


def check_sparse_run(work: str, sparsity: float = 0.5):
    states = rank_states(work)
    # each rank trained on its own shard: the local losses differ ...
    assert states[0]['losses'] != states[1]['losses']
    # ... and still the weights and masks are identical on every rank
    assert_ranks_identical(states, 'params')
    assert_ranks_identical(states, 'masks')
    assert len(states[0]['updates']) == 2  # optimizer steps 2 and 4 of 6 (3 epochs x 2 iters)
    checkpoint = torch.load(osp.join(work, 'epoch_3.pth'), weights_only=False)
    masks = checkpoint['sparse_training']['masks']
    dense = sum(checkpoint['sparse_training']['dense_layers'].values())  # ERK's dense layers
    units = sum(m.numel() for m in masks.values()) + dense
    zeros = sum(int((~m.bool()).sum()) for m in masks.values())
    # the target up to each layer's rounding of density * size to whole weights
    assert abs(zeros - sparsity * units) <= len(masks)
    weights = checkpoint['state_dict']
    for name, mask in masks.items():
        weight = weights[name]
        assert weight.shape == mask.shape  # SLaK's masks are element-wise
        # every masked weight is exactly zero in the saved checkpoint
        assert bool((weight[~mask.bool()] == 0).all()), name
    return states, checkpoint


@pytest.mark.parametrize('growth', ['gradient', 'random'])
def test_sparse_slak_trains_identically_on_two_processes(tmp_path, demo_data, growth):
    cfg = sparse_imagenet_config(tmp_path, demo_data, growth)
    work = str(tmp_path / 'work')
    run_dist('dist_train.sh', cfg, '--work-dir', work)
    states, _ = check_sparse_run(work)
    for update in states[0]['updates']:
        assert any(not torch.equal(update['before'][n], update['after'][n])
                   for n in update['before'])  # masks did change
    if growth == 'gradient':
        # Gradient growth used the all-reduced gradient: the same on both ranks (their local
        # gradients differ, see the losses), so both computed the same new masks on their own,
        # before rank 0's masks were broadcast.
        for mine, theirs in zip(states[0]['updates'], states[1]['updates']):
            assert mine['step'] == theirs['step'] and mine['grads']
            for name in mine['grads']:
                assert torch.equal(mine['grads'][name], theirs['grads'][name]), name
                assert torch.equal(mine['after'][name], theirs['after'][name]), name
            # and the grown units beat every candidate left out: the old zeros and the
            # just-pruned units (the official engine grows among both)
            for name, grad in mine['grads'].items():
                before, after = mine['before'][name].flatten(), mine['after'][name].flatten()
                grown = after & ~before
                if grown.any():
                    score = grad.abs().flatten().float() if grad.dim() else grad
                    candidates = score[~after]
                    if candidates.numel():
                        assert score[grown].min() >= candidates.max()
        # --resume under 2 processes continues from epoch 3 to epoch 4
        proc = run_dist('dist_train.sh', cfg, '--work-dir', work, '--resume',
                        '--cfg-options', 'train_cfg.max_epochs=4')
        assert 'resumed' in (proc.stdout + proc.stderr).lower()
        assert osp.isfile(osp.join(work, 'epoch_4.pth'))
        resumed = rank_states(work)
        assert_ranks_identical(resumed, 'params')
        assert_ranks_identical(resumed, 'masks')


def test_kernel_warehouse_temperatures_and_warehouses_agree_across_ranks(tmp_path, demo_data):
    cfg = write_config(tmp_path, f'{CONFIGS}/kw1x_resnet18_in1k.py', tiny_imagenet_body(
        demo_data['imagenet']) + PROBE + textwrap.dedent('''
        model = dict(backbone=dict(base_channels=8), head=dict(in_channels=64))
        train_cfg = dict(max_epochs=2)
        custom_hooks = [dict(type='mmlk.KWTemperatureHook', epochs=1),
                        dict(type='mmlk.RankStateProbe')]
        '''))
    work = str(tmp_path / 'work')
    run_dist('dist_train.sh', cfg, '--work-dir', work)
    states = rank_states(work)
    assert states[0]['losses'] != states[1]['losses']
    assert_ranks_identical(states, 'params')  # warehouses included
    warehouses = [n for n in states[0]['params'] if n.startswith('backbone.warehouse_manager')]
    assert len(warehouses) == 4
    temps = [s['temperatures'] for s in states]
    assert temps[0] == temps[1] and set(temps[0]) == {0.0}  # annealed to 0 after epoch 1


def _metrics(path):
    return json.load(open(path))


def test_mmseg_trains_on_two_processes_and_dist_test_matches_single(tmp_path, demo_data):
    cfg = tiny_seg_config(tmp_path, demo_data['ade20k'], extra='''
        model = dict(backbone=dict(norm_cfg=dict(type='SyncBN', requires_grad=True)),
                     decode_head=dict(norm_cfg=dict(type='SyncBN', requires_grad=True)))
        ''')
    work = str(tmp_path / 'work')
    proc = run_dist('dist_train.sh', cfg, '--work-dir', work)
    assert 'SyncBN setting(s) of the config use BN instead' in proc.stdout + proc.stderr
    checkpoint = osp.join(work, 'iter_2.pth')
    run_dist('dist_test.sh', cfg, checkpoint, '--work-dir', str(tmp_path / 'dist_test'))
    run_tool('tools/test.py', cfg, checkpoint, '--work-dir', str(tmp_path / 'single_test'))
    dist = _metrics(tmp_path / 'dist_test' / 'metrics.json')
    single = _metrics(tmp_path / 'single_test' / 'metrics.json')
    assert 'mIoU' in dist and dist == pytest.approx(single, abs=1e-6)


def test_mmdet_trains_on_two_processes_and_dist_test_matches_single(tmp_path, demo_data):
    cfg = tiny_voc_config(tmp_path, demo_data['voc'], extra='''
        train_dataloader = dict(batch_size=1)
        train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=3,
                         val_interval=100)
        default_hooks = dict(checkpoint=dict(by_epoch=False, interval=3))
        param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
        ''')
    work = str(tmp_path / 'work')
    run_dist('dist_train.sh', cfg, '--work-dir', work)
    checkpoint = osp.join(work, 'iter_3.pth')
    run_dist('dist_test.sh', cfg, checkpoint, '--work-dir', str(tmp_path / 'dist_test'),
             '--out', str(tmp_path / 'dist.pkl'))
    run_tool('tools/test.py', cfg, checkpoint, '--work-dir', str(tmp_path / 'single_test'),
             '--out', str(tmp_path / 'single.pkl'))
    dist = _metrics(tmp_path / 'dist_test' / 'metrics.json')
    single = _metrics(tmp_path / 'single_test' / 'metrics.json')
    assert 'pascal_voc/mAP' in dist and dist == pytest.approx(single, abs=1e-6)
    # the predictions themselves, image by image (a 3-iteration detector has mAP ~0)
    import pickle
    dist_pred = pickle.load(open(tmp_path / 'dist.pkl', 'rb'))
    single_pred = pickle.load(open(tmp_path / 'single.pkl', 'rb'))
    assert len(dist_pred) == len(single_pred) == 3
    for a, b in zip(dist_pred, single_pred):
        assert a['img_path'] == b['img_path']
        assert len(a['pred_instances']['scores']) > 0
        torch.testing.assert_close(a['pred_instances']['bboxes'], b['pred_instances']['bboxes'])
        torch.testing.assert_close(a['pred_instances']['scores'], b['pred_instances']['scores'])


def test_launcher_without_its_environment_is_a_clear_message(tmp_path):
    proc = run_tool('tools/train.py', f'{CONFIGS}/slak_t_in1k.py', '--launcher', 'pytorch',
                    '--work-dir', str(tmp_path), check=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert 'RANK' in proc.stderr and 'tools/dist_train.sh' in proc.stderr


def test_launcher_environments(monkeypatch):
    from mmlk.utils.distributed import LauncherEnvironmentError, launcher_environment
    slurm = dict(SLURM_PROCID='5', SLURM_NTASKS='8', SLURM_NODELIST='node[1-2]',
                 SLURM_LOCALID='1', MASTER_ADDR='10.0.0.1')
    assert launcher_environment('slurm', slurm) == dict(
        RANK='5', LOCAL_RANK='1', WORLD_SIZE='8', MASTER_ADDR='10.0.0.1', MASTER_PORT='29500')
    mpi = dict(OMPI_COMM_WORLD_RANK='3', OMPI_COMM_WORLD_SIZE='4',
               OMPI_COMM_WORLD_LOCAL_RANK='1', MASTER_ADDR='h', MASTER_PORT='1234')
    assert launcher_environment('mpi', mpi)['RANK'] == '3'
    with pytest.raises(LauncherEnvironmentError, match='SLURM_PROCID.*slurm_train.sh'):
        launcher_environment('slurm', {})
    with pytest.raises(ValueError, match='launcher must be one of'):
        launcher_environment('torchrun', {})


def test_cuda_machines_are_left_to_mmengine(monkeypatch):
    """With CUDA nothing changes: no process group, no wrapper settings, SyncBN kept."""
    from mmengine.config import Config
    from mmlk.utils.distributed import setup_distributed
    cfg = Config(dict(launcher='pytorch', model=dict(norm_cfg=dict(type='SyncBN'))))
    for key, value in dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
                           MASTER_PORT=str(free_port())).items():
        monkeypatch.setenv(key, value)
    setup_distributed(cfg, cuda=True)
    assert not torch.distributed.is_initialized()
    assert 'model_wrapper_cfg' not in cfg and cfg.model.norm_cfg.type == 'SyncBN'
