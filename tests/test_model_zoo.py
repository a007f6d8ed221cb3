"""model-index.yml + metafiles: complete, consistent with the configs, and the README table."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.utils import import_modules_from_strings

from conftest import CONFIGS, REPO, run_tool
from test_configs import ALIASES

import sys  # noqa: E402
sys.path.insert(0, osp.join(REPO, 'tools'))
from model_zoo import load_model_index  # noqa: E402

INDEX = load_model_index(REPO)
MODELS = INDEX['models']


def test_every_config_family_has_a_metafile():
    families = {d for d in next(__import__('os').walk(CONFIGS))[1] if d not in ('_base_', 'demo')}
    imported = {osp.basename(osp.dirname(c['metafile'])) for c in INDEX['collections']}
    assert families == imported, 'add configs/<family>/metafile.yml to model-index.yml'


def test_every_family_config_is_listed_once():
    listed = [m['Config'] for m in MODELS]
    assert len(listed) == len(set(listed))
    for collection in INDEX['collections']:
        family_dir = osp.dirname(collection['metafile'])
        on_disk = {osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, family_dir, '*.py'))}
        assert on_disk == {c for c in listed if c.startswith(family_dir + '/')}, family_dir
    # the flat entry points all stand for listed configs
    assert {osp.normpath(osp.join('configs', osp.dirname(a), open(osp.join(CONFIGS, a)).read()
                                  .split("'")[1])) for a in ALIASES} <= set(listed)


def test_metafile_entries_are_complete():
    names = {m['Name'] for m in MODELS}
    for model in MODELS:
        assert model['Name'] == osp.splitext(osp.basename(model['Config']))[0]
        assert model['In Collection'] in {c['Name'] for c in INDEX['collections']}
        for result in model.get('Results') or []:
            assert result['Source'] == 'paper' and result['Metrics']
            assert all(0 < v < 100 for v in result['Metrics'].values())
        if 'Convert' in model:
            tool = model['Convert'].split(' ')[1]
            assert osp.isfile(osp.join(REPO, tool)), tool
        pretrained = model.get('Pretrained')
        assert pretrained is None or pretrained in names or 'official' in pretrained
    for collection in INDEX['collections']:
        for key in ('README', 'Converter'):
            assert osp.isfile(osp.join(REPO, collection[key])), collection[key]
        assert osp.isfile(osp.join(REPO, collection['Code']['URL']))


@pytest.mark.parametrize('model', MODELS, ids=[m['Name'] for m in MODELS])
def test_metafile_config_builds_at_full_size(model):
    """Built on the meta device (no memory, no init); classifiers must have the listed size."""
    cfg = Config.fromfile(osp.join(REPO, model['Config']))
    if cfg.get('custom_imports'):  # as the Runner does
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.default_scope)
    registry = __import__(f'{cfg.default_scope}.registry', fromlist=['MODELS']).MODELS
    cfg.model.backbone.init_cfg = None
    if cfg.model.backbone.get('norm_cfg', {}).get('type') == 'SyncBN':
        cfg.model.backbone.norm_cfg = dict(type='BN')
    with torch.device('meta'):
        built = registry.build(cfg.model)
    params = model.get('Metadata', {}).get('Parameters')
    if params is not None:
        assert sum(p.numel() for p in built.parameters()) == params


def test_readme_model_zoo_table_is_generated_from_the_metafiles():
    proc = run_tool('tools/model_zoo.py', '--check', check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
