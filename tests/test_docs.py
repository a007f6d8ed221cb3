"""Every Python snippet of the README and docs/ is real: a whole config (it has ``_base_``
and names its file in a first-line comment) is written to a project folder outside the
repository, loaded by mmengine and its model built; every ``dict(type='mmlk.X', ...)`` of a
fragment is built from its registry. The docs cannot drift from the code."""
import ast
import glob
import os.path as osp
import re
import subprocess
import sys

import pytest

from conftest import REPO

DOCS = [osp.join(REPO, 'README.md')] + sorted(glob.glob(osp.join(REPO, 'docs', '*.md')))


def snippets():
    found = []
    for path in DOCS:
        text = open(path).read()
        for match in re.finditer(r'```python\n(.*?)```', text, re.S):
            if match.group(1).startswith('config = '):
                continue  # an inference script: run by tests/test_user_paths.py
            line = text[:match.start()].count('\n') + 2
            found.append(pytest.param(match.group(1), id=f'{osp.basename(path)}:{line}'))
    return found


def mmlk_dicts(source: str):
    """Every ``dict(type='mmlk.X', ...)`` call of the snippet, outermost first."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'dict':
            kinds = [kw.value for kw in node.keywords if kw.arg == 'type']
            if kinds and isinstance(kinds[0], ast.Constant) and str(
                    kinds[0].value).startswith('mmlk.'):
                yield eval(compile(ast.Expression(node), '<snippet>', 'eval'), {'dict': dict})


BUILD_CONFIG = '''
import sys
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
cfg = Config.fromfile(sys.argv[1])
init_default_scope(cfg.get('default_scope', 'mmlk'))
model = MODELS.build(cfg.model)
print('BUILT', type(model).__name__, type(model.backbone).__name__)
'''


@pytest.mark.parametrize('source', snippets())
def test_snippet_is_real(source, tmp_path):
    if '_base_' in source:
        first = source.splitlines()[0]
        assert first.startswith('# ') and first.endswith('.py'), \
            'a whole config snippet names its file in its first line'
        path = tmp_path / first[2:].strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        # a user's project: no PYTHONPATH, mmlk from the installation
        proc = subprocess.run([sys.executable, '-c', BUILD_CONFIG, str(path)], cwd=str(tmp_path),
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert 'BUILT' in proc.stdout
        return
    from mmlk.registry import HOOKS, MODELS
    built = 0
    for cfg in mmlk_dicts(source):
        registry = HOOKS if cfg['type'].endswith('Hook') else MODELS
        if registry is MODELS:
            cfg = dict(cfg, init_cfg=None)  # a Pretrained file named by the docs is not here
        assert registry.build(cfg) is not None
        built += 1
    assert built, 'a snippet with no mmlk type: nothing to check'
