"""Nothing silently wrong, nothing lost: strict loading, atomic checkpoints, exact resume,
validated options, bad data named (README, "Reliability")."""
import json
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import OrderedDict

import numpy as np
import pytest
import torch

from conftest import (CONFIGS, REPO, TINY_ARCH, TINY_BACKBONE, TINY_DIMS, run_tool,
                      tiny_imagenet_body, tiny_seg_config, write_config)
from mmlk.models.backbones import SLaK
from mmlk.core.checkpoint_io import (CheckpointMismatchError, CheckpointReadError,
                               atomic_write_bytes, load_checkpoint_file)


def load(path):
    return torch.load(path, map_location='cpu', weights_only=False)


def imagenet_config(tmp_path, demo_data, extra='', name='cfg.py'):
    model = f'model = dict({TINY_BACKBONE}, head=dict(in_channels={TINY_DIMS[-1]}))\n'
    return write_config(tmp_path, f'{CONFIGS}/slak_t_in1k.py',
                        tiny_imagenet_body(demo_data['imagenet']) + model + extra, name=name)


def tiny_slak_classifier_state(**backbone):
    """An mmengine-style state dict of the tiny SLaK ImageNet classifier (random weights)."""
    slak = SLaK(dict(TINY_ARCH, **backbone.pop('arch', {})), out_indices=(3, ), **backbone)
    state = OrderedDict((f'backbone.{k}', v) for k, v in slak.state_dict().items())
    width = slak.dims[-1]
    state['head.fc.weight'] = torch.randn(4, width)
    state['head.fc.bias'] = torch.zeros(4)
    return state


# ---------------------------------------------------------------------------------- 1. strict
@pytest.fixture(scope='module')
def imagenet_cfg(tmp_path_factory, demo_data):
    return imagenet_config(tmp_path_factory.mktemp('strict'), demo_data)


def test_test_py_refuses_a_checkpoint_of_another_model(tmp_path, imagenet_cfg):
    from mmlk.models.backbones import KWResNet
    other = {f'backbone.{k}': v
             for k, v in KWResNet(18, '1x', base_channels=8).state_dict().items()}
    path = tmp_path / 'kw.pth'
    torch.save({'state_dict': other, 'meta': {}}, path)
    proc = run_tool('tools/test.py', imagenet_cfg, str(path), '--work-dir', str(tmp_path / 'w'),
                    check=False)
    assert proc.returncode != 0
    assert f'{path} does not fit the model' in proc.stderr
    assert 'key(s) missing from the checkpoint' in proc.stderr
    assert 'have no place in the model' in proc.stderr
    assert 'Traceback' not in proc.stderr
    assert not (tmp_path / 'w' / 'metrics.json').exists()


def test_kernel_size_mismatch_is_refused_and_non_strict_is_the_escape(tmp_path, imagenet_cfg):
    path = tmp_path / 'k31.pth'
    torch.save({'state_dict': tiny_slak_classifier_state(kernel_size=(31, 29, 27, 13, 5)),
                'meta': {}}, path)
    proc = run_tool('tools/test.py', imagenet_cfg, str(path), '--work-dir', str(tmp_path / 'w'),
                    check=False)
    assert proc.returncode != 0
    assert 'LoRA1.conv.weight: checkpoint (10, 1, 31, 5) vs model (10, 1, 51, 5)' in proc.stderr
    assert '--non-strict' in proc.stderr
    run_tool('tools/test.py', imagenet_cfg, str(path), '--work-dir', str(tmp_path / 'w'),
             '--non-strict')
    assert (tmp_path / 'w' / 'metrics.json').exists()


def test_an_official_file_is_told_which_converter_to_run(tmp_path, imagenet_cfg):
    state = {k[len('backbone.'):]: v for k, v in tiny_slak_classifier_state().items()}
    path = tmp_path / 'SLaK_tiny_checkpoint.pth'
    torch.save({'model': state, 'epoch': 299}, path)
    for tool, args in [('tools/test.py', [str(path)]),
                       ('tools/train.py', ['--cfg-options', f'load_from={path}'])]:
        proc = run_tool(tool, imagenet_cfg, *args, '--work-dir', str(tmp_path / 'w'),
                        check=False)
        assert proc.returncode != 0, tool
        assert f'{path} is not an mmengine checkpoint' in proc.stderr
        assert 'tools/model_converters/slak_to_mmlk.py' in proc.stderr


