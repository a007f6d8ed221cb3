"""Effective receptive field: the maths, the kernel-size ordering and the tool."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmlk.models.backbones import RepLKNet
from mmlk.utils.erf import (accumulate_erf, centred_area_ratio, erf_table, input_gradient_map,
                            log_scale)
from conftest import CONFIGS, run_tool, write_config


def test_area_ratio_of_known_maps():
    uniform = np.ones((9, 9))
    # 50% of 81 needs 40.5: the 7x7 square (49) is the smallest centred one
    assert centred_area_ratio(uniform, 0.5) == pytest.approx(49 / 81)
    assert centred_area_ratio(uniform, 0.2) == pytest.approx(25 / 81)  # 16.2 -> 5x5
    assert centred_area_ratio(uniform, 1.0) == 1.0
    delta = np.zeros((9, 9))
    delta[4, 4] = 3.0
    assert all(centred_area_ratio(delta, t) == pytest.approx(1 / 81) for t in (0.2, 0.99))
    with pytest.raises(ValueError, match='all zeros'):
        centred_area_ratio(np.zeros((5, 5)), 0.5)
    with pytest.raises(ValueError, match='threshold'):
        centred_area_ratio(uniform, 0.0)


def test_log_scaled_table_is_log10_plus_one():
    data = np.random.default_rng(0).random((11, 11)) * 100
    assert np.allclose(log_scale(data), np.log10(data + 1))
    assert erf_table(data, (0.5, ))[0.5] == centred_area_ratio(np.log10(data + 1), 0.5)


@pytest.mark.parametrize('k', [3, 7, 15])
def test_gradient_map_of_one_conv_is_its_kernel_footprint(k):
    weight = torch.ones(2, 3, k, k)
    erf = input_gradient_map(lambda x: F.conv2d(x, weight, padding=k // 2),
                             torch.rand(2, 3, 31, 31) + 0.1)
    support = erf > 0
    assert support.sum() == k * k
    assert support[15 - k // 2:15 + k // 2 + 1, 15 - k // 2:15 + k // 2 + 1].all()
    assert centred_area_ratio(erf.numpy(), 0.999) == pytest.approx(k * k / 31**2)


def test_larger_kernels_give_a_larger_erf():
    """Two random-init RepLKNets differing only in kernel size, measured at stage 1 (stride 8)
    of a 128x128 input, where neither receptive field covers the image yet."""
    torch.manual_seed(0)
    arch = dict(layers=[1, 1, 1, 1], channels=[8, 8, 16, 16], dw_ratio=1, small_kernel=3)
    batches = [torch.randn(1, 3, 128, 128) for _ in range(2)]
    ratios = {}
    for kernels in ([5, 5, 5, 5], [31, 29, 27, 13]):
        torch.manual_seed(1)
        model = RepLKNet(dict(arch, large_kernel_sizes=kernels), out_indices=(1, ),
                         drop_path_rate=0.).eval()
        erf = accumulate_erf(lambda x: model(x)[-1], batches)
        ratios[kernels[0]] = erf_table(erf, (0.5, 0.99))
    for t in (0.5, 0.99):
        assert ratios[31][t] > 2 * ratios[5][t], ratios


def test_erf_tool_on_embedded_images_writes_heatmap_and_table(tmp_path):
    cfg = write_config(tmp_path, f'{CONFIGS}/replknet_31b_in1k.py', '''
        model = dict(backbone=dict(arch=dict(_delete_=True, large_kernel_sizes=[31, 29, 27, 13],
                                             layers=[1, 1, 1, 1], channels=[8, 16, 32, 64],
                                             small_kernel=5, dw_ratio=1),
                                   norm_cfg=dict(type='BN')),
                     head=dict(in_channels=64))
        ''')
    proc = run_tool('tools/analysis/erf.py', cfg, '--size', '64', '--num-images', '2',
                    '--out-dir', str(tmp_path / 'erf'), '--name', 'tiny')
    assert '| area ratio |' in proc.stdout
    result = json.load(open(tmp_path / 'erf' / 'tiny.json'))
    ratios = list(result['area_ratio'].values())
    assert len(ratios) == 4 and all(0 < r <= 1 for r in ratios) and ratios == sorted(ratios)
    assert osp.getsize(tmp_path / 'erf' / 'tiny.png') > 1000
    assert np.load(tmp_path / 'erf' / 'tiny.npy').shape == (64, 64)


def test_layer_scale_mode_shows_slak_s_reach_over_convnext_s(tmp_path):
    """The README's comparison. At random init, SLaK's and ConvNeXt's layer scale of 1e-6
    makes both nets nearly their shortcuts: the same small patch. ``--layer-scale 1`` (random
    init only) lets the 51x51-class kernels show against ConvNeXt's 7x7."""
    import json

    def area(config, *extra):
        name = config.split('/')[-1].split('.')[0] + '_'.join(extra)
        run_tool('tools/analysis/erf.py', config, '--size', '192', '--num-images', '1',
                 '--out-dir', str(tmp_path), '--name', name, *extra)
        result = json.load(open(tmp_path / f'{name}.json'))
        assert (tmp_path / f'{name}.png').is_file()
        return result['area_ratio']['t=0.2'], result['layer_scale']

    slak = f'{CONFIGS}/slak_t_in1k.py'
    convnext = 'mmpretrain::convnext/convnext-tiny_32xb128_in1k.py'
    (slak_plain, _), (convnext_plain, _) = area(slak), area(convnext)
    assert abs(slak_plain - convnext_plain) < 0.01  # indistinguishable: the complaint
    (slak_scaled, scale), (convnext_scaled, _) = (area(slak, '--layer-scale', '1'),
                                                  area(convnext, '--layer-scale', '1'))
    assert scale == 1.0 and slak_scaled > 1.25 * convnext_scaled  # (0.153 vs 0.108, seed 0)
    refused = run_tool('tools/analysis/erf.py', slak, '--checkpoint', 'x.pth', '--layer-scale',
                       '1', check=False)
    assert refused.returncode != 0 and 'random' in refused.stderr
