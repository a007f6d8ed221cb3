"""Official-layout checkpoints (keys and shapes from the reference key lists, random values)."""
import os.path as osp
from collections import OrderedDict

import pytest
import torch

from mmlk.models.backbones import SLaK
from mmlk.core.checkpoint_io import CheckpointMismatchError, unwrap_state_dict
from conftest import REPO, TINY_ARCH, run_tool

KEYS_DIR = osp.join(osp.dirname(REPO), 'shared', 'reference', 'slak_keys')


def official_state(layout: str) -> 'OrderedDict[str, torch.Tensor]':
    """A state dict with the official SLaK-T keys and shapes, filled with random numbers."""
    path = osp.join(KEYS_DIR, f'keys_SLaK_tiny_{layout}.txt')
    if osp.exists(path):
        lines = [line.split('\t') for line in open(path).read().splitlines() if line.strip()]
        spec = [(k, [int(v) for v in s.strip('[]').split(',') if v.strip()]) for k, s in lines]
    else:  # the reference lists live beside the repo; rebuild the same layout without them
        model = SLaK('tiny', out_indices=(3, ) if layout == 'cls' else (0, 1, 2, 3),
                     gap_before_final_norm=layout == 'cls')
        spec = [(('norm.' + k[6:]) if k.startswith('norm3.') and layout == 'cls' else k,
                 list(v.shape)) for k, v in model.state_dict().items()]
        if layout == 'cls':
            spec += [('head.weight', [1000, 998]), ('head.bias', [1000])]
    g = torch.Generator().manual_seed(0)
    state = OrderedDict()
    for key, shape in spec:
        if key.endswith('num_batches_tracked'):
            state[key] = torch.tensor(7)
        elif key.endswith('running_var'):
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            state[key] = torch.randn(shape, generator=g)
    return state


@pytest.fixture(scope='module')
def official_cls():
    return official_state('cls')


def test_reference_layout_has_official_key_count(official_cls):
    assert len(official_cls) == 470
    assert official_cls['stages.0.0.large_kernel.LoRA1.conv.weight'].shape == (124, 1, 51, 5)


def test_converter_round_trip_into_image_classifier(tmp_path, official_cls):
    from mmpretrain.models import ImageClassifier  # noqa: F401  (registers mmpretrain modules)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    src = tmp_path / 'SLaK_tiny_checkpoint.pth'
    torch.save({'model': official_cls, 'epoch': 299, 'args': {'model': 'SLaK_tiny'}}, src)
    dst = tmp_path / 'converted.pth'
    proc = run_tool('tools/model_converters/slak_to_mmlk.py', str(src), str(dst))
    assert 'wrote 470 tensors' in proc.stdout

    cfg = Config.fromfile(osp.join(REPO, 'configs', 'slak_t_in1k.py'))
    cfg.model.backbone.norm_cfg = dict(type='BN')
    init_default_scope('mmpretrain')
    classifier = MODELS.build(cfg.model)
    converted = torch.load(dst, weights_only=False)['state_dict']
    result = classifier.load_state_dict(converted, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    sd = classifier.state_dict()
    for official, ours in [('stages.2.8.large_kernel.LoRA2.bn.running_var',
                            'backbone.stages.2.8.large_kernel.LoRA2.bn.running_var'),
                           ('norm.weight', 'backbone.norm3.weight'),
                           ('head.weight', 'head.fc.weight'),
                           ('stages.3.2.gamma', 'backbone.stages.3.2.gamma')]:
        assert torch.equal(sd[ours], official_cls[official]), ours


def test_converter_refuses_other_arch_naming_both_shapes(tmp_path, official_cls):
    src = tmp_path / 'official.pth'
    torch.save({'model': official_cls}, src)
    proc = run_tool('tools/model_converters/slak_to_mmlk.py', str(src), str(tmp_path / 'o.pth'),
                    '--kernel-size', '31', '29', '27', '13', '5', check=False)
    assert proc.returncode != 0
    assert ('stages.0.0.large_kernel.LoRA1.conv.weight: checkpoint (124, 1, 51, 5) vs model '
            '(124, 1, 31, 5)') in proc.stderr
    proc = run_tool('tools/model_converters/slak_to_mmlk.py', str(src), str(tmp_path / 'o.pth'),
                    '--arch', 'small', check=False)
    assert proc.returncode != 0 and 'missing from the checkpoint' in proc.stderr
    assert not (tmp_path / 'o.pth').exists()


def test_pretrained_init_reads_official_container_strictly(tmp_path, official_cls):
    src = tmp_path / 'official.pth'
    torch.save({'model': official_cls, 'optimizer': {}, 'epoch': 1}, src)
    model = SLaK('tiny', out_indices=(0, 1, 2, 3), gap_before_final_norm=False,
                 init_cfg=dict(type='Pretrained', checkpoint=str(src)))
    model.init_weights()
    sd = model.state_dict()
    assert torch.equal(sd['stages.1.2.large_kernel.small_conv.conv.weight'],
                       official_cls['stages.1.2.large_kernel.small_conv.conv.weight'])
    # the output norms are new for dense prediction: initialised, not taken from `norm.`
    assert torch.equal(sd['norm3.weight'], torch.ones(998))


def test_pretrained_init_with_prefix_and_module_wrapping(tmp_path):
    source = SLaK(arch=TINY_ARCH, kernel_size=(13, 11, 9, 7, 3), out_indices=(0, 1, 2, 3),
                  gap_before_final_norm=False)
    wrapped = {'state_dict': {f'module.backbone.{k}': v for k, v in source.state_dict().items()}}
    wrapped['state_dict']['module.decode_head.conv_seg.weight'] = torch.zeros(3)
    path = tmp_path / 'seg.pth'
    torch.save(wrapped, path)
    target = SLaK(arch=TINY_ARCH, kernel_size=(13, 11, 9, 7, 3), out_indices=(0, 1, 2, 3),
                  gap_before_final_norm=False,
                  init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    target.init_weights()
    for k, v in source.state_dict().items():
        assert torch.equal(target.state_dict()[k], v), k


def test_pretrained_init_never_loads_half_a_checkpoint(tmp_path, official_cls):
    broken = OrderedDict(official_cls)
    del broken['stages.2.3.pwconv1.weight']
    path = tmp_path / 'broken.pth'
    torch.save({'model': broken}, path)
    model = SLaK('tiny', out_indices=(3, ), init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    before = model.stages[0][0].pwconv1.weight.clone()
    with pytest.raises(CheckpointMismatchError, match=r'stages\.2\.3\.pwconv1\.weight'):
        model.init_weights()
    assert torch.equal(model.stages[0][0].pwconv1.weight, before)


def test_missing_checkpoint_file_is_a_clear_error(tmp_path):
    model = SLaK(arch=TINY_ARCH, kernel_size=(13, 11, 9, 7, 3),
                 init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'nope.pth')))
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        model.init_weights()


def test_unwrap_rejects_non_checkpoints():
    with pytest.raises(CheckpointMismatchError, match='no tensors'):
        unwrap_state_dict({'epoch': 3, 'args': None})
    with pytest.raises(TypeError):
        unwrap_state_dict([1, 2])
    ema = {'model': {'a': torch.zeros(1)}, 'model_ema': {'a': torch.ones(1)}}
    assert unwrap_state_dict(ema, use_ema=True)['a'].item() == 1
    assert unwrap_state_dict(ema)['a'].item() == 0
