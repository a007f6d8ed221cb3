"""The paths an OpenMMLab user takes with an mmlk checkpoint, each in a fresh process that
never imports mmlk by hand, with no PYTHONPATH and no torch.load override (the test process
has none: tests/test_safe_loading.py):
the task inferencers, the ``init_*`` APIs and the upstream ``tools/test.py`` of mmseg, mmdet
and mmpretrain load a checkpoint written by mmlk's training (README "Get started")."""
import glob
import os
import os.path as osp
import subprocess
import sys
import sysconfig

import pytest

from conftest import (CONFIGS, REPO, TINY_BACKBONE, TINY_DIMS, run_tool, tiny_imagenet_body,
                      tiny_seg_config, tiny_voc_config, write_config)

SITE = sysconfig.get_paths()['purelib']


def user_process(script: str, cwd, *args) -> str:
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    proc = subprocess.run([sys.executable, *([] if script.endswith('.py') else ['-c']), script,
                           *args], cwd=str(cwd), env=dict(env, OMP_NUM_THREADS='1'),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f'{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}'
    return proc.stdout + proc.stderr


def trained(tmp_path, cfg: str) -> str:
    work = tmp_path / 'work'
    run_tool('tools/train.py', cfg, '--work-dir', str(work))
    with open(work / 'last_checkpoint') as f:
        return f.read().strip()


@pytest.fixture(scope='module')
def seg(tmp_path_factory, demo_data):
    tmp = tmp_path_factory.mktemp('seg')
    cfg = tiny_seg_config(tmp, demo_data['ade20k'])
    image = sorted(glob.glob(osp.join(demo_data['ade20k'], 'images', 'validation', '*.jpg')))[0]
    return cfg, trained(tmp, cfg), image


@pytest.fixture(scope='module')
def det(tmp_path_factory, demo_data):
    tmp = tmp_path_factory.mktemp('det')
    cfg = tiny_voc_config(tmp, demo_data['voc'])
    image = sorted(glob.glob(osp.join(demo_data['voc'], 'VOC2007', 'JPEGImages', '*.jpg')))[0]
    return cfg, trained(tmp, cfg), image


@pytest.fixture(scope='module')
def cls(tmp_path_factory, demo_data):
    tmp = tmp_path_factory.mktemp('cls')
    model = f'model = dict({TINY_BACKBONE}, head=dict(in_channels={TINY_DIMS[-1]}))\n'
    cfg = write_config(tmp, f'{CONFIGS}/slak_t_in1k.py',
                       tiny_imagenet_body(demo_data['imagenet']) + model)
    image = sorted(glob.glob(osp.join(demo_data['imagenet'], 'val', '*', '*.JPEG')))[0]
    return cfg, trained(tmp, cfg), image


def test_mmseg_inferencer_init_model_and_test_script(seg, tmp_path):
    cfg, ckpt, image = seg
    out = user_process(f'''
import numpy as np
from mmseg.apis import MMSegInferencer, inference_model, init_model
inferencer = MMSegInferencer(model={cfg!r}, weights={ckpt!r}, device='cpu')
result = inferencer({image!r}, out_dir={str(tmp_path / 'vis')!r})
print('INFERENCER', np.asarray(result['predictions']).shape)
model = init_model({cfg!r}, {ckpt!r}, device='cpu')
sample = inference_model(model, {image!r})
print('INIT_MODEL', tuple(sample.pred_sem_seg.data.shape), type(model.backbone).__name__)
''', tmp_path)
    assert 'INFERENCER (64, 64)' in out and 'INIT_MODEL (1, 64, 64) SLaK' in out
    assert glob.glob(str(tmp_path / 'vis' / 'vis' / '*.jpg'))  # the picture of the result
    out = user_process(osp.join(SITE, 'mmseg', '.mim', 'tools', 'test.py'), tmp_path, cfg, ckpt,
                       '--work-dir', str(tmp_path / 'test'))
    assert 'mIoU' in out


def test_mmdet_inferencer_init_detector_and_test_script(det, tmp_path):
    cfg, ckpt, image = det
    out = user_process(f'''
from mmdet.apis import DetInferencer, inference_detector, init_detector
inferencer = DetInferencer(model={cfg!r}, weights={ckpt!r}, device='cpu')
result = inferencer({image!r}, out_dir={str(tmp_path / 'vis')!r})
print('INFERENCER', sorted(result['predictions'][0]))
model = init_detector({cfg!r}, {ckpt!r}, device='cpu')
sample = inference_detector(model, {image!r})
print('INIT_DETECTOR', sample.pred_instances.bboxes.shape[-1], type(model.backbone).__name__)
''', tmp_path)
    assert "INFERENCER ['bboxes', 'labels', 'scores']" in out
    assert 'INIT_DETECTOR 4 SLaK' in out
    assert glob.glob(str(tmp_path / 'vis' / 'vis' / '*.jpg'))
    out = user_process(osp.join(SITE, 'mmdet', '.mim', 'tools', 'test.py'), tmp_path, cfg, ckpt,
                       '--work-dir', str(tmp_path / 'test'))
    assert 'pascal_voc/mAP' in out


def test_mmpretrain_inferencer_get_model_and_test_script(cls, tmp_path):
    cfg, ckpt, image = cls
    out = user_process(f'''
from mmpretrain import ImageClassificationInferencer, get_model
inferencer = ImageClassificationInferencer(model={cfg!r}, pretrained={ckpt!r}, device='cpu')
result = inferencer({image!r})[0]
print('INFERENCER', len(result['pred_scores']), 0 <= result['pred_label'] < 1000)
model = get_model({cfg!r}, pretrained={ckpt!r}, device='cpu')
print('GET_MODEL', type(model.backbone).__name__)
''', tmp_path)
    assert 'INFERENCER 1000 True' in out and 'GET_MODEL SLaK' in out
    out = user_process(osp.join(SITE, 'mmpretrain', '.mim', 'tools', 'test.py'), tmp_path, cfg,
                       ckpt, '--work-dir', str(tmp_path / 'test'))
    assert 'accuracy/top1' in out


def test_upstream_train_scripts_train_an_amp_recipe_on_a_cpu(tmp_path, demo_data):
    """mmlk's recipes use AmpOptimWrapper (GPU only); one documented override makes mmseg's
    own tools/train.py train them on a CPU, where ``optim_wrapper.type=OptimWrapper`` fails
    on the recipe's loss_scale."""
    from test_mim import user_config
    cfg = user_config(tmp_path, demo_data['ade20k'])
    text = open(cfg).read()
    start = text.index('optim_wrapper = dict(_delete_=True')
    end = text.index('train_cfg = ')
    open(cfg, 'w').write(text[:start] + text[end:])  # the recipe's AmpOptimWrapper stays
    train = osp.join(SITE, 'mmseg', '.mim', 'tools', 'train.py')
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}

    def mmseg_train(work, *options):
        return subprocess.run([sys.executable, train, cfg, '--work-dir', str(work),
                               *(['--cfg-options', *options] if options else [])],
                              cwd=str(tmp_path), env=dict(env, OMP_NUM_THREADS='1'),
                              capture_output=True, text=True, timeout=600)

    plain = mmseg_train(tmp_path / 'plain', 'optim_wrapper.type=OptimWrapper')
    assert plain.returncode != 0 and 'loss_scale' in plain.stderr
    proc = mmseg_train(tmp_path / 'cpu', 'optim_wrapper.type=mmlk.AmpOptimWrapperWithCPUFallback')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'trains in fp32 with OptimWrapper (ignoring loss_scale)' in proc.stdout + proc.stderr
    assert osp.isfile(tmp_path / 'cpu' / 'iter_2.pth')


