"""tools/train.py and tools/test.py end to end on the embedded data (tiny models, CPU)."""
import glob
import os
import json
import os.path as osp

import pytest

from conftest import (CONFIGS, TINY_BACKBONE, TINY_DIMS, run_tool, tiny_imagenet_body,
                      tiny_seg_config, tiny_voc_config, write_config)


def train_resume_test(tmp_path, cfg_path, first_ckpt, resume_opts, last_ckpt, metric):
    work = str(tmp_path / 'work')
    run_tool('tools/train.py', cfg_path, '--work-dir', work)
    assert osp.isfile(osp.join(work, first_ckpt))
    proc = run_tool('tools/train.py', cfg_path, '--work-dir', work, '--resume',
                    '--cfg-options', *resume_opts)
    assert 'resumed' in (proc.stdout + proc.stderr).lower()
    assert osp.isfile(osp.join(work, last_ckpt))
    run_tool('tools/test.py', cfg_path, osp.join(work, last_ckpt), '--work-dir', work + '/test')
    metrics = json.load(open(osp.join(work, 'test', 'metrics.json')))
    assert metric in metrics and 0 <= metrics[metric] <= 100
    return metrics


def test_mmseg_train_resume_test(tmp_path, demo_data):
    cfg = tiny_seg_config(tmp_path, demo_data['ade20k'])
    train_resume_test(tmp_path, cfg, 'iter_2.pth', ['train_cfg.max_iters=3'], 'iter_3.pth', 'mIoU')


def test_mmdet_voc_train_resume_test(tmp_path, demo_data):
    cfg = tiny_voc_config(tmp_path, demo_data['voc'])
    train_resume_test(tmp_path, cfg, 'epoch_1.pth', ['train_cfg.max_epochs=2'], 'epoch_2.pth',
                      'pascal_voc/mAP')


def test_mmpretrain_train_resume_test(tmp_path, demo_data):
    model = f'model = dict({TINY_BACKBONE}, head=dict(in_channels={TINY_DIMS[-1]}))\n'
    cfg = write_config(tmp_path, f'{CONFIGS}/slak_t_in1k.py',
                       tiny_imagenet_body(demo_data['imagenet']) + model)
    train_resume_test(tmp_path, cfg, 'epoch_1.pth', ['train_cfg.max_epochs=2'], 'epoch_2.pth',
                      'accuracy/top1')


def test_missing_dataset_names_the_path_and_the_fix(tmp_path):
    proc = run_tool('tools/train.py', f'{CONFIGS}/upernet_slak_t_ade20k.py', '--work-dir',
                    str(tmp_path), '--cfg-options',
                    f'train_dataloader.dataset.data_root={tmp_path}/nowhere', check=False)
    assert proc.returncode != 0
    assert f'{tmp_path}/nowhere/images/training' in proc.stderr
    assert 'tools/make_demo_data.py ade20k' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_amp_without_gpu_is_a_clear_error(tmp_path):
    proc = run_tool('tools/train.py', f'{CONFIGS}/mask_rcnn_slak_t_coco.py', '--amp',
                    '--work-dir', str(tmp_path), check=False)
    assert proc.returncode != 0 and '--amp needs a CUDA GPU' in proc.stderr


def test_unknown_backbone_type_names_the_registry(tmp_path, demo_data):
    cfg = write_config(tmp_path, f'{CONFIGS}/demo/upernet_slak_t_ade20k_demo.py', f'''
        data_root = {demo_data["ade20k"]!r}
        model = dict(backbone=dict(type='mmlk.SLaKK'))
        train_dataloader = dict(num_workers=0, dataset=dict(data_root=data_root))
        val_dataloader = dict(num_workers=0, dataset=dict(data_root=data_root))
        ''')
    proc = run_tool('tools/train.py', cfg, '--work-dir', str(tmp_path / 'w'), check=False)
    assert proc.returncode != 0
    assert 'mmlk.SLaKK is not in the mmseg::model registry' in proc.stderr


def _images(folder):
    return sorted(p for p in glob.glob(osp.join(folder, '**', '*'), recursive=True)
                  if p.endswith(('.png', '.jpg', '.JPEG', '.jpeg')))


@pytest.mark.parametrize('task', ['mmseg', 'mmdet', 'mmpretrain'])
def test_show_dir_writes_every_test_image(tmp_path, demo_data, task):
    """--show-dir: one visualisation per test image, directly in the folder, for every task."""
    if task == 'mmseg':
        cfg, expected = tiny_seg_config(tmp_path, demo_data['ade20k']), 4
    elif task == 'mmdet':
        cfg, expected = tiny_voc_config(tmp_path, demo_data['voc']), 3
    else:
        model = f'model = dict({TINY_BACKBONE}, head=dict(in_channels={TINY_DIMS[-1]}))\n'
        cfg = write_config(tmp_path, f'{CONFIGS}/slak_t_in1k.py',
                           tiny_imagenet_body(demo_data['imagenet']) + model)
        expected = 8
    show = tmp_path / 'show'
    run_tool('tools/test.py', cfg, '--work-dir', str(tmp_path / 'work'), '--show-dir', str(show))
    images = _images(str(show))
    assert len(images) == expected, images
    assert all(osp.dirname(p) == str(show) for p in images)  # no timestamped sub-folder


