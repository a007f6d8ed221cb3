"""No checkpoint runs code: one allow-list loader on every path, an explicit opt-in for
trusted pickles, safetensors (README, "Reliability")."""
import argparse
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from conftest import (CONFIGS, REPO, TINY_ARCH, TINY_BACKBONE, TINY_DIMS, run_tool,
                      tiny_imagenet_body, write_config)
from mmlk.core import safe_load
from mmlk.core.checkpoint_io import load_checkpoint_file
from mmlk.core.checkpoint_io import UnsafeCheckpointFileError


@pytest.fixture(params=['safe_globals', 'restricted_unpickler'])
def mechanism(request, monkeypatch):
    """Both ways the allow-list is enforced: torch >= 2.4's weights-only unpickler with
    safe_globals, and the restricted pickle module torch 2.1 gets."""
    if request.param == 'restricted_unpickler':
        monkeypatch.setattr(safe_load, 'HAS_SAFE_GLOBALS', False)
    return request.param


@pytest.fixture(scope='module')
def imagenet_cfg(tmp_path_factory, demo_data):
    tmp = tmp_path_factory.mktemp('safe')
    model = f'model = dict({TINY_BACKBONE}, head=dict(in_channels={TINY_DIMS[-1]}))\n'
    return write_config(tmp, f'{CONFIGS}/slak_t_in1k.py',
                        tiny_imagenet_body(demo_data['imagenet']) + model + '''
custom_hooks = [dict(type='mmlk.SparseTrainingHook', sparsity=0.4, init='ERK',
                     update_interval=2),
                dict(type='EMAHook', ema_type='mmlk.SparseEMA', momentum=0.5)]
default_hooks = dict(checkpoint=dict(save_best='accuracy/top1', rule='greater'))
''')


