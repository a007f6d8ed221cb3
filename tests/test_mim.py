"""``mmlk::`` config inheritance and mim, from a directory outside the repository, for the
editable install of the environment and for a non-editable one (the wheel's files)
(mmlk/config_prefix.py, setup.py, mmlk/.mim)."""
import glob
import os
import os.path as osp
import subprocess
import sys
import sysconfig
import textwrap
import zipfile

import pytest

from conftest import REPO, TINY_ARCH, TINY_DIMS

VENV_BIN = osp.dirname(sys.executable)
SITE = sysconfig.get_paths()['purelib']


def user_config(tmp_path, ade_root: str) -> str:
    """A user's project config inheriting mmlk's SLaK-T UperNet config, shrunk for a test."""
    path = tmp_path / 'project' / 'my_upernet.py'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(f'''
        _base_ = ['mmlk::slak/upernet_slak-t_4xb4-160k_ade20k-512x512.py']
        data_root = {ade_root!r}
        crop_size = (64, 64)
        model = dict(
            data_preprocessor=dict(size=crop_size),
            backbone=dict(arch=dict(_delete_=True, **{TINY_ARCH!r}), init_cfg=None,
                          norm_cfg=dict(type='BN')),
            decode_head=dict(in_channels={TINY_DIMS!r}, channels=16,
                             norm_cfg=dict(type='BN')),
            auxiliary_head=dict(in_channels={TINY_DIMS[2]}, channels=8,
                                norm_cfg=dict(type='BN')))
        pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', reduce_zero_label=True),
            dict(type='Resize', scale=crop_size, keep_ratio=False),
            dict(type='PackSegInputs'),
        ]
        train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                                dataset=dict(data_root=data_root, pipeline=pipeline))
        val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                              dataset=dict(data_root=data_root, pipeline=pipeline))
        test_dataloader = val_dataloader
        optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                             optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05))
        train_cfg = dict(max_iters=2, val_interval=2)
        param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
        default_hooks = dict(checkpoint=dict(interval=2))
        '''))
    return str(path)


def run(cmd, cwd, env=None, check=True):
    # No PYTHONPATH: mmlk must come from the installation, as for a user's project.
    env = dict({k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}, **(env or {}),
               OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f'{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n'
                             f'{proc.stderr[-6000:]}')
    return proc


RUNNER_SCRIPT = '''
import sys
from mmengine.config import Config
from mmengine.runner import Runner
cfg = Config.fromfile(sys.argv[1])
cfg.work_dir = sys.argv[2]
assert cfg.default_scope == 'mmseg' and cfg.model.backbone.type == 'mmlk.SLaK'
assert cfg.model.get('_scope_') != 'mmlk'  # built in mmseg's registry, not mmlk's
Runner.from_cfg(cfg).train()
'''


def test_editable_install_inherits_mmlk_configs_everywhere(tmp_path, demo_data):
    """The environment's editable install: tools/train.py, a plain Runner.from_cfg script,
    mmseg's own train script and ``mim train mmlk`` train a config that inherits
    ``mmlk::...`` from outside the repo."""
    assert osp.isfile(osp.join(SITE, 'mmlk-config-prefix.pth'))  # installed by setup.py
    cfg = user_config(tmp_path, demo_data['ade20k'])
    project = osp.dirname(cfg)
    script = tmp_path / 'project' / 'train_mine.py'
    script.write_text(RUNNER_SCRIPT)
    # 1. a plain script: no import of mmlk before Config.fromfile (the .pth hook does it)
    run([sys.executable, str(script), cfg, str(tmp_path / 'runner')], cwd=project)
    assert osp.isfile(tmp_path / 'runner' / 'iter_2.pth')
    # 2. mmlk's tools/train.py
    run([sys.executable, osp.join(REPO, 'tools', 'train.py'), cfg, '--work-dir',
         str(tmp_path / 'tool')], cwd=project)
    assert osp.isfile(tmp_path / 'tool' / 'iter_2.pth')
    # 3. mmseg's own train script (and `mim train mmsegmentation` with it)
    mmseg_train = osp.join(SITE, 'mmseg', '.mim', 'tools', 'train.py')
    run([sys.executable, mmseg_train, cfg, '--work-dir', str(tmp_path / 'mmseg')], cwd=project)
    assert osp.isfile(tmp_path / 'mmseg' / 'iter_2.pth')
    # 4. mim: the tools and configs under mmlk/.mim
    mim = osp.join(VENV_BIN, 'mim')
    proc = run([mim, 'train', 'mmlk', cfg, '--work-dir', str(tmp_path / 'mim')], cwd=project)
    assert osp.isfile(tmp_path / 'mim' / 'iter_2.pth'), proc.stdout[-2000:]
    proc = run([mim, 'test', 'mmlk', cfg, '--checkpoint', str(tmp_path / 'mim' / 'iter_2.pth'),
                '--work-dir', str(tmp_path / 'mim_test')], cwd=project)
    assert osp.isfile(tmp_path / 'mim_test' / 'metrics.json')
    search = run([mim, 'search', 'mmlk'], cwd=project).stdout
    for name in ('upernet_slak-t_4xb4-160k_ade20k-512x512', 'replknet-31b_32xb64_in1k',
                 'kw1x-convnext-t_32xb128_in1k'):
        assert name in search