def test_resume_from_a_checkpoint_of_another_arch_is_refused(tmp_path, imagenet_cfg):
    path = tmp_path / 'deeper.pth'
    torch.save({'state_dict': tiny_slak_classifier_state(arch=dict(depths=[1, 1, 2, 1])),
                'meta': dict(epoch=1, iter=3)}, path)
    proc = run_tool('tools/train.py', imagenet_cfg, '--work-dir', str(tmp_path / 'w'),
                    '--resume', str(path), check=False)
    assert proc.returncode != 0
    assert 'backbone.stages.2.1.' in proc.stderr and 'have no place' in proc.stderr


def test_pretrained_init_refuses_leftover_backbone_keys_unless_ignored(tmp_path):
    deeper = SLaK(dict(TINY_ARCH, depths=[1, 1, 2, 1]), out_indices=(3, ))
    path = tmp_path / 'deeper.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in deeper.state_dict().items()}}, path)
    model = SLaK(TINY_ARCH, out_indices=(3, ),
                 init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError, match=r'stages\.2\.1\..*no place|no place'):
        model.init_weights()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing loaded
    model.init_cfg['ignore_keys'] = [r'^stages\.2\.1\.']
    model.init_weights()
    assert torch.equal(model.state_dict()['stages.2.0.pwconv1.weight'],
                       deeper.state_dict()['stages.2.0.pwconv1.weight'])


@pytest.fixture(scope='module')
def official_tiny_and_small(tmp_path_factory):
    """Official SLaK-T and SLaK-S ImageNet files (layouts of the official code; SLaK-S's extra
    stage-2 blocks reuse SLaK-T's tensors, so the file stays small)."""
    root = tmp_path_factory.mktemp('official')
    tiny = SLaK('tiny', out_indices=(3, ), gap_before_final_norm=True)
    state = OrderedDict((('norm.' + k[6:]) if k.startswith('norm3.') else k, v)
                        for k, v in tiny.state_dict().items())
    state['head.weight'], state['head.bias'] = torch.randn(1000, 998), torch.randn(1000)
    small = OrderedDict(state)
    for j in range(9, 27):
        for k, v in state.items():
            if k.startswith('stages.2.0.'):
                small[k.replace('stages.2.0.', f'stages.2.{j}.')] = v
    paths = dict(tiny=root / 'SLaK_tiny_checkpoint.pth', small=root / 'SLaK_small_checkpoint.pth')
    torch.save({'model': state, 'epoch': 299}, paths['tiny'])
    torch.save({'model': small, 'epoch': 299}, paths['small'])
    return paths


def test_converter_refuses_small_as_tiny_and_infers_the_arch(tmp_path, official_tiny_and_small):
    src = str(official_tiny_and_small['small'])
    refused = run_tool('tools/model_converters/slak_to_mmlk.py', src, str(tmp_path / 'o.pth'),
                       '--arch', 'tiny', check=False)
    assert refused.returncode != 0
    assert '450 checkpoint key(s) have no place' in refused.stderr  # 18 blocks x 25 tensors
    assert 'The checkpoint fits --arch small.' in refused.stderr
    assert not (tmp_path / 'o.pth').exists()
    dst = tmp_path / 'small.pth'
    proc = run_tool('tools/model_converters/slak_to_mmlk.py', src, str(dst))
    assert 'inferred --arch small' in proc.stdout
    assert 'converted model of' in proc.stdout
    converted = load(dst)
    assert converted['meta']['arch'] == 'small'
    assert converted['meta']['converted_tensors'] == 'model'
    assert 'backbone.stages.2.26.pwconv2.weight' in converted['state_dict']


