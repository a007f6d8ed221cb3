"""The ConvNeXt macro design, written once, with the spatial mixer as a parameter.

Liu et al., "A ConvNet for the 2020s", CVPR 2022. SLaK, the 2024 shift-wise nets and
KernelWarehouse's ConvNeXt are this network with another depthwise layer in each block, so they
subclass :class:`ConvNeXtSkeleton` and only say how to build that layer.

Module names follow the official ConvNeXt/SLaK code (``downsample_layers.i``, ``stages.i.j``,
``large_kernel``, ``gamma``, ``pwconv1``...) so official checkpoints map by key prefix only, and
mmseg/mmdet's ConvNeXt layer-decay id rules apply unchanged.
"""
import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor, nn

from mmlk.core.validation import check_int_sequence
from mmlk.ops import LayerNorm2d

from ..utils import checkpointed
from .base import LargeKernelBackbone

__all__ = ['ConvNeXtBlock', 'ConvNeXtSkeleton', 'resolve_arch', 'split_kernel_sizes']

MixerFactory = Callable[[int, int], nn.Module]
"""``factory(channels, stage_index) -> module``: builds a block's spatial (depthwise) mixer."""


def resolve_arch(arch: Union[str, dict], arch_zoo: Dict[str, dict], required: Sequence[str],
                 name: str) -> dict:
    """Look ``arch`` up in ``arch_zoo`` or validate a user dict with the ``required`` keys."""
    if isinstance(arch, str):
        if arch not in arch_zoo:
            raise ValueError(f'unknown {name} arch {arch!r}; choose one of {sorted(arch_zoo)} '
                             f'or pass a dict with keys {list(required)}')
        return dict(arch_zoo[arch])
    if not isinstance(arch, dict):
        raise TypeError(f'{name} arch must be a str or a dict, got {type(arch).__name__}')
    missing = [k for k in required if k not in arch]
    if missing:
        raise ValueError(f'custom {name} arch is missing {missing}; it needs {list(required)}')
    return dict(arch)


def split_kernel_sizes(kernel_size: Sequence[int], num_stages: int,
                       example: str) -> Tuple[List[int], int]:
    """``(M0, ..., M{n-1}, k)`` -> ``([M0, ...], k)``: the long side of each stage's kernel and
    the shared small side, or a TypeError/ValueError showing ``example``."""
    if not isinstance(kernel_size, (list, tuple)):
        raise TypeError(f'kernel_size must be a list of {num_stages + 1} odd integers: the long '
                        f'side of each of the {num_stages} stages and the short side, e.g. '
                        f'{example}; got {kernel_size!r}')
    kernel_size = check_int_sequence(kernel_size, 'kernel_size')
    if len(kernel_size) != num_stages + 1:
        raise ValueError(f'kernel_size needs the long side of each of the {num_stages} stages '
                         f'and the short side, e.g. {example}; got {kernel_size}')
    return kernel_size[:-1], kernel_size[-1]