def test_a_mmlk_config_path_that_does_not_exist_is_named(tmp_path):
    cfg = tmp_path / 'bad.py'
    cfg.write_text("_base_ = ['mmlk::slak/no_such_config.py']\n")
    proc = run([sys.executable, '-c', f'from mmengine.config import Config; '
                f'Config.fromfile({str(cfg)!r})'], cwd=str(tmp_path), check=False)
    assert proc.returncode != 0 and 'no_such_config.py' in proc.stderr


@pytest.fixture(scope='module')
def wheel_site(tmp_path_factory):
    """The files a non-editable ``pip install .`` puts in site-packages: the wheel, unpacked."""
    import shutil
    out = tmp_path_factory.mktemp('wheel')
    # Built from a clean copy (symlinks kept): an in-tree build leaves build/ behind, whose
    # stale files would enter the next wheel.
    source = out / 'source'
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(
        '.venv*', '.git', 'build', 'work_dirs', 'data', '*.egg-info', '__pycache__',
        'checkpoints'))
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
                    '--no-build-isolation', '-w', str(out), str(source)], check=True,
                   capture_output=True, timeout=600)
    wheel = glob.glob(str(out / 'mmlk-*.whl'))[0]
    site = out / 'site'
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return str(site)


def test_wheel_ships_configs_tools_model_index_and_the_startup_hook(wheel_site):
    mim = osp.join(wheel_site, 'mmlk', '.mim')
    assert osp.isfile(osp.join(wheel_site, 'mmlk-config-prefix.pth'))
    for relative in ('model-index.yml', 'configs/slak/metafile.yml',
                     'configs/slak/upernet_slak-t_4xb4-160k_ade20k-512x512.py',
                     'configs/_base_/models/upernet_slak.py', 'tools/train.py',
                     'tools/test.py', 'tools/dist_train.sh'):
        path = osp.join(mim, relative)
        assert osp.isfile(path) and not osp.islink(path), relative
    # the CPU weight-gradient kernel's source, compiled on first use
    assert osp.isfile(osp.join(wheel_site, 'mmlk', 'ops', 'depthwise', 'csrc',
                               'depthwise_grad_weight.cpp'))
    shipped = {osp.relpath(p, osp.join(mim, 'configs'))
               for p in glob.glob(osp.join(mim, 'configs', '**', '*.py'), recursive=True)}
    in_repo = {osp.relpath(p, osp.join(REPO, 'configs'))
               for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)}
    assert shipped == in_repo


def test_non_editable_install_inherits_from_its_own_mim_folder(tmp_path, wheel_site,
                                                               demo_data):
    """Python started with the wheel's site directory first (as a non-editable install): the
    ``mmlk::`` base is read from that copy, and the config trains."""
    cfg = user_config(tmp_path, demo_data['ade20k'])
    script = tmp_path / 'project' / 'train_wheel.py'
    script.write_text(textwrap.dedent(f'''
        import site, sys
        site.addsitedir({wheel_site!r})  # runs its mmlk-config-prefix.pth
        site.addsitedir({SITE!r})        # the OpenMMLab stack
        import mmlk
        assert mmlk.__file__.startswith({wheel_site!r}), mmlk.__file__
        from mmengine.config import Config
        cfg = Config.fromfile(sys.argv[1])
        base = [f for f in cfg._file2dict(sys.argv[1])[1].splitlines() if 'upernet_slak' in f]
        print('BASE', base)
        sys.argv = [sys.argv[0]] + sys.argv[1:]
        exec(open({str(tmp_path / "project" / "runner.py")!r}).read())
        '''))
    (tmp_path / 'project' / 'runner.py').write_text(RUNNER_SCRIPT)
    proc = run([sys.executable, '-S', str(script), cfg, str(tmp_path / 'wheel_run')],
               cwd=str(tmp_path / 'project'))
    assert f'{wheel_site}/mmlk/.mim/configs/slak' in proc.stdout
    assert osp.isfile(tmp_path / 'wheel_run' / 'iter_2.pth')