def test_show_segmentation_writes_image_ground_truth_and_prediction(seg, tmp_path):
    """``make demo`` ends with this picture (scripts/demo.sh)."""
    import numpy as np
    from PIL import Image
    cfg, ckpt, image = seg
    label = image.replace('images', 'annotations').replace('.jpg', '.png')
    out = tmp_path / 'pred.png'
    proc = run_tool(osp.join(REPO, 'tools', 'analysis', 'show_segmentation.py'), cfg, ckpt, image,
                    '--gt', label, '--out', str(out))
    assert f'wrote {out} (image | ground truth | prediction)' in proc.stdout
    picture = np.asarray(Image.open(out))
    source = np.asarray(Image.open(image).convert('RGB'))
    height, width = source.shape[:2]
    assert picture.shape == (height, 3 * width + 8, 3)
    np.testing.assert_array_equal(picture[:, :width], source)
    from mmseg.datasets import ADE20KDataset
    palette = np.asarray(ADE20KDataset.METAINFO['palette'], np.uint8)
    labels = np.asarray(Image.open(label)).astype(np.int64)
    truth = picture[:, width + 4:2 * width + 4]
    assert (truth[labels == 0] == 0).all()  # "other": not scored, black
    np.testing.assert_array_equal(truth[labels > 0], palette[labels[labels > 0] - 1])


def guide_scripts() -> dict:
    """docs/get_started.md's inference snippets (they start with ``config = ...``), by the
    inferencer they use."""
    import re
    text = open(osp.join(REPO, 'docs', 'get_started.md')).read()
    scripts = [m.group(1) for m in re.finditer(r'```python\n(.*?)```', text, re.S)
               if m.group(1).startswith('config = ')]
    return {name: s for s in scripts for name in ('MMSegInferencer', 'DetInferencer',
                                                  'ImageClassificationInferencer') if name in s}


@pytest.mark.parametrize('inferencer,fixture', [('MMSegInferencer', 'seg'),
                                                ('DetInferencer', 'det'),
                                                ('ImageClassificationInferencer', 'cls')])
def test_get_started_inference_snippets_run(inferencer, fixture, tmp_path, request):
    """The guide's snippets, with its three paths pointed at a trained checkpoint and the
    device at the CPU, run as written in a user's folder."""
    cfg, ckpt, image = request.getfixturevalue(fixture)
    script = guide_scripts()[inferencer]
    lines = script.splitlines()
    assert [line.split(' = ')[0] for line in lines[:3]] == ['config', 'checkpoint', 'image']
    body = '\n'.join(lines[3:]).replace("device='cuda:0'", "device='cpu'")
    out = user_process(f'config = {cfg!r}\ncheckpoint = {ckpt!r}\nimage = {image!r}\n' + body,
                       tmp_path)
    assert out.strip()
    if inferencer != 'ImageClassificationInferencer':  # the picture of the result
        assert glob.glob(str(tmp_path / 'outputs' / 'vis' / '*.jpg'))