class ConvNeXtBlock(BaseModule):
    """ConvNeXt block: spatial mixer -> LN -> Linear(C, rC) -> GELU -> Linear -> layer scale ->
    drop path + residual (Liu et al., CVPR 2022).

    Args:
        channels: block width C.
        mixer: the depthwise spatial layer, stored as ``large_kernel`` (official SLaK name).
        mlp_ratio: hidden width ratio r of the inverted bottleneck.
        drop_path: stochastic depth rate of this block.
        layer_scale_init_value: initial value of the per-channel scale ``gamma``; <= 0 disables it.
        with_cp: gradient checkpointing, applied only when the input needs gradients.
    """

    def __init__(self,
                 channels: int,
                 mixer: nn.Module,
                 mlp_ratio: float = 4.,
                 drop_path: float = 0.,
                 layer_scale_init_value: float = 1e-6,
                 with_cp: bool = False) -> None:
        super().__init__()
        hidden = int(mlp_ratio * channels)
        self.large_kernel = mixer
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.pwconv1 = nn.Linear(channels, hidden)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(hidden, channels)
        if layer_scale_init_value > 0:
            self.gamma = nn.Parameter(torch.full((channels, ), float(layer_scale_init_value)))
        else:
            self.gamma = None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.with_cp = with_cp

    def _residual(self, x: Tensor) -> Tensor:
        y = self.large_kernel(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        if self.gamma is not None:
            y = y * self.gamma
        return self.drop_path(y.permute(0, 3, 1, 2))

    def forward(self, x: Tensor) -> Tensor:
        return x + checkpointed(self._residual, x, self.with_cp)


class ConvNeXtSkeleton(LargeKernelBackbone):
    """ConvNeXt macro design (stem, 4 stages, LN + 2x2 downsampling) with a pluggable mixer.

    Subclasses decide depths, widths and the mixer; this class owns the downstream API shared
    by every mmlk ConvNeXt-style backbone: ``out_indices`` with one output norm ``norm{i}`` each,
    ``gap_before_final_norm`` for classification, ``frozen_stages``, ``norm_eval``, ``with_cp``,
    ``get_layer_depth``/``get_stage_depth`` for layer-wise LR decay, ``switch_to_deploy`` and a
    ``Pretrained`` init that reads official checkpoint containers and checks every key.

    Args:
        depths: blocks per stage (4 ints).
        dims: channels per stage (4 ints).
        mixer_factory: ``factory(channels, stage_index)`` building each block's spatial mixer.
        in_channels: input image channels.
        mlp_ratio: inverted-bottleneck ratio.
        drop_path_rate: stochastic depth at the last block; linear from 0 over all blocks.
        layer_scale_init_value: initial layer scale; <= 0 disables it.
        out_indices: stages whose outputs are returned (negative indices allowed).
        frozen_stages: mmlk's one convention: -1 nothing, 0 the stem (``downsample_layers.0``),
            n the stem and stages 0..n-1 with their downsampling layers and output norms, set
            to eval mode without gradients.
        norm_eval: keep every BatchNorm in eval mode during training (frozen statistics).
        with_cp: gradient checkpointing in every block.
        gap_before_final_norm: global-average-pool each output before its norm and return
            ``(N, C)`` vectors (ImageNet classification, as mmpretrain's ConvNeXt); False
            returns ``(N, C, H, W)`` maps for detection and segmentation.
        init_cfg: mmengine init config; ``dict(type='Pretrained', checkpoint=..., prefix=...)``
            also accepts official ``{'model': ...}`` containers and is loaded strictly.
        pretrained: mmseg/mmdet's deprecated ``pretrained=PATH`` (``EncoderDecoder`` passes
            its ``pretrained`` to the backbone), turned into that ``init_cfg``.
    """

    num_stages = 4

    def __init__(self,
                 depths: Sequence[int],
                 dims: Sequence[int],
                 mixer_factory: MixerFactory,
                 in_channels: int = 3,
                 mlp_ratio: float = 4.,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-6,
                 out_indices: Union[int, Sequence[int]] = -1,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 gap_before_final_norm: bool = True,
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 pretrained: Optional[str] = None,
                 **unknown) -> None:
        # Registered subclasses pass their **kwargs here: an argument nobody took is named
        # with the registered type (not this internal class) and what it accepts.
        self.refuse_unknown_arguments(unknown, internal=('depths', 'dims', 'mixer_factory'))
        super().__init__(init_cfg=init_cfg, pretrained=pretrained)
        self.begin_build()
        depths, dims = list(depths), list(dims)
        if len(depths) != self.num_stages or len(dims) != self.num_stages:
            raise ValueError(f'depths and dims need {self.num_stages} entries each, '
                             f'got depths={depths}, dims={dims}')
        if any(d < 1 for d in depths) or any(c < 1 for c in dims):
            raise ValueError(f'depths and dims must be positive, got depths={depths}, dims={dims}')
        self.depths, self.dims = depths, dims
        self._check_drop_path_rate(drop_path_rate)
        self.out_indices = self._check_out_indices(out_indices)
        self.frozen_stages = self._check_frozen_stages(frozen_stages, self.num_stages)
        self.norm_eval = norm_eval
        self.gap_before_final_norm = gap_before_final_norm

        self.downsample_layers = nn.ModuleList(
            [self.build_stem(in_channels, dims[0])] +
            [self.build_downsample(dims[i - 1], dims[i]) for i in range(1, self.num_stages)])

        total = sum(depths)  # linear stochastic-depth schedule, as torch.linspace(0, rate, total)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.stages = nn.ModuleList()
        block_index = 0
        for i, (depth, channels) in enumerate(zip(depths, dims)):
            blocks = [
                self.build_block(channels, mixer_factory(channels, i), stage_index=i,
                                 mlp_ratio=mlp_ratio,
                                 drop_path=rates[block_index + j],
                                 layer_scale_init_value=layer_scale_init_value, with_cp=with_cp)
                for j in range(depth)
            ]
            block_index += depth
            self.stages.append(nn.Sequential(*blocks))

        for i in self.out_indices:
            self.add_module(f'norm{i}', LayerNorm2d(dims[i]))
        self.finish_build()
        self._freeze_stages()

    # ------------------------------------------------------------------ macro-design parts
    # ConvNeXt's; a network with the same stage layout but other stem/blocks overrides these.
    def begin_build(self) -> None:
        """Called before any layer is built (e.g. to create modules the layers share)."""

    def finish_build(self) -> None:
        """Called once every layer exists, before freezing (e.g. a two-phase build's end)."""

    def build_stem(self, in_channels: int, channels: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(in_channels, channels, 4, stride=4), LayerNorm2d(channels))

    def build_downsample(self, in_channels: int, channels: int) -> nn.Module:
        return nn.Sequential(LayerNorm2d(in_channels),
                             nn.Conv2d(in_channels, channels, 2, stride=2))

    def build_block(self, channels: int, mixer: nn.Module, stage_index: int,
                    **kwargs) -> nn.Module:
        return ConvNeXtBlock(channels, mixer, **kwargs)

    @property
    def out_channels(self) -> List[int]:
        """Channels of each returned feature, for neck/head ``in_channels``."""
        return [self.dims[i] for i in self.out_indices]

    # ------------------------------------------------------------------ forward / train state
    def forward_stages(self, x: Tensor) -> Tuple[Tensor, ...]:
        outs = []
        for i in range(self.num_stages):
            x = self.stages[i](self.downsample_layers[i](x))
            if i in self.out_indices:
                norm = getattr(self, f'norm{i}')
                if self.gap_before_final_norm:
                    outs.append(norm(x.mean((-2, -1), keepdim=True)).flatten(1))
                else:
                    outs.append(norm(x))
        return tuple(outs)

    def _frozen_modules(self) -> List[nn.Module]:
        """mmlk's one ``frozen_stages`` convention: -1 nothing, 0 the stem
        (``downsample_layers.0``), n the stem and stages 0..n-1 with the downsampling layers
        and output norms between them."""
        if self.frozen_stages < 0:
            return []
        modules = [self.downsample_layers[0]]
        for i in range(self.frozen_stages):
            modules += [self.downsample_layers[i], self.stages[i]] if i else [self.stages[i]]
            if i in self.out_indices:
                modules.append(getattr(self, f'norm{i}'))
        return modules

    def _freeze_stages(self) -> None:
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    # ------------------------------------------------------------------ layer-wise LR decay
    @property
    def max_layer_id(self) -> int:
        # The ConvNeXt rule (mmpretrain/mmseg/mmdet): stage 2 is split into groups of 3 blocks.
        return 12 if self.depths[-2] > 9 else 6

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """Layer id of a parameter for layer-wise decay, and the number of layers.

        Same ids as mmpretrain's ConvNeXt and mmseg/mmdet's ``get_layer_id_for_convnext``;
        parameters outside the backbone (neck, heads) get the last id.
        """
        num_layers = self.max_layer_id + 2
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        name = param_name[len(prefix):]
        match = re.match(r'(downsample_layers|stages)\.(\d+)(?:\.(\d+))?', name)
        if match is None:  # output norms
            return num_layers - 1, num_layers
        kind, stage = match.group(1), int(match.group(2))
        if kind == 'downsample_layers':
            layer_id = {0: 0, 1: 2, 2: 3}.get(stage, self.max_layer_id)
        elif stage in (0, 1):
            layer_id = stage + 1
        elif stage == 2:
            layer_id = 3 + int(match.group(3)) // 3
        else:
            layer_id = self.max_layer_id
        return layer_id, num_layers

    def get_stage_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """Stage id of a parameter for stage-wise decay (mmseg's ``stage_wise``).

        Downsampling layers are 0, ``stages.i`` is ``i + 1`` and everything else is the last id;
        the number of layers matches :meth:`get_layer_depth` so that decay rates tuned for
        ConvNeXt configs give the same scales.
        """
        num_layers = self.max_layer_id + 2
        name = param_name[len(prefix):] if param_name.startswith(prefix) else None
        if name is None or not name.startswith(('downsample_layers.', 'stages.')):
            return num_layers - 1, num_layers
        if name.startswith('downsample_layers.'):
            return 0, num_layers
        return int(name.split('.')[1]) + 1, num_layers

    # ------------------------------------------------------------------ initialisation
    def _default_init(self) -> None:
        # The official initialisation: truncated normal convs/linears, zero biases.
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                trunc_normal_(module.weight, std=.02)
                if module.bias is not None:
                    nn.init.constant_(module.bias, 0)

    def convert_official_keys(self, state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Rename an official checkpoint's keys to ours (identity for ConvNeXt-style nets
        except the classification ``norm``, which is our ``norm3`` when pooling first)."""
        if self.gap_before_final_norm and 'norm3' not in state_dict and any(
                k.startswith('norm.') for k in state_dict):
            state_dict = {('norm3.' + k[5:] if k.startswith('norm.') else k): v
                          for k, v in state_dict.items()}
        return state_dict

    def _classification_norm_prefix(self) -> Optional[str]:
        # A classification backbone's norm3 is the pooled final norm; a dense one's is C5's.
        return None if self.gap_before_final_norm else 'norm3.'

    def _may_miss(self, key: str) -> bool:
        # An ImageNet checkpoint has no output norms for detection/segmentation outputs.
        return re.match(r'norm\d\.', key) is not None

    def _may_ignore(self, key: str) -> bool:
        # The classifier head and the ImageNet final norm of a dense-prediction backbone.
        return key.startswith(('head.', 'norm.'))
