"""Faults and hostile input, round two (README, "Reliability"): a failed save never costs the
last checkpoint, resume never silently restarts or wanders into another work dir, NaN stops
a run before it reaches weights, masks or checkpoints, corrupted and foreign files are named,
inputs are never overwritten, temporary files cannot be redirected, one run per work dir."""
import errno
import math
import os
import os.path as osp
import shutil
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from conftest import (CONFIGS, REPO, TINY_ARCH, TINY_BACKBONE, TINY_DIMS, run_tool,
                      tiny_imagenet_body, tiny_seg_config, write_config)
from mmlk.core.checkpoint_io import (CheckpointReadError, atomic_write_bytes, check_checkpoint_file)


def load(path):
    return torch.load(path, map_location='cpu', weights_only=False)


def train(cfg, *args, check=True, extra_path=None):
    env = dict(os.environ, PYTHONPATH=REPO + (f':{extra_path}' if extra_path else ''),
               OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, 'tools/train.py', cfg, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stdout[-3000:] + proc.stderr[-5000:])
    return proc


# ------------------------------------------------------------------ 1. saves that fail
FAILING_SAVE_HOOK = '''
import errno
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class FullDiskAtIterHook(Hook):
    """The disk fills up while checkpoint ``iter`` is being written."""

    def __init__(self, iter):
        self.iter = iter

    def before_save_checkpoint(self, runner, checkpoint):
        if checkpoint['meta']['iter'] == self.iter:
            raise OSError(errno.ENOSPC, 'No space left on device')
'''


def test_a_failed_save_keeps_the_previous_checkpoint_with_max_keep_ckpts_1(tmp_path, demo_data):
    (tmp_path / 'full_disk.py').write_text(FAILING_SAVE_HOOK)
    cfg = tiny_seg_config(tmp_path, demo_data['ade20k'], extra='''
        custom_imports = dict(imports=['full_disk'], allow_failed_imports=False)
        custom_hooks = [dict(type='FullDiskAtIterHook', iter=3)]
        train_cfg = dict(max_iters=4, val_interval=100)
        default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=1))
        ''')
    work = tmp_path / 'work'
    proc = train(cfg, '--work-dir', str(work), check=False, extra_path=str(tmp_path))
    assert proc.returncode != 0 and 'No space left on device' in proc.stderr
    # mmengine deleted iter_2.pth before writing iter_3.pth: here it is still there, complete
    names = sorted(n for n in os.listdir(work) if n.endswith('.pth'))
    assert names == ['iter_2.pth'], names
    assert load(work / 'iter_2.pth')['meta']['iter'] == 2
    assert (work / 'last_checkpoint').read_text().strip().endswith('iter_2.pth')
    # and --resume continues from it (the hook is gone: the disk has room again)
    cfg2 = tiny_seg_config(tmp_path, demo_data['ade20k'], name='cfg2.py', extra='''
        train_cfg = dict(max_iters=4, val_interval=100)
        default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=1))
        ''')
    proc = train(cfg2, '--work-dir', str(work), '--resume')
    assert 'resumed epoch: 0, iter: 2' in proc.stdout + proc.stderr
    assert sorted(n for n in os.listdir(work) if n.endswith('.pth')) == ['iter_4.pth']


def test_deferred_removals_happen_only_after_a_complete_save(tmp_path):
    from mmengine.fileio.backends import LocalBackend
    from mmlk.engine.hooks import AtomicCheckpointHook
    hook = AtomicCheckpointHook(interval=1)
    hook.file_backend = LocalBackend()
    old, best = tmp_path / 'iter_1.pth', tmp_path / 'best_acc_iter_1.pth'
    old.write_bytes(b'old')
    best.write_bytes(b'best')

    def failing_save():
        hook.file_backend.remove(str(old))  # what mmengine does first
        hook.file_backend.remove(str(best))
        raise OSError(errno.ENOSPC, 'No space left on device')
    with pytest.raises(OSError):
        hook._removing_after(failing_save)
    assert old.read_bytes() == b'old' and best.read_bytes() == b'best'

    def save():
        hook.file_backend.remove(str(old))
        assert old.exists()  # not yet: the new file is being written
        (tmp_path / 'iter_2.pth').write_bytes(b'new')
    hook._removing_after(save)
    assert not old.exists() and best.exists()
    assert isinstance(hook.file_backend, LocalBackend)


