"""The supported stacks (mmlk/compat.py, scripts/setup_env.sh): an unsupported torch or mmcv
is refused in one line that names what was found and what is supported."""
import ast
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmlk import compat

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.mark.parametrize('torch_version,mmcv_version,found', [
    ('2.0.1', '2.1.0', 'torch 2.0.1 is older than the oldest supported torch 2.1'),
    ('1.13.1+cu117', None, 'torch 1.13.1+cu117 is older'),
    ('2.14.1', '2.2.0', 'mmcv 2.2.0 is refused by mmdet 3.3.0 / mmseg 1.2.2'),
    ('2.1.2', '1.7.2', 'mmcv 1.7.2 is refused'),
])
def test_unsupported_versions_are_refused_with_the_supported_ones(torch_version, mmcv_version,
                                                                 found):
    with pytest.raises(compat.UnsupportedStackError) as err:
        compat.check_stack(torch_version, mmcv_version)
    message = str(err.value)
    assert found in message
    assert 'Python 3.10 + torch 2.1.2 + torchvision 0.16.2' in message
    assert 'Python 3.11 + torch 2.14.1 + torchvision 0.29.1' in message
    assert 'MMLK_STACK=current|legacy' in message


@pytest.mark.parametrize('torch_version,mmcv_version', [
    ('2.1.2+cu121', '2.1.0'), ('2.14.1', '2.1.0'), ('2.15.0.dev20261201', '2.0.0rc4'),
    ('2.3.1', None)])
def test_supported_versions_pass(torch_version, mmcv_version):
    compat.check_stack(torch_version, mmcv_version)


def test_this_process_runs_a_tested_stack():
    python = '%d.%d' % sys.version_info[:2]
    assert (python, torch.__version__.split('+')[0]) in {
        (py, tv) for py, tv, _ in compat.SUPPORTED_STACKS}


def test_an_old_torch_fails_at_the_first_use_in_one_line():
    """In a fresh process: the registry (what every config build imports first) refuses."""
    code = ('import torch; torch.__version__ = "2.0.1"\n'
            'import mmlk\n'
            'from mmengine.registry import MODELS\n'
            'MODELS.build(dict(type="mmlk.SLaK", arch="tiny"))\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('mmlk.compat.UnsupportedStackError: mmlk does not support this '
                           'environment: torch 2.0.1 is older'), result.stderr[-2000:]


def test_setup_py_states_the_tested_range():
    tree = ast.parse(open(osp.join(ROOT, 'setup.py')).read())
    keywords = {kw.arg: kw.value for node in ast.walk(tree) if isinstance(node, ast.Call)
                for kw in node.keywords}
    oldest_python = min(py for py, _, _ in compat.SUPPORTED_STACKS)
    assert ast.literal_eval(keywords['python_requires']) == f'>={oldest_python}'
    requires = ast.literal_eval(keywords['install_requires'])
    assert f'torch>={".".join(map(str, compat.MIN_TORCH))}' in requires


def test_step_hooks_keep_firing_after_a_dynamo_capture():
    """torch 2.1 strips the hook-running step wrapper from every optimizer class at the first
    torch.export/torch.compile in the process; compat.register_step_post_hook (used by the
    sparse training hook) keeps its hooks firing, exactly once a step, on every stack."""
    torch.export.export(torch.nn.Linear(2, 2), (torch.randn(1, 2), ))

    class PlainSGD(torch.optim.Optimizer):  # defined after the capture: its wrapper is intact
        def __init__(self, params, lr):
            super().__init__(params, dict(lr=lr))

        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                for p in group['params']:
                    p.add_(p.grad, alpha=-group['lr'])

    for cls in (torch.optim.SGD, torch.optim.AdamW, PlainSGD):
        weight = torch.nn.Parameter(torch.ones(3))
        optimizer = cls([weight], lr=0.1)
        calls = []
        compat.register_step_post_hook(optimizer, lambda opt, a, k: calls.append(opt))
        for _ in range(2):
            weight.grad = torch.ones(3)
            optimizer.step()
        assert calls == [optimizer, optimizer], cls.__name__
        assert not torch.equal(weight.detach(), torch.ones(3))
