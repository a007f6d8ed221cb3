"""tools/deployment/export_onnx.py (re-parameterise, export, check with onnxruntime) and the
RepLKNet deploy form without BatchNorms (the pre-BNs fold into the following 1x1 convs)."""
import re

import onnx
import pytest
import torch
from mmengine.config import Config
from torch.nn.modules.batchnorm import _BatchNorm

from conftest import CONFIGS, run_tool
from mmlk.models.backbones import RepLKNet
from mmlk.ops.reparam import fold_bn_into_next_conv, fold_pre_bn_state
from mmlk.utils.deploy import build_model_for_weights
from test_ops import randomise_bn

BN_TO_BN = ['model.backbone.norm_cfg.type=BN']


def trained_checkpoint(tmp_path, config: str, options) -> str:
    """A checkpoint of the config's full-size model with non-trivial BN statistics."""
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(dict(o.split('=') for o in options))
    torch.manual_seed(0)
    model = build_model_for_weights(cfg)
    model.init_weights()
    randomise_bn(model)
    path = tmp_path / 'model.pth'
    torch.save({'state_dict': model.state_dict()}, path)
    return str(path)


def export(tmp_path, config, checkpoint, options, *extra):
    out = tmp_path / 'out' / 'model.onnx'  # a folder that does not exist yet
    proc = run_tool('tools/deployment/export_onnx.py', config, checkpoint, str(out), '--shape',
                    '64', '64', *extra, *(['--cfg-options', *options] if options else []))
    errors = [float(e) for e in re.findall(r'max \|torch\| = ([0-9.e+-]+)', proc.stdout)]
    return out, errors, proc.stdout


def test_deploy_slak_t_classifier_exports_and_matches_onnxruntime(tmp_path):
    config = f'{CONFIGS}/slak_t_in1k.py'
    checkpoint = trained_checkpoint(tmp_path, config, BN_TO_BN)
    out, errors, log = export(tmp_path, config, checkpoint, BN_TO_BN)
    assert 'SLaK: re-parameterised' in log and '; classifier, input 1x3x64x64 fixed' in log
    assert len(errors) == 1 and errors[0] < 1e-5
    graph = onnx.load(str(out)).graph
    assert [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim] == [1, 1000]


def test_deploy_replknet_31b_backbone_exports_without_batchnorms(tmp_path):
    config = f'{CONFIGS}/upernet_replknet_31b_ade20k.py'
    options = BN_TO_BN + ['model.decode_head.norm_cfg.type=BN',
                          'model.auxiliary_head.norm_cfg.type=BN']
    checkpoint = trained_checkpoint(tmp_path, config, options)
    out, errors, _ = export(tmp_path, config, checkpoint, options, '--part', 'backbone')
    assert len(errors) == 4 and max(errors) < 1e-5
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert 'BatchNormalization' not in ops and 'Conv' in ops


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    config = f'{CONFIGS}/slak_t_in1k.py'
    torch.save({'state_dict': {'backbone.x': torch.zeros(1)}}, tmp_path / 'bad.pth')
    proc = run_tool('tools/deployment/export_onnx.py', config, str(tmp_path / 'bad.pth'),
                    str(tmp_path / 'x.onnx'), check=False)
    assert proc.returncode != 0 and 'does not fit' in proc.stderr
    assert not (tmp_path / 'x.onnx').exists()


def test_replknet_pre_bn_folds_exactly_into_pw1():
    torch.manual_seed(0)
    arch = dict(large_kernel_sizes=[7, 7, 7, 5], layers=[1, 1, 2, 1], channels=[8, 16, 32, 64],
                small_kernel=3, dw_ratio=1)
    model = RepLKNet(arch, out_indices=(0, 1, 2, 3)).double().eval()
    randomise_bn(model)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        before = model(x)
        model.switch_to_deploy()
        after = model(x)
    assert not any(isinstance(m, _BatchNorm) for m in model.modules())
    for a, b in zip(after, before):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    # a model built with deploy=True has the same keys (no pre-BN), and the official deploy
    # layout (merged kernels, unfolded BNs) converts to it
    built = RepLKNet(arch, out_indices=(0, 1, 2, 3), deploy=True)
    assert built.state_dict().keys() == model.state_dict().keys()
    # refused where the fold would not be exact: a k x k conv (zero padding sees the shift)
    bn = torch.nn.BatchNorm2d(4).eval()
    with pytest.raises(ValueError, match='1x1'):
        fold_bn_into_next_conv(bn, torch.randn(8, 4, 3, 3))


def test_pre_bn_state_fold_equals_the_module_fold():
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(4).eval()
    randomise_bn(bn)
    conv = torch.nn.Conv2d(4, 6, 1)
    state = {'b.pre.weight': bn.weight, 'b.pre.bias': bn.bias, 'b.pre.running_mean':
             bn.running_mean, 'b.pre.running_var': bn.running_var,
             'b.pre.num_batches_tracked': bn.num_batches_tracked,
             'b.pw.weight': conv.weight, 'b.pw.bias': conv.bias}
    folded = fold_pre_bn_state(state, 'pre', 'pw')
    assert set(folded) == {'b.pw.weight', 'b.pw.bias'}
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(
            torch.nn.functional.conv2d(x, folded['b.pw.weight'], folded['b.pw.bias']),
            conv(bn(x)), rtol=1e-5, atol=1e-6)


def test_dynamic_height_and_width_export_where_the_graph_allows(tmp_path):
    """--dynamic-hw: a backbone's height and width are free (multiples of 32) in the file and
    checked at --shape and at a second size; a UperNet segmentor, whose pyramid pooling keeps
    the example's size, is refused at the second size with nothing written; without the flag
    the size is fixed."""
    from conftest import tiny_seg_config
    from mmlk.utils.deploy import build_model_for_weights as build
    config = tiny_seg_config(tmp_path, str(tmp_path / 'no_data'))
    torch.manual_seed(0)
    model = build(Config.fromfile(config))
    model.init_weights()
    randomise_bn(model)
    checkpoint = tmp_path / 'model.pth'
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    out, errors, log = export(tmp_path, config, str(checkpoint), [], '--dynamic-hw', '--part',
                              'backbone')
    assert 'input 1x3xHxW, H and W any multiples of 32' in log and 'one self-contained file' in log
    assert len(errors) == 8 and max(errors) < 1e-4, log  # 4 maps at 64x64 and at 96x128
    assert '(1, 83, 3, 4)' in log  # the second size's last map
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert dims[2].dim_param and dims[3].dim_param  # symbolic, not 64
    segmentor = tmp_path / 'seg.onnx'
    proc = run_tool('tools/deployment/export_onnx.py', config, str(checkpoint), str(segmentor),
                    '--shape', '64', '64', '--dynamic-hw', check=False)
    # refused: at the second size (torch 2.14's exporter), or by the exporter (torch 2.1's
    # cannot write UperNet's adaptive pooling at all)
    assert proc.returncode == 1 and 'export without --dynamic-hw (nothing written)' in proc.stderr
    assert 'Traceback' not in proc.stderr
    assert not segmentor.exists() and not list(tmp_path.glob('.seg.onnx.partial*'))
    fixed, _, log = export(tmp_path, config, str(checkpoint), [], '--part', 'backbone')
    dims = onnx.load(str(fixed)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 3, 64, 64] and '1x3x64x64 fixed' in log
