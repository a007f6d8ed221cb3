"""Layer-wise learning-rate decay for any backbone that reports its layer depth.

mmseg's and mmdet's ``LearningRateDecayOptimizerConstructor`` only accept backbones whose class
name contains "ConvNeXt", and mmpretrain's needs ``get_layer_depth`` on the whole model. This
constructor asks ``model.backbone.get_layer_depth(name, 'backbone.')`` (mmpretrain's protocol)
so it works for detectors, segmentors and classifiers alike, and reads the mmseg/mmdet
``paramwise_cfg`` keys so ConvNeXt recipes port unchanged.
"""
import copy
from typing import Dict, List, Optional

import torch
from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.normalization import GroupNorm, LayerNorm

from mmlk.compat import HAS_CPU_FUSED_OPTIMIZERS
from mmlk.registry import OPTIM_WRAPPER_CONSTRUCTORS

__all__ = ['LayerDecayOptimWrapperConstructor']

_DECAY_TYPES = {'layer_wise': 'get_layer_depth', 'stage_wise': 'get_stage_depth'}
_KNOWN_KEYS = {
    'decay_rate', 'layer_decay_rate', 'decay_type', 'num_layers', 'norm_decay_mult',
    'bias_decay_mult', 'flat_decay_mult', 'custom_keys'
}


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Parameter groups with ``lr = base_lr * decay_rate ** (num_layers - layer_id - 1)``.

    The decay follows BEiT/ConvNeXt fine-tuning (Bao et al. 2021; Liu et al. 2022): layers near
    the input get smaller learning rates. ``layer_id`` comes from the backbone:
    ``get_layer_depth`` for ``decay_type='layer_wise'``, ``get_stage_depth`` for
    ``'stage_wise'``; necks and heads get the last id (scale 1).

    ``paramwise_cfg`` keys:
        decay_rate (alias ``layer_decay_rate``): the per-layer factor (default 1, no decay).
        decay_type: ``'layer_wise'`` (default) or ``'stage_wise'``.
        num_layers: optional; the mmseg/mmdet value (the backbone's largest block id). Checked
            against the backbone so a ported config cannot silently use other scales.
        norm_decay_mult, bias_decay_mult, flat_decay_mult: weight-decay multipliers for norm
            parameters, biases and other 1-D parameters (layer scale); all default to 0, the
            mmseg/mmdet/ConvNeXt rule "no weight decay for 1-D parameters".
        custom_keys: ``{substring: dict(lr_mult=..., decay_mult=...)}``, longest match wins,
            applied on top of the layer scale.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        paramwise_cfg = dict(paramwise_cfg or {})
        unknown = set(paramwise_cfg) - _KNOWN_KEYS
        if unknown:
            raise ValueError(f'unknown paramwise_cfg keys {sorted(unknown)} for '
                             f'LayerDecayOptimWrapperConstructor; accepted: {sorted(_KNOWN_KEYS)}')
        super().__init__(optim_wrapper_cfg, None)
        self.decay_rate = float(
            paramwise_cfg.get('decay_rate', paramwise_cfg.get('layer_decay_rate', 1.0)))
        self.decay_type = paramwise_cfg.get('decay_type', 'layer_wise')
        if self.decay_type not in _DECAY_TYPES:
            raise ValueError(f'decay_type must be one of {sorted(_DECAY_TYPES)}, '
                             f'got {self.decay_type!r}')
        self.num_layers = paramwise_cfg.get('num_layers')
        self.norm_decay_mult = float(paramwise_cfg.get('norm_decay_mult', 0.))
        self.bias_decay_mult = float(paramwise_cfg.get('bias_decay_mult', 0.))
        self.flat_decay_mult = float(paramwise_cfg.get('flat_decay_mult', 0.))
        self.custom_keys = dict(paramwise_cfg.get('custom_keys', {}))
        # Non-empty so that the parent's __call__ routes through add_params.
        self.paramwise_cfg = dict(paramwise_cfg, decay_type=self.decay_type)

    def __call__(self, model: nn.Module) -> OptimWrapper:
        # ``fused=True`` (the CPU demo's AdamW) on a CPU model with torch < 2.4, whose fused
        # optimizers are GPU-only: torch's foreach implementation, the same update.
        first = next(model.parameters(), None)
        if (self.optimizer_cfg.get('fused') and not HAS_CPU_FUSED_OPTIMIZERS
                and first is not None and first.device.type == 'cpu'):
            MMLogger.get_current_instance().warning(
                f'torch {torch.__version__} has no fused {self.optimizer_cfg.get("type")} for '
                'CPU tensors (torch >= 2.4 has); using its foreach implementation (the same '
                'update, slower)')
            self.optimizer_cfg = dict(copy.deepcopy(self.optimizer_cfg), fused=False)
        return super().__call__(model)

    def add_params(self, params: List[dict], module: nn.Module, **kwargs) -> None:
        backbone = getattr(module, 'backbone', None)
        method = _DECAY_TYPES[self.decay_type]
        depth_fn = getattr(backbone, method, None)
        if depth_fn is None:
            raise TypeError(
                f'{self.decay_type} decay needs model.backbone.{method}(name, prefix); '
                f'{type(backbone).__name__ if backbone is not None else type(module).__name__} '
                'has none (every mmlk backbone and mmpretrain ConvNeXt/ViT provide '
                'get_layer_depth)')
        norm_params = {
            id(p)
            for m in module.modules() if isinstance(m, (_BatchNorm, GroupNorm, LayerNorm))
            for p in m.parameters(recurse=False)
        }
        base_wd = self.base_wd or 0.
        groups: Dict[str, dict] = {}
        checked_num_layers = False
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            layer_id, num_layers = depth_fn(name, 'backbone.')
            if not checked_num_layers:
                self._check_num_layers(num_layers)
                checked_num_layers = True
            if id(param) in norm_params:
                decay_mult, kind = self.norm_decay_mult, 'norm'
            elif name.endswith('.bias'):
                decay_mult, kind = self.bias_decay_mult, 'bias'
            elif param.ndim == 1:
                decay_mult, kind = self.flat_decay_mult, 'flat'
            else:
                decay_mult, kind = 1., 'weight'
            lr_mult, custom = 1., ''
            for key in sorted(self.custom_keys, key=len, reverse=True):
                if key in name:
                    lr_mult = self.custom_keys[key].get('lr_mult', 1.)
                    decay_mult *= self.custom_keys[key].get('decay_mult', 1.)
                    custom = f'_{key}'
                    break
            scale = self.decay_rate**(num_layers - layer_id - 1) * lr_mult
            group_name = f'layer_{layer_id}_{kind}{custom}'
            group = groups.setdefault(group_name, dict(
                params=[], param_names=[], group_name=group_name, lr_scale=scale,
                lr=scale * self.base_lr, weight_decay=decay_mult * base_wd))
            group['params'].append(param)
            group['param_names'].append(name)
        params.extend(groups.values())
        logger = MMLogger.get_current_instance()
        summary = ', '.join(f'{g["group_name"]}: lr_scale={g["lr_scale"]:.4f} '
                            f'wd={g["weight_decay"]:g} ({len(g["params"])} params)'
                            for g in groups.values())
        logger.debug(f'layer-wise decay ({self.decay_type}, rate {self.decay_rate}): {summary}')

    def _check_num_layers(self, num_layers: int) -> None:
        # mmseg/mmdet count num_layers without the two extra ids (embedding, heads).
        if self.num_layers is not None and int(self.num_layers) + 2 != num_layers:
            raise ValueError(
                f'paramwise_cfg.num_layers={self.num_layers} does not match the backbone, whose '
                f'layer ids run to {num_layers - 2} (set num_layers={num_layers - 2} or drop it)')