def test_resume_never_silently_restarts_over_broken_checkpoints(tmp_path, demo_data):
    cfg = tiny_seg_config(tmp_path, demo_data['ade20k'])
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'iter_2.pth').write_bytes(b'PK\x03\x04 half')
    (work / '.iter_4.pth.partial-1-abc').write_bytes(b'PK')
    (work / 'last_checkpoint').write_text(str(work / 'iter_4.pth'))
    proc = train(cfg, '--work-dir', str(work), '--resume', check=False)
    assert proc.returncode != 0
    assert 'holds checkpoint files but none is complete' in proc.stderr
    assert 'iter_2.pth' in proc.stderr and 'Traceback' not in proc.stderr
    assert not (work / 'iter_1.pth').exists()  # nothing trained from the start


def test_resume_stays_in_its_work_dir(tmp_path):
    from mmlk.utils import resolve_resume_checkpoint
    original, copy = tmp_path / 'original', tmp_path / 'copy'
    original.mkdir()
    torch.save({'meta': {'iter': 8}}, original / 'iter_8.pth')
    (original / 'last_checkpoint').write_text(str(original / 'iter_8.pth'))
    shutil.copytree(original, copy)
    # the pointer still names the original's file: the copy's own file is used
    assert resolve_resume_checkpoint(str(copy)) == str(copy / 'iter_8.pth')
    os.remove(copy / 'iter_8.pth')
    torch.save({'meta': {'iter': 4}}, copy / 'iter_4.pth')
    with pytest.raises(CheckpointReadError, match=r'names .*original/iter_8.pth, which is '
                       r'outside the work dir .*--resume .*original/iter_8.pth'):
        resolve_resume_checkpoint(str(copy))


# ------------------------------------------------------------------ 2./3. inputs kept
def test_demo_data_refuses_to_overwrite_a_real_dataset(tmp_path):
    voc = tmp_path / 'data' / 'VOCdevkit' / 'VOC2007' / 'ImageSets' / 'Main'
    voc.mkdir(parents=True)
    (voc / 'trainval.txt').write_text('000005\n')
    proc = run_tool('tools/make_demo_data.py', 'voc', '--out', str(tmp_path / 'data'),
                    check=False)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert 'not mmlk demo data' in proc.stderr and '--force' in proc.stderr
    assert (voc / 'trainval.txt').read_text() == '000005\n'
    # an empty folder or an earlier demo dataset is written as before
    run_tool('tools/make_demo_data.py', 'voc', '--out', str(tmp_path / 'demo'), '--num-train',
             '2', '--num-val', '1')
    run_tool('tools/make_demo_data.py', 'voc', '--out', str(tmp_path / 'demo'), '--num-train',
             '2', '--num-val', '1')
    run_tool('tools/make_demo_data.py', 'voc', '--out', str(tmp_path / 'data'), '--force',
             '--num-train', '2', '--num-val', '1')
    assert (voc / 'trainval.txt').read_text() != '000005\n'