def test_non_editable_install_trains_through_its_tools_and_mim(tmp_path, wheel_site, demo_data):
    """With the wheel's copy of mmlk first on the path (PYTHONPATH; the environment's
    mmlk-config-prefix.pth then installs the hook from that copy), the wheel's own
    .mim/tools/train.py and ``mim train mmlk`` train the user config."""
    cfg = user_config(tmp_path, demo_data['ade20k'])
    project = osp.dirname(cfg)
    env = dict(PYTHONPATH=wheel_site)
    probe = run([sys.executable, '-c', 'import mmlk, mmlk.config_prefix as c; '
                 'print(mmlk.__file__); print(c.package_dir())'], cwd=project, env=env).stdout
    assert probe.split() == [f'{wheel_site}/mmlk/__init__.py', f'{wheel_site}/mmlk']
    train = osp.join(wheel_site, 'mmlk', '.mim', 'tools', 'train.py')
    run([sys.executable, train, cfg, '--work-dir', str(tmp_path / 'tool')], cwd=project, env=env)
    assert osp.isfile(tmp_path / 'tool' / 'iter_2.pth')
    proc = run([osp.join(VENV_BIN, 'mim'), 'train', 'mmlk', cfg, '--work-dir',
                str(tmp_path / 'mim')], cwd=project, env=env)
    assert osp.isfile(tmp_path / 'mim' / 'iter_2.pth')
    assert f'{wheel_site}/mmlk/.mim/tools/train.py' in proc.stdout + proc.stderr


HUB_SCRIPT = '''
import mmlk.config_prefix as prefix
from mmengine.hub import get_config, get_model
print('PACKAGE', prefix.package_dir())
cfg = get_config('mmlk::slak/slak-t_32xb128_in1k.py')
assert cfg.model.backbone.type == 'mmlk.SLaK' and cfg.default_scope == 'mmpretrain', cfg.model
for name in ('kernelwarehouse/kw1x-resnet18_32xb128_in1k.py',
             'slak/upernet_slak-t_4xb4-160k_ade20k-512x512.py',
             'kernelwarehouse/faster-rcnn_kw1x-resnet50_fpn_ms-3x_voc0712.py'):
    model = get_model('mmlk::' + name)
    print('BUILT', type(model).__module__.split('.')[0], type(model).__name__,
          type(model.backbone).__name__)
try:
    get_model('mmlk::slak/slak-t_32xb128_in1k.py', pretrained=True)
except ValueError as err:
    print('NO WEIGHTS', err)
'''


@pytest.mark.parametrize('install', ['editable', 'wheel'])
def test_mmengine_hub_reads_and_builds_mmlk_configs(tmp_path, install, request):
    """``mmengine.hub.get_config/get_model('mmlk::...')`` from a user's directory: the
    config comes from the installed package's ``.mim``, the model is built in the scope its
    config declares, and ``pretrained=True`` names the official file and the converter."""
    env = {}
    if install == 'wheel':
        env = dict(PYTHONPATH=request.getfixturevalue('wheel_site'))
    script = tmp_path / 'hub.py'
    script.write_text(HUB_SCRIPT)
    out = run([sys.executable, str(script)], cwd=str(tmp_path), env=env).stdout
    expected_dir = env.get('PYTHONPATH', REPO)
    assert f'PACKAGE {osp.join(expected_dir, "mmlk")}' in out
    assert 'BUILT mmpretrain ImageClassifier KWResNet' in out
    assert 'BUILT mmseg EncoderDecoder SLaK' in out
    assert 'BUILT mmdet FasterRCNN KWResNet' in out
    assert ('NO WEIGHTS mmlk publishes no weights for slak-t_32xb128_in1k: download '
            'the official checkpoint (https://drive.google.com') in out
    assert 'python tools/model_converters/slak_to_mmlk.py SLaK_tiny_checkpoint.pth' in out


def test_mim_metadata_answers_per_model_queries(tmp_path):
    """mim's own keys: a per-model ``Training Data`` (``--dataset``), ``Weights`` where a file
    exists (``--field weight``), and ``mim download`` of an entry without one ends in one line
    naming the official file and the converter."""
    import yaml
    for path in glob.glob(osp.join(REPO, 'configs', '*', 'metafile.yml')):
        for entry in yaml.safe_load(open(path))['Models']:
            assert entry['Metadata'].get('Training Data'), entry['Name']
    mim = osp.join(VENV_BIN, 'mim')

    def ids(*args):
        out = run([mim, 'search', 'mmlk', *args], cwd=str(tmp_path)).stdout
        return [line.split()[-1] for line in out.splitlines() if line.startswith('config id:')]

    ade = ids('--dataset', 'ade20k')
    assert len(ade) == 9 and all(name.startswith('upernet_') for name in ade), ade
    assert all('voc0712' in name for name in ids('--dataset', 'pascal voc'))
    assert all('coco' in name for name in ids('--dataset', 'coco'))
    assert sorted(ids('--field', 'weight')) == [
        'replknet-31b_32xb64_in1k', 'replknet-31l_in21k-pre_32xb64_in1k-384px',
        'replknet-xl_meg73m-pre_32xb64_in1k-320px']
    proc = run([mim, 'download', 'mmlk', '--config', 'slak-t_32xb128_in1k', '--dest',
                str(tmp_path / 'dl')], cwd=str(tmp_path), check=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        'Error: mmlk publishes no weights for slak-t_32xb128_in1k: download the official '
        'checkpoint (https://drive.google.com/file/d/1Iut2f5FMS_77jGPYoUJDQzDIXOsax1u4/view) '
        'and convert it: python tools/model_converters/slak_to_mmlk.py '
        'SLaK_tiny_checkpoint.pth checkpoints/slak-t_in1k.pth --arch tiny')