def test_complexity_without_checkpoint_prints_only_its_table(tmp_path):
    out = tmp_path / 'not' / 'yet' / 'complexity.json'
    proc = run_tool('tools/analysis/complexity.py', f'{CONFIGS}/upernet_slak_t_ade20k.py',
                    '--shape', '64', '64', '--json', str(out), '--cfg-options',
                    'model.backbone.norm_cfg.type=BN')
    text = proc.stdout + proc.stderr
    assert 'before and after calling `init_weights`' not in text
    assert '| training |' in proc.stdout and '| deploy |' in proc.stdout
    assert len(proc.stdout.splitlines()) < 10
    numbers = json.load(open(out))  # the missing folders were created
    assert numbers['training']['params'] > numbers['deploy']['params'] > 0


def test_tensorboard_receives_the_sparse_and_kw_scalars_under_the_readme_tags(tmp_path,
                                                                              demo_data):
    """TensorBoard is in the environment; the README names the tags as they are written
    (mmengine's log processor drops the message hub's ``train/`` prefix)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    model = f'model = dict({TINY_BACKBONE}, head=dict(in_channels={TINY_DIMS[-1]}))\n'
    cfg = write_config(tmp_path, f'{CONFIGS}/slak_t_in1k.py', tiny_imagenet_body(
        demo_data['imagenet']) + model + '''
custom_hooks = [dict(type='mmlk.SparseTrainingHook', sparsity=0.4, init='ERK',
                     growth='random', prune_rate=0.5, update_interval=1)]
visualizer = dict(vis_backends=[dict(type='LocalVisBackend'),
                                dict(type='TensorboardVisBackend')])
default_hooks = dict(logger=dict(interval=1))
''')
    work = tmp_path / 'work'
    run_tool('tools/train.py', cfg, '--work-dir', str(work))
    events = glob.glob(str(work / '**' / 'events.out.tfevents.*'), recursive=True)
    assert events
    tags = set(EventAccumulator(events[0]).Reload().Tags()['scalars'])
    readme = open(osp.join(osp.dirname(CONFIGS), 'docs', 'sparse_training.md')).read()
    for tag in ('sparsity', 'sparsity_stage0', 'prune_rate', 'num_pruned', 'num_grown', 'loss',
                'lr'):
        assert tag in tags, sorted(tags)
    for tag in ('sparsity', 'prune_rate', 'num_pruned', 'num_grown', 'kw_temperature'):
        assert f'`{tag}`' in readme
    assert '`train/sparsity`' not in readme


@pytest.mark.parametrize('tool', ['tools/analysis/complexity.py', 'tools/reparameterize.py',
                                  'tools/deployment/export_onnx.py', 'tools/check_dataset.py',
                                  'tools/test.py', 'tools/train.py', 'tools/analysis/erf.py'])
def test_every_tool_reads_package_configs_the_same_way(tool, tmp_path):
    """One config reader (mmlk.utils.read_config): ``mmlk::...`` reaches every tool, and a
    config that does not exist is one line naming it and what is accepted."""
    extra = {'tools/reparameterize.py': ['x.pth', 'y.pth'], 'tools/test.py': ['x.pth'],
             'tools/deployment/export_onnx.py': ['x.pth', 'y.onnx'],
             'tools/analysis/erf.py': ['--checkpoint', 'x.pth']}.get(tool, [])
    proc = run_tool(osp.join(osp.dirname(CONFIGS), tool), 'mmlk::replknet/no_such_config.py',
                    *extra, cwd=str(tmp_path),
                    check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "error: config 'mmlk::replknet/no_such_config.py' not found"), proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr


@pytest.mark.parametrize('config,metric,logged', [
    ('faster_rcnn_slak_t_voc0712_demo.py', 'pascal_voc/mAP', None),
    ('mask_rcnn_slak_t_coco_demo.py', 'coco/segm_mAP', None),
    ('slak_t_in1k_sparse_demo.py', 'accuracy/top1', 'sparsity'),
    ('kw1x_resnet18_in1k_demo.py', 'accuracy/top1', 'kw_temperature'),
])
def test_demo_configs_of_every_task_train_and_evaluate(config, metric, logged, tmp_path,
                                                       demo_data):
    """configs/demo/ has a working short-schedule, small-data example per task: each trains
    (full-size model, one epoch of the embedded data) and evaluates, unchanged but for the
    epoch count, from a folder whose data/demo holds the embedded datasets."""
    (tmp_path / 'data').mkdir()
    os.symlink(osp.dirname(demo_data['imagenet']), tmp_path / 'data' / 'demo')
    proc = run_tool(osp.join(CONFIGS, '..', 'tools', 'train.py'), osp.join(CONFIGS, 'demo', config),
                    '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                    'train_cfg.max_epochs=1', 'train_cfg.val_interval=1', cwd=str(tmp_path))
    log = proc.stdout + proc.stderr
    assert metric in log, log[-3000:]
    assert osp.isfile(tmp_path / 'work' / 'epoch_1.pth')
    if logged:
        assert f'{logged}: ' in log
    # no warning a user cannot act on (mmlk/quiet.py, AtomicCheckpointHook, SparseTrainingHook)
    noise = [line for line in log.splitlines() if 'Warning' in line or ' - WARNING - ' in line]
    assert not noise, noise