def test_reparameterize_never_writes_over_its_inputs(tmp_path):
    cfg = tmp_path / 'train_cfg.py'
    shutil.copy(osp.join(CONFIGS, 'slak_t_in1k.py'), cfg)
    before = cfg.read_text()
    ckpt = tmp_path / 'ckpt.pth'
    ckpt.write_bytes(b'unused')
    proc = run_tool('tools/reparameterize.py', str(cfg), str(ckpt), str(tmp_path / 'train_cfg.pth'),
                    check=False)
    assert proc.returncode != 0 and 'is the config given as input' in proc.stderr
    assert cfg.read_text() == before
    existing = tmp_path / 'deploy.py'
    existing.write_text('# mine\n')
    proc = run_tool('tools/reparameterize.py', str(cfg), str(ckpt), str(tmp_path / 'deploy.pth'),
                    check=False)
    assert proc.returncode != 0 and 'exists; pass --overwrite' in proc.stderr
    assert existing.read_text() == '# mine\n'


# ------------------------------------------------------------------ 4./8. files that lie
def flip_bytes_inside_a_tensor(path, count=16):
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)  # the biggest tensor
    with open(path, 'r+b') as f:
        f.seek(info.header_offset + 30 + len(info.filename) + len(info.extra) + 64)
        data = bytearray(f.read(count))
        f.seek(-count, 1)
        f.write(bytes(b ^ 0xFF for b in data))


@pytest.fixture(scope='module')
def imagenet_cfg(tmp_path_factory, demo_data):
    tmp = tmp_path_factory.mktemp('faults')
    model = f'model = dict({TINY_BACKBONE}, head=dict(in_channels={TINY_DIMS[-1]}))\n'
    return write_config(tmp, f'{CONFIGS}/slak_t_in1k.py',
                        tiny_imagenet_body(demo_data['imagenet']) + model)


@pytest.fixture(scope='module')
def trained(tmp_path_factory, imagenet_cfg):
    work = tmp_path_factory.mktemp('trained')
    train(imagenet_cfg, '--work-dir', str(work))
    return work / 'epoch_1.pth'


def test_a_bit_flipped_checkpoint_is_refused_by_its_crc(tmp_path, imagenet_cfg, trained):
    path = tmp_path / 'epoch_1.pth'
    shutil.copy(trained, path)
    check_checkpoint_file(str(path))  # intact
    flip_bytes_inside_a_tensor(path)
    with pytest.raises(CheckpointReadError, match='corrupted: the record .* does not match'):
        check_checkpoint_file(str(path))
    proc = run_tool('tools/test.py', imagenet_cfg, str(path), '--work-dir', str(tmp_path / 'w'),
                    check=False)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert f'{path}: corrupted' in proc.stderr


class NotInstalled:  # pickled by reference to a module the loading process cannot import
    pass


@pytest.mark.parametrize('kind', ['legacy_half', 'foreign_zip', 'missing_module'])
def test_unreadable_checkpoints_are_one_line_errors_in_every_tool(tmp_path, imagenet_cfg,
                                                                  trained, kind):
    path = tmp_path / 'bad.pth'
    if kind == 'legacy_half':
        torch.save(load(trained), path, _use_new_zipfile_serialization=False)
        path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    elif kind == 'foreign_zip':
        with zipfile.ZipFile(path, 'w') as archive:
            archive.writestr('readme.txt', 'not a checkpoint')
    else:
        script = textwrap.dedent(f'''
            import sys, torch
            sys.modules['site_only_module'] = type(sys)('site_only_module')
            class Thing: pass
            Thing.__module__ = 'site_only_module'
            sys.modules['site_only_module'].Thing = Thing
            torch.save({{'state_dict': {{}}, 'meta': Thing()}}, {str(path)!r})''')
        subprocess.run([sys.executable, '-c', script], check=True)
    for args in [('tools/test.py', imagenet_cfg, str(path)),
                 ('tools/train.py', imagenet_cfg, '--resume', str(path))]:
        proc = run_tool(*args, '--work-dir', str(tmp_path / 'w'), check=False)
        assert proc.returncode != 0, args
        assert 'Traceback' not in proc.stderr, (args, proc.stderr[-3000:])
        assert f'error: {path}' in proc.stderr, (args, proc.stderr[-2000:])


