"""``mmlk::`` configs for mmengine and mim: the one place mmlk makes them work.

OpenMMLab projects inherit each other's configs as ``_base_ = ['mmdet::faster_rcnn/...py']``.
mmengine accepts only the packages of its ``MODULE2PACKAGE`` table, so without this module
``mmlk::slak/upernet_slak-t_4xb4-160k_ade20k-512x512.py`` fails with "mmengine does not
support to load mmlk config". Three things are adjusted, in mmengine's and mim's modules only,
and only for the package ``mmlk``:

1. ``mmengine.config.utils.MODULE2PACKAGE['mmlk'] = 'mmlk'``: the prefix is accepted;
2. the package directory of ``mmlk`` is where Python imports it from, for editable installs
   too (mmengine and mim look for ``<site-packages>/mmlk``, which an editable install does not
   have; ``mim list`` runs its own copy of that lookup, which no patch reaches, so it lists
   only a non-editable mmlk); its ``.mim/`` holds the configs, tools and model index (the mim
   convention: symlinks to the repository's ``configs/``, ``tools/`` and ``model-index.yml`` in a
   checkout, real copies in a wheel);
3. an inherited ``mmlk::`` config gets no ``_scope_='mmlk'``. mmengine gives a config
   inherited from package P the scope P, so that P's bare type names resolve in P's registry.
   mmlk's configs are mmseg/mmdet/mmpretrain configs (their own ``default_scope``) whose mmlk
   types are already written ``mmlk.X``; scoping them to mmlk would send ``EncoderDecoder``
   to mmlk's registry. So they are inherited as a file of the project would be.

The same hook makes mmlk's checkpoint loader mmengine's loader for local files as soon as
``mmengine.runner.checkpoint`` is imported (:func:`_patch_mmengine_checkpoint`): every
``load_checkpoint``/``load_from``/``--resume``/``Pretrained`` of any script in an environment
where mmlk is installed loads without running code (``mmlk/core/safe_load.py``), the
inferencers and upstream ``tools/test.py`` included, with no ``import mmlk`` by hand.

The patches are applied when mmengine's config module (or mim's utilities) is first imported,
through a meta-path hook, so no mmengine import is paid before then. The hook is installed by
``import mmlk`` and, so that user scripts, mmdet's/mmseg's train scripts and ``mim`` need no
``import mmlk`` before reading a config, at interpreter start-up by the ``mmlk-config-prefix.pth``
file that ``pip install`` (editable or not) puts in site-packages (setup.py).
"""
import importlib.abc
import importlib.util
import os.path as osp
import sys
from typing import Callable, Dict, Optional

__all__ = ['install', 'package_dir']

PACKAGE = 'mmlk'


def package_dir() -> str:
    """The directory ``mmlk`` is imported from (holds ``.mim/``), found without importing."""
    module = sys.modules.get(PACKAGE)
    if module is not None and getattr(module, '__file__', None):
        return osp.dirname(osp.abspath(module.__file__))
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f'{PACKAGE} is not importable')
    return osp.abspath(list(spec.submodule_search_locations)[0])


def _patch_mmengine_config(module) -> None:
    from mmengine.config import utils
    utils.MODULE2PACKAGE.setdefault(PACKAGE, PACKAGE)
    config = module.Config
    if getattr(config._get_cfg_path, '_mmlk', False):
        return
    original_cfg_path = config._get_cfg_path

    def _get_cfg_path(cfg_path: str, filename: str):
        path, scope = original_cfg_path(cfg_path, filename)
        return path, None if scope == PACKAGE else scope

    _get_cfg_path._mmlk = True
    config._get_cfg_path = staticmethod(_get_cfg_path)
    module.get_installed_path = _installed_path(module.get_installed_path)


def _installed_path(original: Callable[[str], str]) -> Callable[[str], str]:
    def get_installed_path(package: str) -> str:
        return package_dir() if package == PACKAGE else original(package)
    get_installed_path._mmlk = True
    return get_installed_path