@pytest.fixture(scope='module')
def real_checkpoint(tmp_path_factory, imagenet_cfg):
    """What mmlk's training writes: message hub (HistoryBuffer, numpy), RNG states (numpy
    arrays), optimizer and scheduler state, sparse masks, EMA, best-checkpoint bookkeeping."""
    work = tmp_path_factory.mktemp('work')
    env = {k: v for k, v in os.environ.items() if k != 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'}
    subprocess.run([sys.executable, 'tools/train.py', imagenet_cfg, '--work-dir', str(work)],
                   cwd=REPO, env=dict(env, PYTHONPATH=REPO, OMP_NUM_THREADS='1'), check=True,
                   capture_output=True)
    return work / 'epoch_1.pth'


MARKER_PAYLOAD = '''
import os, sys, torch
class Payload:
    def __reduce__(self):
        return (os.system, ('touch ' + sys.argv[2],))
state = {'backbone.stem.weight': torch.zeros(1)}
torch.save({'state_dict': state, 'meta': {}, 'model': state, 'payload': Payload()}, sys.argv[1])
'''


@pytest.fixture
def hostile(tmp_path):
    """A checkpoint whose unpickling runs ``touch MARKER``."""
    path, marker = tmp_path / 'hostile.pth', tmp_path / 'PWNED'
    subprocess.run([sys.executable, '-c', MARKER_PAYLOAD, str(path), str(marker)], check=True)
    return path, marker


def test_real_checkpoints_load_through_the_allow_list(real_checkpoint, mechanism):
    checkpoint = safe_load.safe_torch_load(str(real_checkpoint), 'cpu')
    assert {'state_dict', 'message_hub', 'optimizer', 'rng_state', 'sparse_training',
            'ema_state_dict'} <= set(checkpoint)
    history = checkpoint['message_hub']['log_scalars']['train/loss']
    assert history.mean() > 0  # mmengine's HistoryBuffer, with its statistics methods
    assert checkpoint['rng_state'][0]['numpy'][1].dtype.name == 'uint32'  # numpy RNG state


def test_official_layout_with_an_argparse_namespace_loads(tmp_path, mechanism):
    path = tmp_path / 'official.pth'
    torch.save({'model': {'w': torch.ones(2)}, 'epoch': 299, 'args': argparse.Namespace(
        kernel_size=[51, 49, 47, 13, 5], model='SLaK_tiny')}, path)
    assert safe_load.safe_torch_load(str(path))['args'].model == 'SLaK_tiny'


def test_a_hostile_pickle_is_refused_before_it_runs(hostile, mechanism):
    path, marker = hostile
    with pytest.raises(safe_load.UnsafeCheckpointError,
                       match=r'hostile.pth: refused: it names the global posix.system.*'
                       r'--trust-checkpoint'):
        safe_load.safe_torch_load(str(path))
    with pytest.raises(UnsafeCheckpointFileError, match='posix.system'):
        load_checkpoint_file(str(path))
    # mmengine's own loader, after import mmlk (what inferencers and Runner.load_checkpoint use)
    from mmengine.runner import load_checkpoint
    with pytest.raises(UnsafeCheckpointFileError):
        load_checkpoint(torch.nn.Linear(1, 1), str(path))
    assert not marker.exists()


def test_getattr_is_resolved_only_for_history_buffer_methods(tmp_path, mechanism):
    import numpy as np
    script = f'''
import torch, numpy as np
class Sneaky:
    def __reduce__(self):
        return (getattr, (np.ndarray, 'tofile'))
torch.save({{'x': Sneaky()}}, {str(tmp_path / 's.pth')!r})'''
    subprocess.run([sys.executable, '-c', script], check=True)
    with pytest.raises(safe_load.UnsafeCheckpointError, match=r"getattr\(.*tofile"):
        safe_load.safe_torch_load(str(tmp_path / 's.pth'))
    assert np  # imported for the subprocess's pickle only


def test_every_tool_refuses_a_hostile_file_in_one_line(tmp_path, hostile, imagenet_cfg):
    path, marker = hostile
    runs = [
        ('tools/test.py', imagenet_cfg, str(path), '--work-dir', str(tmp_path / 'w1')),
        ('tools/train.py', imagenet_cfg, '--resume', str(path), '--work-dir', str(tmp_path / 'w2')),
        ('tools/train.py', imagenet_cfg, '--work-dir', str(tmp_path / 'w3'), '--cfg-options',
         f'load_from={path}'),
        ('tools/model_converters/slak_to_mmlk.py', str(path), str(tmp_path / 'o.pth')),
        ('tools/reparameterize.py', imagenet_cfg, str(path), str(tmp_path / 'd.pth')),
        ('tools/analysis/complexity.py', imagenet_cfg, str(path)),
    ]
    for args in runs:
        proc = run_tool(*args, check=False)
        assert proc.returncode != 0, args
        assert 'Traceback' not in proc.stderr, (args, proc.stderr[-2000:])
        assert f'error: {path}: refused: it names the global posix.system' in proc.stderr, (
            args, proc.stderr[-2000:])
        assert not marker.exists(), args
    # a Pretrained init_cfg refuses it too, and takes the explicit opt-in as a key
    from mmlk.models.backbones import SLaK
    with pytest.raises(UnsafeCheckpointFileError):
        SLaK(TINY_ARCH, init_cfg=dict(type='Pretrained', checkpoint=str(path))).init_weights()
    assert not marker.exists()


def test_trust_checkpoint_is_the_explicit_opt_in(tmp_path, hostile):
    path, marker = hostile
    proc = run_tool('tools/model_converters/slak_to_mmlk.py', str(path), str(tmp_path / 'o.pth'),
                    '--trust-checkpoint', check=False)
    assert marker.exists()  # the user said so: plain torch.load ran the file's code
    assert 'refused' not in proc.stderr


def test_no_tool_or_test_sets_the_global_switch():
    for folder in ('mmlk', 'tools', 'tests', 'benchmarks', 'scripts', 'configs'):
        for root, _, files in os.walk(osp.join(REPO, folder)):
            for name in files:
                if name.endswith(('.py', '.sh')) and name != 'test_safe_loading.py':
                    text = open(osp.join(root, name), errors='replace').read()
                    assert 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' not in text, name
    assert 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' not in open(osp.join(REPO, 'Makefile')).read()
    assert 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' not in os.environ


def test_resume_and_test_work_without_the_switch(tmp_path, real_checkpoint, imagenet_cfg):
    proc = run_tool('tools/test.py', imagenet_cfg, str(real_checkpoint), '--work-dir',
                    str(tmp_path / 'test'))
    assert 'accuracy/top1' in proc.stdout + proc.stderr
    work = tmp_path / 'resume'
    proc = run_tool('tools/train.py', imagenet_cfg, '--work-dir', str(work), '--resume',
                    str(real_checkpoint), '--cfg-options', 'train_cfg.max_epochs=2')
    assert 'resumed epoch: 1' in proc.stdout + proc.stderr


def test_safetensors_from_converters_and_reparameterize_load_everywhere(tmp_path, real_checkpoint,
                                                                       imagenet_cfg):
    from mmlk.models.backbones import KWResNet
    from mmlk.core.checkpoint_io import save_checkpoint_file
    # an official-layout KW file (with the official argparse.Namespace) -> .safetensors
    torch.manual_seed(0)
    state = {k: torch.randn_like(v) if v.is_floating_point() else v
             for k, v in KWResNet(18, '1x').state_dict().items()}
    state['fc.weight'], state['fc.bias'] = torch.randn(1000, 512), torch.randn(1000)
    official = tmp_path / 'kw1x_resnet18.pth'
    torch.save({'model': state, 'args': argparse.Namespace(model='kw_resnet18')}, official)
    refused = run_tool('tools/model_converters/kw_to_mmlk.py', str(official),
                       str(tmp_path / 'x.pth'), '--model', 'resnet18', '--budget', '1x',
                       '--format', 'safetensors', check=False)
    assert refused.returncode != 0 and '--format safetensors needs' in refused.stderr
    out = tmp_path / 'converted.safetensors'
    run_tool('tools/model_converters/kw_to_mmlk.py', str(official), str(out), '--model',
             'resnet18', '--budget', '1x', '--format', 'safetensors')
    loaded = load_checkpoint_file(str(out))
    assert torch.equal(loaded['state_dict']['head.fc.weight'], state['fc.weight'])
    assert loaded['meta']['converted_from'] == 'kw1x_resnet18.pth'
    backbone = KWResNet(18, '1x', out_indices=(3, ),
                        init_cfg=dict(type='Pretrained', checkpoint=str(out)))
    backbone.init_weights()  # a Pretrained init reads it
    assert torch.equal(backbone.warehouse_manager.weights[2], state['warehouse_manager.weights.2'])
    # a training checkpoint kept as safetensors, through tools/test.py (mmengine's loader)
    trained = torch.load(real_checkpoint, weights_only=False)
    weights = tmp_path / 'weights.safetensors'
    save_checkpoint_file(dict(state_dict=trained['state_dict'], meta=dict(epoch=1)), str(weights))
    proc = run_tool('tools/test.py', imagenet_cfg, str(weights), '--work-dir', str(tmp_path / 't'))
    assert 'accuracy/top1' in proc.stdout + proc.stderr
    # a deploy checkpoint as .safetensors, and its config
    deploy = tmp_path / 'deploy.safetensors'
    run_tool('tools/reparameterize.py', imagenet_cfg, str(real_checkpoint), str(deploy))
    proc = run_tool('tools/test.py', str(tmp_path / 'deploy.py'), '--work-dir',
                    str(tmp_path / 'd'))
    assert 'accuracy/top1' in proc.stdout + proc.stderr
    # a truncated safetensors file is named
    cut = tmp_path / 'cut.safetensors'
    cut.write_bytes(deploy.read_bytes()[:-100])
    proc = run_tool('tools/test.py', imagenet_cfg, str(cut), '--work-dir', str(tmp_path / 'c'),
                    check=False)
    assert proc.returncode != 0 and f'error: {cut}: truncated' in proc.stderr


def test_upstream_apis_load_an_mmlk_checkpoint_in_a_fresh_process(tmp_path, real_checkpoint,
                                                                  imagenet_cfg, hostile):
    """mmpretrain's get_model (mmengine's load_checkpoint inside) in a process that never
    imports mmlk by hand and has no TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD: the .pth hook makes
    mmlk's loader mmengine's, so the real checkpoint loads and the hostile one is refused."""
    path, marker = hostile
    script = f'''
import sys, torch
from mmpretrain import get_model
model = get_model({imagenet_cfg!r}, pretrained={str(real_checkpoint)!r}, device='cpu')
state = torch.load({str(real_checkpoint)!r}, weights_only=False)['state_dict']
assert torch.equal(model.head.fc.weight, state['head.fc.weight'])
print('loaded', type(model.backbone).__name__)
try:
    get_model({imagenet_cfg!r}, pretrained={str(path)!r}, device='cpu')
except Exception as err:
    print('refused:', type(err).__name__, str(err).splitlines()[0][:200])
'''
    env = {k: v for k, v in os.environ.items()
           if k not in ('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', 'PYTHONPATH')}
    proc = subprocess.run([sys.executable, '-c', script], cwd=str(tmp_path), env=dict(
        env, OMP_NUM_THREADS='1'), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'loaded SLaK' in proc.stdout
    assert 'refused: UnsafeCheckpointFileError' in proc.stdout and 'posix.system' in proc.stdout
    assert not marker.exists()