def test_resume_without_a_path_skips_a_truncated_newest_file(tmp_path, imagenet_cfg, trained):
    from mmlk.utils import resolve_resume_checkpoint
    work = tmp_path / 'work'
    work.mkdir()
    shutil.copy(trained, work / 'epoch_1.pth')
    newest = work / 'epoch_2.pth'
    newest.write_bytes(trained.read_bytes()[:1000])
    (work / 'last_checkpoint').write_text(str(newest))
    assert resolve_resume_checkpoint(str(work)) == str(work / 'epoch_1.pth')


# ------------------------------------------------------------------ 6. NaN
NAN_HOOK = '''
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class NaNBatchHook(Hook):
    """The batch of iteration ``iter`` (1-based) makes the loss NaN."""

    def __init__(self, iter):
        self.iter = iter

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        if getattr(self, 'handle', None) is not None:
            self.handle.remove()
            self.handle = None
        if runner.iter + 1 == self.iter:
            self.handle = model.backbone.register_forward_hook(
                lambda m, i, out: tuple(o * float('nan') for o in out))
'''


def sparse_nan_config(tmp_path, imagenet_cfg, action):
    (tmp_path / 'nan_batch.py').write_text(NAN_HOOK)
    guard = f"dict(type='mmlk.NonFiniteGuardHook', action={action!r}), " if action else ''
    return write_config(tmp_path, imagenet_cfg, f'''
        custom_imports = dict(imports=['mmlk', 'nan_batch'], allow_failed_imports=False)
        train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=4, val_interval=100)
        param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
        default_hooks = dict(checkpoint=dict(interval=1, by_epoch=False))
        custom_hooks = [{guard}dict(type='NaNBatchHook', iter=3),
            dict(type='mmlk.SparseTrainingHook', sparsity=0.4, init='ERK', update_interval=1,
                 prune_rate=0.5),
            dict(type='EMAHook', ema_type='mmlk.SparseEMA', momentum=0.5)]
        ''', name=f'nan_{action}.py')


def test_a_nan_batch_stops_the_run_before_masks_ema_or_checkpoints_see_it(tmp_path,
                                                                         imagenet_cfg):
    cfg = sparse_nan_config(tmp_path, imagenet_cfg, None)  # the tools install the guard
    work = tmp_path / 'work'
    proc = train(cfg, '--work-dir', str(work), check=False, extra_path=str(tmp_path))
    assert proc.returncode != 0
    assert 'non-finite gradient (NaN/inf) at iteration 3' in proc.stderr, proc.stderr[-3000:]
    assert not (work / 'iter_3.pth').exists()
    ckpt = load(work / 'iter_2.pth')
    for key in ('state_dict', 'ema_state_dict'):
        assert all(torch.isfinite(v).all() for v in ckpt[key].values()
                   if v.is_floating_point()), key
    masks = ckpt['sparse_training']['masks']
    for name, mask in masks.items():
        weight = ckpt['state_dict'][name]
        assert torch.count_nonzero(weight[~mask]) == 0  # the invariant held


def test_skip_mode_drops_the_nan_step_and_finishes(tmp_path, imagenet_cfg):
    cfg = sparse_nan_config(tmp_path, imagenet_cfg, 'skip')
    work = tmp_path / 'work'
    proc = train(cfg, '--work-dir', str(work), extra_path=str(tmp_path))
    assert 'non-finite gradient (NaN/inf) at iteration 3' in proc.stdout + proc.stderr
    assert 'step skipped (1 so far)' in proc.stdout + proc.stderr
    ckpt = load(work / 'iter_4.pth')
    assert all(torch.isfinite(v).all() for v in ckpt['state_dict'].values()
               if v.is_floating_point())


