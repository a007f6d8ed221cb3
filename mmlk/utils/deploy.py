"""What the deployment tools share: a model built from a config for trained weights, loaded
strictly, and its re-parameterised (deploy) form (tools/reparameterize.py,
tools/deployment/export_onnx.py)."""
import inspect
from typing import List

import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from mmlk.core.checkpoint_io import (CheckpointMismatchError, CheckpointReadError,
                                     load_checkpoint_file, load_state_dict_checked,
                                     unwrap_state_dict)

from .hub import register_all_modules

__all__ = ['build_model_for_weights', 'feature_outputs', 'has_deploy_form',
           'load_weights_strictly']


def build_model_for_weights(cfg: Config) -> torch.nn.Module:
    """The config's model, without any pretrained init (the weights are loaded next)."""
    register_all_modules(init_default_scope=False)
    init_default_scope(cfg.get('default_scope', 'mmlk'))
    model_cfg = cfg.model.copy()
    model_cfg.backbone.init_cfg = None
    if 'pretrained' in model_cfg:
        model_cfg.pretrained = None
    if 'data_preprocessor' not in model_cfg and cfg.get('data_preprocessor') is not None:
        model_cfg.data_preprocessor = cfg.data_preprocessor  # mmpretrain keeps it at top level
    return MODELS.build(model_cfg)


def load_weights_strictly(model: torch.nn.Module, checkpoint: str, config: str) -> None:
    """Load ``checkpoint`` into ``model``, every key; ``SystemExit`` naming what does not fit."""
    try:
        load_state_dict_checked(model, unwrap_state_dict(load_checkpoint_file(checkpoint)))
        # (``--trust-checkpoint`` of the calling tool applies through apply_trust)
    except (CheckpointMismatchError, FileNotFoundError) as err:
        raise SystemExit(f'error: {checkpoint} does not fit {config}:\n{err}')
    except CheckpointReadError as err:
        raise SystemExit(f'error: {err}')


def has_deploy_form(backbone: torch.nn.Module) -> bool:
    return 'deploy' in inspect.signature(type(backbone).__init__).parameters


def feature_outputs(model: torch.nn.Module, x: torch.Tensor) -> List[torch.Tensor]:
    """The features after the neck (``extract_feat``), or the module's outputs, as a list."""
    out = model.extract_feat(x) if hasattr(model, 'extract_feat') else model(x)
    return [out] if isinstance(out, torch.Tensor) else list(out)