def test_equ_slak_conversion_keeps_the_head_and_classifies_identically(tmp_path,
                                                                        official_tiny_and_small):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    src = str(official_tiny_and_small['tiny'])
    slak_ckpt, equ_ckpt = tmp_path / 'slak.pth', tmp_path / 'equ.pth'
    run_tool('tools/model_converters/slak_to_mmlk.py', src, str(slak_ckpt))
    run_tool('tools/model_converters/slak_to_mmlk.py', src, str(equ_ckpt),
             '--to', 'shiftwise-convnext')
    init_default_scope('mmpretrain')
    models = []
    for config, ckpt in [('slak_t_in1k.py', slak_ckpt), ('shiftwise_convnext_t_in1k.py', equ_ckpt)]:
        cfg = Config.fromfile(osp.join(CONFIGS, config))
        cfg.model.backbone.norm_cfg = dict(type='BN')
        classifier = MODELS.build(cfg.model)
        classifier.load_state_dict(load(ckpt)['state_dict'], strict=True)
        models.append(classifier.eval())
    assert 'head.fc.weight' in load(equ_ckpt)['state_dict']
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, got = (m(x, mode='tensor') for m in models)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert expected.shape == (2, 1000) and expected.abs().max() > 0


# ---------------------------------------------------------------------------------- 2. atomic
def test_atomic_write_never_exposes_a_partial_file(tmp_path):
    path = tmp_path / 'ckpt.pth'
    atomic_write_bytes(b'old', str(path))

    with pytest.raises(TypeError):
        atomic_write_bytes(object(), str(path))  # fails mid-write
    assert path.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['ckpt.pth']  # the temporary file is removed