def _patch_mim_utils(module) -> None:
    if not getattr(module.get_installed_path, '_mmlk', False):
        module.get_installed_path = _installed_path(module.get_installed_path)


def _patch_mmengine_hub(module) -> None:
    """``mmengine.hub.get_config/get_model('mmlk::...')``: the package is found where Python
    imports it from (editable installs too), and ``get_model`` builds an mmlk config in the
    scope the config declares (mmseg/mmdet/mmpretrain: mmlk's own types are written
    ``mmlk.X``), where mmengine's would build it in scope ``mmlk`` and find no
    ``EncoderDecoder``."""
    if getattr(module.get_model, '_mmlk', False):
        return
    module.get_installed_path = _installed_path(module.get_installed_path)
    original_get_model = module.get_model

    def get_model(cfg_path: str, pretrained: bool = False, **kwargs):
        if cfg_path.split('::')[0] != PACKAGE:
            return original_get_model(cfg_path, pretrained, **kwargs)
        from mmlk.utils.hub import build_from_hub_config
        return build_from_hub_config(module.get_config, cfg_path, pretrained, **kwargs)

    get_model._mmlk = True
    get_model.__doc__ = original_get_model.__doc__
    module.get_model = get_model


def _patch_mim_search(module) -> None:
    """``mim download mmlk --config ID`` for an entry without ``Weights`` ends in one line that
    names the official checkpoint and the converter command, where mim's own code fails with
    ``AttributeError: 'float' object has no attribute 'split'`` on the missing field.

    mim runs its command files in a namespace of their own, so the download command itself
    cannot be patched; it reads the table through ``mim.commands.search.get_model_info``,
    which is. mmlk's rows come back as dicts whose missing ``weight`` raises the message
    (``dict.__missing__``); every other use of the table is unchanged."""
    if getattr(module.get_model_info, '_mmlk', False):
        return
    original = module.get_model_info

    def get_model_info(package, *args, **kwargs):
        info = original(package, *args, **kwargs)
        if package != PACKAGE or not isinstance(info, dict):
            return info
        from mmlk.utils.hub import RowWithoutWeights
        return {config_id: RowWithoutWeights(config_id, row) for config_id, row in info.items()}

    get_model_info._mmlk = True
    module.get_model_info = get_model_info


def _patch_mmengine_checkpoint(module) -> None:
    # imported here, not at the top: this module runs at every interpreter start
    # (mmlk-config-prefix.pth) and stays light; the loader itself is imported at the first read
    from mmlk.core.mmengine_loader import register_as_mmengine_loader
    register_as_mmengine_loader(module)


# module name -> patch, applied right after the module's code has run
_PATCHES: Dict[str, Callable] = {
    'mmengine.config.config': _patch_mmengine_config,
    'mmengine.runner.checkpoint': _patch_mmengine_checkpoint,
    'mmengine.hub.hub': _patch_mmengine_hub,
    'mim.utils.utils': _patch_mim_utils,
    'mim.commands.search': _patch_mim_search,
}


class _PatchingLoader(importlib.abc.Loader):
    """The real loader, then the patch (everything else delegated to the real loader)."""

    def __init__(self, loader, patch: Callable) -> None:
        self._loader, self._patch = loader, patch

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        self._patch(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _PatchAfterImport(importlib.abc.MetaPathFinder):

    def find_spec(self, fullname: str, path, target=None):
        patch = _PATCHES.get(fullname)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, 'find_spec'):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchingLoader(spec.loader, patch)
                return spec
        return None


_FINDER: Optional[_PatchAfterImport] = None


def install() -> None:
    """Make ``mmlk::`` configs work: patch the modules already imported, hook the others."""
    global _FINDER
    for name, patch in _PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
    if _FINDER is None:
        _FINDER = _PatchAfterImport()
        sys.meta_path.insert(0, _FINDER)
