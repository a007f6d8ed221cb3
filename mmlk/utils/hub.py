"""mmengine's hub for mmlk: ``register_all_modules`` (the OpenMMLab convention that
``mmengine.hub.get_model`` calls) and the model build behind ``get_model('mmlk::...')``.

mmengine's ``get_model(f'{package}::...')`` builds under the default scope ``package``. mmlk's
configs are mmseg/mmdet/mmpretrain configs (``default_scope`` of the library that owns the
detector, segmentor or classifier; mmlk's own classes written ``mmlk.X``), so they are built
under the scope they declare; :mod:`mmlk.config_prefix` routes ``get_model`` here.
"""
import datetime
import importlib
import os.path as osp
import warnings
from typing import Callable, List

from mmengine.config import Config
from mmengine.fileio import load
from mmengine.registry import MODELS, DefaultScope

__all__ = ['RowWithoutWeights', 'build_from_hub_config', 'model_entries',
           'no_weights_message', 'register_all_modules']


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every module that registers into mmlk's registries (models, hooks, optimizer
    constructors); with ``init_default_scope`` make ``mmlk`` the default scope, as mmdet's,
    mmseg's and mmpretrain's functions of the same name do for theirs."""
    import mmlk.engine  # noqa: F401
    import mmlk.models  # noqa: F401
    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None or not DefaultScope.check_instance_created('mmlk'):
        DefaultScope.get_instance('mmlk', scope_name='mmlk')
    elif current.scope_name != 'mmlk':
        warnings.warn(f'The current default scope "{current.scope_name}" is not "mmlk"; '
                      'register_all_modules makes it "mmlk" (init_default_scope=False keeps it)')
        DefaultScope.get_instance(f'mmlk-{datetime.datetime.now()}', scope_name='mmlk')


def build_from_hub_config(get_config: Callable[..., Config], cfg_path: str,
                          pretrained: bool = False, **kwargs):
    """``mmengine.hub.get_model`` for an ``mmlk::`` config (see the module docstring).

    mmlk publishes no weights of its own (each metafile entry names the official checkpoint
    and the converter command instead), so ``pretrained=True`` stops with that command."""
    cfg = get_config(cfg_path, pretrained=False)
    if pretrained:
        raise ValueError(_no_weights_message(cfg_path))
    scope = cfg.get('default_scope') or 'mmlk'
    with DefaultScope.overwrite_default_scope(scope):
        if 'data_preprocessor' in cfg:
            cfg.model.data_preprocessor = cfg.data_preprocessor
        importlib.import_module(f'{scope}.utils').register_all_modules(init_default_scope=False)
        register_all_modules(init_default_scope=False)
        return MODELS.build(cfg.model, default_args=kwargs)


def model_entries() -> List[dict]:
    """Every ``Models`` entry of the installed package's metafiles (``.mim/model-index.yml``)."""
    # this file's package, the mmlk being run (mmlk/utils/hub.py -> mmlk/.mim)
    mim = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), '.mim')
    return [entry for metafile in load(osp.join(mim, 'model-index.yml'))['Import']
            for entry in load(osp.join(mim, metafile)).get('Models', [])]


def no_weights_message(entry: dict) -> str:
    """What to do for a metafile entry without ``Weights``: the official file and the
    converter command, or that none exists."""
    if entry.get('Convert'):
        how = (f'download the official checkpoint ({entry.get("Official Weights")}) and '
               f'convert it: {entry["Convert"]}')
    else:
        how = 'no official checkpoint exists for it; train it with tools/train.py'
    return f'mmlk publishes no weights for {entry["Name"]}: {how}'


class RowWithoutWeights(dict):
    """A row of mim's model table (:mod:`mmlk.config_prefix`, ``mim download``): reading its
    missing or empty ``weight`` raises ``click.ClickException`` (one line, exit code 1) with
    :func:`no_weights_message` instead of returning pandas' NaN."""

    def __init__(self, config_id: str, row: dict) -> None:
        super().__init__((key, value) for key, value in row.items()
                         if not (key == 'weight' and not isinstance(value, str)))
        self.config_id = config_id

    def __missing__(self, key: str):
        if key != 'weight':
            raise KeyError(key)
        import click
        entry = next((e for e in model_entries() if e['Name'] == self.config_id),
                     dict(Name=self.config_id))
        raise click.ClickException(no_weights_message(entry))


def _no_weights_message(cfg_path: str) -> str:
    name = cfg_path.split('::', 1)[-1]
    entry = next((e for e in model_entries() if e.get('Config', '').partition('/')[-1] == name),
                 dict(Name=name))
    return (f'{no_weights_message(entry)}; then build with pretrained=False and load the '
            "converted file with mmengine's load_checkpoint")