def test_sparse_engine_scoring_is_nan_safe():
    from mmlk.sparsity import SparseEngine, select_sparse_targets
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 32), nn.Linear(32, 8))
    engine = SparseEngine(select_sparse_targets(net, scope='model'), sparsity=0.5,
                          init='uniform', growth='gradient', prune_rate=0.5, total_steps=10)
    engine.init_masks()
    net(torch.randn(4, 16)).sum().backward()
    t = engine.targets[0]
    before = t.mask.clone()
    with torch.no_grad():
        t.param[before] = torch.where(torch.rand(int(before.sum())) < 0.2, float('nan'),
                                      t.param[before])
        t.param.grad[:] = torch.where(torch.rand_like(t.param) < 0.3, float('nan'),
                                      t.param.grad)
    active = int(before.sum())
    engine.update()
    k = math.ceil(0.5 * active)
    assert int(t.mask.sum()) == active  # exact count
    pruned = before & ~t.mask
    assert 0 < int(pruned.sum()) <= k
    # every NaN weight that is still active was regrown among the just-pruned: none kept
    assert torch.isfinite(t.param.detach()[t.mask & ~before]).all()
    assert torch.count_nonzero(t.param.detach()[~t.mask]) == 0  # pruned ones are exactly 0


# ------------------------------------------------------------------ 9./10. options
@pytest.mark.parametrize('build, message', [
    (lambda: __import__('mmlk.engine.hooks', fromlist=['x']).SparseTrainingHook(
        prune_rate=float('nan')), r'prune_rate must be in \[0, 1\), got nan'),
    (lambda: __import__('mmlk.engine.hooks', fromlist=['x']).SparseTrainingHook(
        final_prune_rate=float('nan')), 'final_prune_rate must be in'),
    (lambda: __import__('mmlk.engine.hooks', fromlist=['x']).SparseTrainingHook(
        sparsity=float('nan')), 'sparsity must be in'),
    (lambda: __import__('mmlk.engine.hooks', fromlist=['x']).SparseTrainingHook(sparsity=0),
     r'sparsity must be in \(0, 1\), got 0'),
    (lambda: __import__('mmlk.engine.hooks', fromlist=['x']).SparseTrainingHook(tie=5),
     'tie must be a regular expression or a list'),
    (lambda: __import__('mmlk.engine.hooks', fromlist=['x']).KWTemperatureHook(
        iters=10, start=float('nan')), 'start .* got nan'),
    (lambda: __import__('mmlk.models.backbones', fromlist=['x']).SLaK(
        TINY_ARCH, drop_path_rate=float('nan')), r'drop_path_rate must be in \[0, 1\), got nan'),
])
def test_nan_and_out_of_range_options_fail_when_built(build, message):
    with pytest.raises((TypeError, ValueError), match=message):
        build()


def test_a_layer_pruned_empty_at_init_keeps_one_unit_and_is_named():
    from mmlk.sparsity import SparseEngine, select_sparse_targets
    net = nn.Sequential(nn.Linear(4, 4), nn.Linear(64, 64))
    engine = SparseEngine(select_sparse_targets(net, scope='model'), sparsity=0.97,
                          init='uniform', update_interval=1, total_steps=10)
    with pytest.warns(UserWarning, match=r"no weight at all: 0\.weight\. Each keeps 1 unit"):
        engine.init_masks()
    assert [int(t.mask.sum()) for t in engine.targets] == [1, round(0.03 * 4096)]


# ------------------------------------------------------------------ 11./12. files and runs
def test_atomic_write_cannot_be_redirected_by_a_planted_symlink(tmp_path):
    victim = tmp_path / 'victim.txt'
    victim.write_text('precious')
    target = tmp_path / 'ckpt.pth'
    for pid in range(os.getpid() - 2, os.getpid() + 3):  # every name the old scheme used
        os.symlink(victim, tmp_path / f'.ckpt.pth.partial-{pid}')
    atomic_write_bytes(b'data', str(target))
    assert victim.read_text() == 'precious' and target.read_bytes() == b'data'
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_stale_partial_files_of_dead_writers_are_cleaned_up(tmp_path):
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f'.iter_2.pth.partial-{dead}-abc123'
    stale.write_bytes(b'half')
    live = tmp_path / f'.iter_3.pth.partial-{os.getpid()}-def456'
    live.write_bytes(b'in progress')
    atomic_write_bytes(b'x', str(tmp_path / 'iter_4.pth'))
    assert not stale.exists() and live.exists()


