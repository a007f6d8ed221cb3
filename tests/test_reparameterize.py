"""tools/reparameterize.py: training checkpoint -> deploy checkpoint + deploy config."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from conftest import CONFIGS, TINY_BACKBONE, TINY_DIMS, run_tool, write_config
from test_ops import randomise_bn

REPLKNET_BACKBONE = ('backbone=dict(arch=dict(_delete_=True, large_kernel_sizes=[31, 29, 27, 13], '
                     'layers=[1, 1, 2, 1], channels=[8, 16, 32, 64], small_kernel=5, dw_ratio=1), '
                     'init_cfg=None, norm_cfg=dict(type="BN"))')
CASES = {
    'replknet': ('upernet_replknet_31b_ade20k.py', REPLKNET_BACKBONE, [8, 16, 32, 64]),
    'slak': ('upernet_slak_t_ade20k.py', TINY_BACKBONE, TINY_DIMS),
}


def tiny_trained_checkpoint(tmp_path, family):
    base, backbone, dims = CASES[family]
    cfg_path = write_config(tmp_path, osp.join(CONFIGS, base), f'''
model = dict({backbone},
             decode_head=dict(in_channels={dims!r}, channels=16),
             auxiliary_head=dict(in_channels={dims[2]}, channels=8))
''')
    cfg = Config.fromfile(cfg_path)
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    model.init_weights()
    randomise_bn(model, seed=1)  # as after training: BN statistics far from (0, 1)
    ckpt = osp.join(str(tmp_path), 'iter_100.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {'iter': 100}}, ckpt)
    return cfg_path, ckpt, model.eval()


@pytest.mark.parametrize('family', sorted(CASES))
def test_reparameterize_writes_an_equivalent_deploy_checkpoint_and_config(tmp_path, family):
    cfg_path, ckpt, trained = tiny_trained_checkpoint(tmp_path, family)
    out = osp.join(str(tmp_path), 'deploy', 'model_deploy.pth')
    proc = run_tool('tools/reparameterize.py', cfg_path, ckpt, out)
    assert 'relative error per output' in proc.stdout
    deploy_cfg = Config.fromfile(osp.splitext(out)[0] + '.py')
    assert deploy_cfg.model.backbone.deploy and deploy_cfg.custom_hooks == []
    assert deploy_cfg.load_from == out

    init_default_scope('mmseg')
    deployed = MODELS.build(deploy_cfg.model)
    state = torch.load(out, weights_only=False)['state_dict']
    result = deployed.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert not any('small_conv' in k or 'lkb_origin' in k or 'LoRA' in k for k in state)
    deployed.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(deployed.extract_feat(x), trained.extract_feat(x)):
            torch.testing.assert_close(a, b, atol=1e-4 * b.abs().max().item(), rtol=1e-4)


def test_reparameterize_refuses_a_checkpoint_of_another_model(tmp_path):
    cfg_path, _, _ = tiny_trained_checkpoint(tmp_path, 'replknet')
    (tmp_path / 'slak').mkdir()
    _, slak_ckpt, _ = tiny_trained_checkpoint(tmp_path / 'slak', 'slak')
    out = osp.join(str(tmp_path), 'x.pth')
    proc = run_tool('tools/reparameterize.py', cfg_path, slak_ckpt, out, check=False)
    assert proc.returncode != 0 and 'does not fit' in proc.stderr
    assert 'missing from the checkpoint' in proc.stderr and not osp.exists(out)


def test_train_reparameterize_test_end_to_end(tmp_path, demo_data):
    """Train 2 iterations on the embedded ADE20K, deploy, and evaluate the deploy config with
    no checkpoint argument (its load_from): the same mIoU as the training-form checkpoint."""
    import json

    from conftest import tiny_seg_config
    cfg = tiny_seg_config(tmp_path, demo_data['ade20k'])
    work = str(tmp_path / 'work')
    run_tool('tools/train.py', cfg, '--work-dir', work)
    ckpt = osp.join(work, 'iter_2.pth')
    out = osp.join(work, 'deploy', 'iter_2_deploy.pth')
    run_tool('tools/reparameterize.py', cfg, ckpt, out)
    run_tool('tools/test.py', cfg, ckpt, '--work-dir', work + '/test_train')
    run_tool('tools/test.py', osp.splitext(out)[0] + '.py', '--work-dir', work + '/test_deploy')
    trained = json.load(open(osp.join(work, 'test_train', 'metrics.json')))
    deployed = json.load(open(osp.join(work, 'test_deploy', 'metrics.json')))
    assert deployed['mIoU'] == pytest.approx(trained['mIoU'], abs=0.05)
    assert deployed['aAcc'] == pytest.approx(trained['aAcc'], abs=0.05)


@pytest.mark.parametrize('family', ['replknet', 'slak'])
def test_deploy_backbone_exports_with_torch_export(family):
    """What docs/*.md promise: the deploy form traces, with with_cp=True left on."""
    from mmlk.models.backbones import RepLKNet, SLaK
    from conftest import TINY_ARCH
    if family == 'replknet':
        model = RepLKNet(dict(large_kernel_sizes=[31, 29, 27, 13], layers=[1, 1, 1, 1],
                              channels=[8, 16, 32, 64], small_kernel=5, dw_ratio=1),
                         out_indices=(0, 1, 2, 3), with_cp=True)
    else:
        model = SLaK(arch=TINY_ARCH, out_indices=(0, 1, 2, 3), gap_before_final_norm=False,
                     with_cp=True)
    randomise_bn(model, seed=8)
    model.eval()
    model.switch_to_deploy()
    x = torch.randn(1, 3, 64, 64)
    exported = torch.export.export(model, (x, ))
    for a, b in zip(exported.module()(x), model(x)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
