import subprocess
import sys

import pytest
from mmengine.registry import init_default_scope

from conftest import REPO, TINY_ARCH

BACKBONE = dict(type='mmlk.SLaK', arch=TINY_ARCH, kernel_size=(13, 11, 9, 7, 3),
                out_indices=(0, 1, 2, 3), gap_before_final_norm=False)


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg', 'mmpretrain'])
def test_scoped_backbone_builds_from_every_codebase(scope):
    MODELS = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    init_default_scope(scope)
    model = MODELS.build(dict(BACKBONE))
    assert type(model).__name__ == 'SLaK' and model.out_channels == [10, 20, 41, 83]


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg', 'mmpretrain'])
def test_unknown_type_is_a_clear_error(scope):
    MODELS = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    init_default_scope(scope)
    with pytest.raises(KeyError, match=r'mmlk\.SLaKK is not in the \w+::model registry'):
        MODELS.build(dict(BACKBONE, type='mmlk.SLaKK'))


def test_registries_are_children_of_mmengine_roots():
    from mmengine import registry as root

    from mmlk import registry
    for name in ('MODELS', 'HOOKS', 'OPTIM_WRAPPER_CONSTRUCTORS', 'OPTIM_WRAPPERS'):
        node = getattr(registry, name)
        assert node.scope == 'mmlk' and node.parent is getattr(root, name)
    assert registry.OPTIM_WRAPPER_CONSTRUCTORS.get('LayerDecayOptimWrapperConstructor')


def test_import_mmlk_stays_light():
    code = ('import sys, mmlk, mmlk.registry, mmlk.models, mmlk.engine;'
            'bad = [m for m in ("mmdet", "mmseg", "mmpretrain") if m in sys.modules];'
            'print(bad); sys.exit(1 if bad else 0)')
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