def test_a_second_run_in_the_same_work_dir_is_refused(tmp_path, demo_data):
    work = tmp_path / 'work'
    work.mkdir()
    holder = subprocess.Popen([sys.executable, '-c', textwrap.dedent(f'''
        import fcntl, os, sys, time
        fd = os.open({str(work / '.mmlk-train.lock')!r}, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        print('locked', flush=True)
        time.sleep(120)''')], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        cfg = tiny_seg_config(tmp_path, demo_data['ade20k'])
        proc = train(cfg, '--work-dir', str(work), check=False)
        assert proc.returncode != 0 and 'Traceback' not in proc.stderr
        assert f'is in use by another training run (pid {holder.pid})' in proc.stderr
        assert not any(n.endswith('.pth') for n in os.listdir(work))
    finally:
        holder.kill()
        holder.wait()
    # the lock dies with its holder: the work dir is free again
    train(cfg, '--work-dir', str(work), '--cfg-options', 'train_cfg.max_iters=1')


def test_export_onnx_publishes_only_a_verified_file(tmp_path, trained, imagenet_cfg):
    pytest.importorskip('onnxruntime')
    out = tmp_path / 'model.onnx'
    proc = run_tool('tools/deployment/export_onnx.py', imagenet_cfg, str(trained), str(out),
                    # a tolerance no export meets: the check fails whatever the error
                    '--shape', '64', '64', '--tol', '-1', check=False)
    assert proc.returncode != 0 and 'nothing written' in proc.stderr
    assert 'wrote' not in proc.stdout
    assert os.listdir(tmp_path) == []  # neither the file nor its temporary


# ------------------------------------------------------------------ 7. bad data named
def check(cfg, *splits):
    return run_tool('tools/check_dataset.py', cfg, '--splits', *(splits or ('train', )),
                    '--no-progress', check=False)


def test_label_maps_mmseg_would_misread_are_named(tmp_path, demo_data):
    from PIL import Image
    root = tmp_path / 'ade'
    shutil.copytree(demo_data['ade20k'], root)
    labels = sorted((root / 'annotations' / 'training').iterdir())
    sixteen = np.array(Image.open(labels[0])).astype(np.uint16)
    sixteen[:4, :4] = 304  # read as 304 % 256 = 48 by mmseg
    Image.fromarray(sixteen).save(labels[0])
    assert Image.open(labels[0]).mode.startswith('I')
    grey = np.array(Image.open(labels[1]))
    Image.fromarray(np.stack([grey] * 3, -1)).save(labels[1])  # an RGB label map
    cfg = tiny_seg_config(tmp_path, str(root))
    proc = check(cfg)
    assert proc.returncode == 1
    assert f'seg_map_path={labels[0]}' in proc.stdout and 'values up to 304' in proc.stdout
    assert f'seg_map_path={labels[1]}' in proc.stdout and 'colour (RGB) label map' in proc.stdout
    proc = train(cfg, '--work-dir', str(tmp_path / 'w'), check=False)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert str(labels[0]) in proc.stderr or str(labels[1]) in proc.stderr


def test_classification_labels_outside_the_classes_are_named(tmp_path, demo_data, imagenet_cfg):
    root = tmp_path / 'imagenet'
    shutil.copytree(demo_data['imagenet'], root)
    meta = root / 'meta' / 'train.txt'
    lines = meta.read_text().splitlines()
    first, second = lines[0].split()[0], lines[1].split()[0]
    lines[0], lines[1] = f'{first} 1500', f'{second} -3'
    meta.write_text('\n'.join(lines) + '\n')
    cfg = write_config(tmp_path, imagenet_cfg, f'''
        train_dataloader = dict(dataset=dict(data_root={str(root)!r}))''', name='cls.py')
    proc = check(cfg)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert first in proc.stdout and 'class label [1500] is outside' in proc.stdout
    assert second in proc.stdout and 'class label [-3]' in proc.stdout
    proc = train(cfg, '--work-dir', str(tmp_path / 'w'), check=False)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert 'is outside the' in proc.stderr


@pytest.fixture
def voc_copy(tmp_path, demo_data):
    root = tmp_path / 'VOCdevkit'
    shutil.copytree(demo_data['voc'], root)
    return root


def voc_cfg(tmp_path, root):
    from conftest import tiny_voc_config
    return tiny_voc_config(tmp_path, str(root))


def test_voc_annotation_problems_are_named(tmp_path, voc_copy):
    xmls = sorted((voc_copy / 'VOC2007' / 'Annotations').glob('*.xml'))
    text = xmls[0].read_text()
    first_name = text.split('<name>')[1].split('</name>')[0]
    xmls[0].write_text(text.replace(f'<name>{first_name}</name>', '<name>persn</name>', 1))
    text = xmls[1].read_text()
    box = text.split('<bndbox>')[1].split('</bndbox>')[0]
    xmls[1].write_text(text.replace(box, '<xmin>500</xmin><ymin>500</ymin><xmax>600</xmax>'
                                    '<ymax>600</ymax>', 1))
    cfg = voc_cfg(tmp_path, voc_copy)
    proc = check(cfg)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert f"{xmls[0]}: class 'persn' is not one of the dataset classes" in proc.stdout
    assert f'{xmls[1]}' in proc.stdout and 'lies entirely outside the' in proc.stdout
    # a truncated XML and an empty split are named, at check time and at training time
    xmls[2].write_text(xmls[2].read_text()[:40])
    for run in (lambda: check(cfg), lambda: train(cfg, '--work-dir', str(tmp_path / 'w'),
                                                  check=False)):
        proc = run()
        assert proc.returncode != 0 and 'Traceback' not in proc.stderr
        assert f'unparsable XML: {xmls[2]}' in proc.stdout + proc.stderr
    xmls[2].write_text(text)
    for split in ('VOC2007', 'VOC2012'):
        (voc_copy / split / 'ImageSets' / 'Main' / 'trainval.txt').write_text('')
    proc = train(cfg, '--work-dir', str(tmp_path / 'w2'), check=False)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert 'has no samples' in proc.stderr and 'trainval.txt' in proc.stderr


def test_coco_annotation_problems_are_named(tmp_path, demo_data):
    import json
    root = tmp_path / 'coco'
    shutil.copytree(demo_data['coco'], root)
    ann_path = root / 'annotations' / 'instances_train2017.json'
    ann = json.loads(ann_path.read_text())
    ann['annotations'][0]['category_id'] = 999
    image = next(i for i in ann['images'] if i['id'] == ann['annotations'][1]['image_id'])
    ann['annotations'][1]['bbox'] = [image['width'] + 10, 5, 20, 20]
    ann_path.write_text(json.dumps(ann))
    cfg = write_config(tmp_path, f'{CONFIGS}/mask_rcnn_slak_t_coco.py', f'''
        train_dataloader = dict(dataset=dict(data_root={str(root) + "/"!r}))
        ''')
    proc = check(cfg)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert 'category_id 999 is not in the file\'s categories' in proc.stdout
    assert 'lies entirely outside the' in proc.stdout
    ann_path.write_text(ann_path.read_text()[:200])  # truncated JSON
    proc = check(cfg)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert f'ann_file={ann_path}' in proc.stdout and 'JSONDecodeError' in proc.stdout