@pytest.mark.parametrize('content', [b'', b'PK\x03\x04 half a zip', b'not a checkpoint'])
def test_truncated_checkpoints_are_named_in_one_line(tmp_path, content, imagenet_cfg):
    path = tmp_path / 'iter_2.pth'
    if content.startswith(b'PK'):  # a real checkpoint cut in the middle, as a crash leaves it
        torch.save({'state_dict': tiny_slak_classifier_state()}, path)
        data = path.read_bytes()
        path.write_bytes(data[:len(data) * 3 // 4])
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointReadError, match='truncated or not a checkpoint'):
        load_checkpoint_file(str(path))
    for args in [('tools/test.py', imagenet_cfg, str(path)),
                 ('tools/train.py', imagenet_cfg, '--resume', str(path)),
                 ('tools/model_converters/slak_to_mmlk.py', str(path), str(tmp_path / 'o.pth'))]:
        proc = run_tool(*args, '--work-dir', str(tmp_path / 'w'), check=False) \
            if args[0].startswith('tools/t') else run_tool(*args, check=False)
        assert proc.returncode != 0, args
        assert f'{path}: truncated or not a checkpoint' in proc.stderr, args
        assert 'Traceback' not in proc.stderr, args
    model = SLaK(TINY_ARCH, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CheckpointReadError, match=f'SLaK init_cfg: {path}: truncated'):
        model.init_weights()


BALLAST_HOOK = '''
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class BallastHook(Hook):
    """Makes checkpoints big enough (~400 MB) that a save takes a while to write."""

    def before_save_checkpoint(self, runner, checkpoint):
        checkpoint['ballast'] = torch.ones(100_000_000)
'''


def test_kill_during_a_save_loses_nothing_and_resume_continues(tmp_path, demo_data):
    (tmp_path / 'ballast_hook.py').write_text(BALLAST_HOOK)
    cfg = tiny_seg_config(tmp_path, demo_data['ade20k'], extra='''
        custom_imports = dict(imports=['ballast_hook'], allow_failed_imports=False)
        custom_hooks = [dict(type='BallastHook')]
        train_cfg = dict(max_iters=4, val_interval=100)
        default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=10))
        ''')
    work = tmp_path / 'work'
    env = dict(os.environ, PYTHONPATH=f'{REPO}:{tmp_path}', OMP_NUM_THREADS='1')
    proc = subprocess.Popen([sys.executable, 'tools/train.py', cfg, '--work-dir', str(work)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline, partial = time.time() + 300, None
    try:
        while time.time() < deadline and proc.poll() is None:
            names = os.listdir(work) if work.is_dir() else []
            partial = next((n for n in names if n.startswith('.iter_2.pth.partial-')), None)
            if partial:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert partial, 'the save of iter_2.pth was never seen in progress'
    names = os.listdir(work)
    assert 'iter_2.pth' not in names  # never a partial file under a checkpoint name
    assert load(work / 'iter_1.pth')['meta']['iter'] == 1
    assert (work / 'last_checkpoint').read_text().strip().endswith('iter_1.pth')
    proc = subprocess.run([sys.executable, 'tools/train.py', cfg, '--work-dir', str(work),
                           '--resume'], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'resumed epoch: 0, iter: 1' in proc.stdout + proc.stderr
    assert load(work / 'iter_4.pth')['meta']['iter'] == 4


# ---------------------------------------------------------------------------------- 3. resume
def compare_checkpoints(a, b):
    """Bitwise equality of weights, EMA, optimizer state and sparse masks."""
    for key in ('state_dict', 'ema_state_dict'):
        if key in a:
            assert a[key].keys() == b[key].keys()
            for name in a[key]:
                assert torch.equal(a[key][name], b[key][name]), f'{key}: {name}'
    for pa, pb in zip(a['optimizer']['state'].values(), b['optimizer']['state'].values()):
        for name in pa:
            assert torch.equal(torch.as_tensor(pa[name]), torch.as_tensor(pb[name])), name
    masks_a, masks_b = a['sparse_training']['masks'], b['sparse_training']['masks']
    assert masks_a.keys() == masks_b.keys() and a['sparse_training']['step'] == \
        b['sparse_training']['step']
    for name in masks_a:
        assert torch.equal(masks_a[name], masks_b[name]), name


def resume_matches_uninterrupted(tmp_path, cfg, middle: str, last: str):
    straight, resumed = tmp_path / 'straight', tmp_path / 'resumed'
    run_tool('tools/train.py', cfg, '--work-dir', str(straight))
    resumed.mkdir()
    shutil.copy(straight / middle, resumed / middle)
    (resumed / 'last_checkpoint').write_text(str(resumed / middle))
    proc = run_tool('tools/train.py', cfg, '--work-dir', str(resumed), '--resume')
    assert 'RNGStateHook' not in proc.stderr  # no "not exact" warning
    a, b = load(straight / last), load(resumed / last)
    compare_checkpoints(a, b)
    return a, b


SPARSE_EMA = '''
custom_hooks = [
    dict(type='mmlk.SparseTrainingHook', sparsity=0.4, init='ERK', growth='random',
         prune_rate=0.5, update_interval=1, scope='model'),
    dict(type='EMAHook', ema_type='mmlk.SparseEMA', momentum=0.1, priority='ABOVE_NORMAL'),
]
'''


def test_iteration_based_resume_is_bitwise(tmp_path, demo_data):
    cfg = tiny_seg_config(tmp_path, demo_data['ade20k'], extra=textwrap.dedent('''
        model = dict(backbone=dict(drop_path_rate=0.3))
        train_pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', reduce_zero_label=True),
            dict(type='RandomResize', scale=(64, 64), ratio_range=(0.5, 2.0), keep_ratio=True),
            dict(type='RandomCrop', crop_size=(64, 64), cat_max_ratio=0.75),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PhotoMetricDistortion'),
            dict(type='PackSegInputs'),
        ]
        train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
        train_cfg = dict(max_iters=4, val_interval=2)
        default_hooks = dict(checkpoint=dict(interval=2))
        ''') + SPARSE_EMA.replace("scope='model'", "scope='backbone'"))
    a, _ = resume_matches_uninterrupted(tmp_path, cfg, 'iter_2.pth', 'iter_4.pth')
    assert a['meta']['iter'] == 4


def test_epoch_based_resume_is_bitwise_with_mixup_cutmix(tmp_path, demo_data):
    cfg = imagenet_config(tmp_path, demo_data, extra='''
model = dict(backbone=dict(drop_path_rate=0.3),
             train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8),
                                      dict(type='CutMix', alpha=1.0)]))
train_cfg = dict(max_epochs=2)
''' + SPARSE_EMA)
    a, _ = resume_matches_uninterrupted(tmp_path, cfg, 'epoch_1.pth', 'epoch_2.pth')
    assert a['meta']['epoch'] == 2 and 'rng_state' in a


def test_sparse_seed_follows_the_run_seed(tmp_path, demo_data):
    from mmengine.config import Config
    from mmengine.runner import Runner
    masks = []
    for seed in (0, 1, 1):
        cfg = Config.fromfile(imagenet_config(tmp_path, demo_data, extra=SPARSE_EMA))
        cfg.work_dir = str(tmp_path / f'w{len(masks)}')
        cfg.randomness = dict(seed=seed)
        cfg.train_cfg.max_epochs = 1
        cfg.custom_hooks[0].update(init='uniform', update_interval=0)
        runner = Runner.from_cfg(cfg)
        runner.train()
        hook = next(h for h in runner.hooks if type(h).__name__ == 'SparseTrainingHook')
        assert hook.engine.seed == seed
        masks.append({t.name: t.mask.clone() for t in hook.engine.targets})
    assert any(not torch.equal(masks[0][k], masks[1][k]) for k in masks[0])
    assert all(torch.equal(masks[1][k], masks[2][k]) for k in masks[1])


# ---------------------------------------------------------------------------------- 4. options
def test_sparse_selection_takes_a_string_as_one_pattern():
    from mmlk.sparsity import select_sparse_targets

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = SLaK(TINY_ARCH)

    net = Net()
    large = select_sparse_targets(net, include='large_kernel')
    assert large and all('large_kernel' in t.name for t in large)
    no_pw = select_sparse_targets(net, exclude='pwconv')
    assert no_pw and not any('pwconv' in t.name for t in no_pw)
    with pytest.raises(TypeError, match='include must be a regular expression or a list'):
        select_sparse_targets(net, include=3)
    with pytest.raises(ValueError, match=r"no parameter matched.*include=\['nothing'\].*e\.g\. "
                                         r"backbone\.downsample_layers\.0\.0\.weight"):
        select_sparse_targets(net, include='nothing')


@pytest.mark.parametrize('kwargs, error, message', [
    (dict(update_interval=0.5), TypeError, 'update_interval .* must be an integer'),
    (dict(update_interval=-1), ValueError, 'update_interval'),
    (dict(final_prune_rate=1.5), ValueError, r'final_prune_rate must be in \[0, 1\)'),
    (dict(sparsity='0.4'), TypeError, r"sparsity must be a number in \(0, 1\), got '0.4'"),
    (dict(include=5), TypeError, 'include must be'),
])
def test_sparse_hook_options_are_checked(kwargs, error, message):
    from mmlk.engine.hooks import SparseTrainingHook
    with pytest.raises(error, match=message):
        SparseTrainingHook(**kwargs)


@pytest.mark.parametrize('kwargs, error, message', [
    (dict(drop_path_rate=1.0), ValueError, r'drop_path_rate must be in \[0, 1\)'),
    (dict(drop_path_rate=-0.1), ValueError, 'drop_path_rate'),
    (dict(out_indices='3'), TypeError, "out_indices must be an int or a non-empty list"),
    (dict(kernel_size=51), TypeError, 'kernel_size must be a list of 5 odd integers'),
    (dict(frozen_stages=-2), ValueError, r'frozen_stages .* must be in \[-1, 4\]'),
    (dict(frozen_stages='1'), TypeError, 'frozen_stages'),
])
def test_backbone_options_are_checked(kwargs, error, message):
    with pytest.raises(error, match=message):
        SLaK(TINY_ARCH, **kwargs)


def test_one_frozen_stages_convention_across_families():
    from mmlk.models.backbones import KWResNet, RepLKNet
    from conftest import TINY_REPLKNET
    slak_none, slak_stem = SLaK(TINY_ARCH, frozen_stages=-1), SLaK(TINY_ARCH, frozen_stages=0)
    slak_none.train(), slak_stem.train()
    assert all(p.requires_grad for p in slak_none.parameters())
    frozen = {n for n, p in slak_stem.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith('downsample_layers.0.') for n in frozen)
    two = SLaK(TINY_ARCH, frozen_stages=2, out_indices=(0, 1, 2, 3),
               gap_before_final_norm=False).train()
    frozen = {n.split('.')[0] + '.' + n.split('.')[1] for n, p in two.named_parameters()
              if not p.requires_grad}
    assert frozen == {'downsample_layers.0', 'downsample_layers.1', 'stages.0', 'stages.1',
                      'norm0.weight', 'norm1.weight'} or frozen >= {'stages.0', 'stages.1'}
    assert all(p.requires_grad for n, p in two.named_parameters() if n.startswith('stages.2'))
    rep = RepLKNet(dict(RepLKNet.arch_zoo['31B'], **TINY_REPLKNET), frozen_stages=-1).train()
    kw = KWResNet(18, '1x', base_channels=8, frozen_stages=-1).train()
    assert all(p.requires_grad for p in [*rep.parameters(), *kw.parameters()])
    for cls, args in [(RepLKNet, (dict(RepLKNet.arch_zoo['31B'], **TINY_REPLKNET), )),
                      (KWResNet, (18, '1x'))]:
        with pytest.raises(ValueError, match=r'frozen_stages .* must be in \[-1, 4\]'):
            cls(*args, frozen_stages=-2)


# ---------------------------------------------------------------------------------- 5. data
@pytest.fixture
def broken_ade(tmp_path, demo_data):
    root = tmp_path / 'ade'
    shutil.copytree(demo_data['ade20k'], root)
    images = sorted((root / 'images' / 'training').iterdir())
    labels = sorted((root / 'annotations' / 'training').iterdir())
    images[0].write_bytes(b'')  # a zero-byte JPEG
    from PIL import Image
    label = np.array(Image.open(labels[1]))
    label[:4, :4] = 200  # beyond ADE20K's 150 classes (+1 for reduce_zero_label)
    Image.fromarray(label).save(labels[1])
    return root, images[0], labels[1]


def test_bad_images_and_labels_are_named_and_the_check_tool_lists_them(tmp_path, broken_ade):
    root, empty_image, bad_label = broken_ade
    cfg = tiny_seg_config(tmp_path, str(root))
    proc = run_tool('tools/train.py', cfg, '--work-dir', str(tmp_path / 'w'), check=False)
    assert proc.returncode != 0
    assert 'Traceback' not in proc.stderr
    assert str(empty_image) in proc.stderr or str(bad_label) in proc.stderr
    proc = run_tool('tools/check_dataset.py', cfg, '--splits', 'train', '--no-progress',
                    check=False)
    assert proc.returncode == 1
    assert f'img_path={empty_image}' in proc.stdout
    assert f'seg_map_path={bad_label}' in proc.stdout and 'label values [199]' in proc.stdout
    assert 'train_dataloader.dataset: 8 samples, 2 unusable' in proc.stdout


def test_check_tool_counts_degenerate_coco_boxes(tmp_path, demo_data):
    root = tmp_path / 'coco'
    shutil.copytree(demo_data['coco'], root)
    ann_path = root / 'annotations' / 'instances_train2017.json'
    ann = json.loads(ann_path.read_text())
    ann['annotations'][0]['bbox'][2] = -5
    ann['annotations'][1]['bbox'][3] = 0
    ann_path.write_text(json.dumps(ann))
    cfg = write_config(tmp_path, f'{CONFIGS}/mask_rcnn_slak_t_coco.py', f'''
        train_dataloader = dict(dataset=dict(data_root={str(root) + "/"!r}))
        ''')
    proc = run_tool('tools/check_dataset.py', cfg, '--splits', 'train', '--no-progress',
                    check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    total = len(ann['annotations'])
    assert f'2 of {total} boxes degenerate' in proc.stdout
    assert 'bbox [' in proc.stdout and '(mmdet drops it)' in proc.stdout
    clean = run_tool('tools/check_dataset.py', cfg, '--splits', 'val', '--no-progress',
                     '--cfg-options', f'val_dataloader.dataset.data_root={demo_data["coco"]}/')
    assert '1 of 1 datasets clean' in clean.stdout
