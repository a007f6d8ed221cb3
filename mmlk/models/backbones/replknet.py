"""RepLKNet backbone (Ding et al., "Scaling Up Your Kernels to 31x31: Revisiting Large Kernel
Design in CNNs", CVPR 2022).

Built as the official ``replknet.py`` builds it, with the official module names, so official
ImageNet checkpoints, official mmseg 0.x / mmdet 2.x backbones and mmpretrain's converted
weights all load by key prefix only. Differences from mmpretrain's port, on purpose:
``norm_intermediate_features`` is honoured (official 31B/31L downstream models have no BN on
their outputs), ``norm_cfg``/``act_cfg`` reach every layer, ``frozen_stages`` also freezes the
transitions between frozen stages, gradient checkpointing runs only when gradients are needed
(so eval and ONNX export never trace through ``torch.utils.checkpoint``), and large kernels
run on channels-last data (7-10x faster on CPU, benchmarks/bench_replknet.py).
"""
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmlk.ops import (ConvBN, ReparamLargeKernelConv, fold_conv_bn_state, switch_to_deploy,
                      to_depthwise_layout)
from mmlk.ops.reparam import fold_bn_into_next_conv, fold_pre_bn_state
from mmlk.core.checkpoint_io import CheckpointMismatchError
from mmlk.registry import MODELS

from ..utils import checkpointed
from .base import LargeKernelBackbone, require_upstream_value
from .convnext_skeleton import resolve_arch

__all__ = ['RepLKBlock', 'ConvFFN', 'RepLKNetStage', 'RepLKNet']


class RepLKBlock(BaseModule):
    """RepLKNet's spatial block: ``x + drop_path(pw2(act(large_kernel(pw1(prelkb_bn(x))))))``.

    ``pw1`` is a 1x1 conv-BN-act to ``int(C * dw_ratio)`` channels, ``large_kernel`` a
    :class:`~mmlk.ops.ReparamLargeKernelConv`, ``pw2`` a 1x1 conv-BN back to ``C``.
    """

    def __init__(self,
                 channels: int,
                 dw_channels: int,
                 kernel_size: int,
                 small_kernel: Optional[int],
                 drop_path: float = 0.,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU'),
                 deploy: bool = False) -> None:
        super().__init__()
        self.pw1 = ConvBN(channels, dw_channels, 1, norm_cfg=norm_cfg, act_cfg=act_cfg,
                          deploy=deploy)
        self.pw2 = ConvBN(dw_channels, channels, 1, norm_cfg=norm_cfg, deploy=deploy)
        self.large_kernel = ReparamLargeKernelConv(dw_channels, kernel_size, small_kernel,
                                                   norm_cfg=norm_cfg, deploy=deploy)
        self.lk_nonlinear = build_activation_layer(act_cfg)
        # The deploy form folds this BN into pw1 (a 1x1 conv: exact), see _fold_pre_bn.
        self.prelkb_bn = nn.Identity() if deploy else build_norm_layer(norm_cfg, channels)[1]
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.pw1(self.prelkb_bn(x))
        out = self.pw2(self.lk_nonlinear(self.large_kernel(out)))
        return x + self.drop_path(out)

    def switch_to_deploy(self) -> None:
        switch_to_deploy(self)  # pw1, pw2, large_kernel
        self.prelkb_bn = _fold_pre_bn(self.prelkb_bn, self.pw1)


class ConvFFN(BaseModule):
    """RepLKNet's channel block: ``x + drop_path(pw2(act(pw1(preffn_bn(x)))))`` with 1x1
    conv-BNs ``C -> ffn_ratio * C -> C`` and GELU."""

    def __init__(self,
                 channels: int,
                 ffn_ratio: float = 4,
                 drop_path: float = 0.,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='GELU'),
                 deploy: bool = False) -> None:
        super().__init__()
        hidden = int(channels * ffn_ratio)
        self.preffn_bn = nn.Identity() if deploy else build_norm_layer(norm_cfg, channels)[1]
        self.pw1 = ConvBN(channels, hidden, 1, norm_cfg=norm_cfg, deploy=deploy)
        self.pw2 = ConvBN(hidden, channels, 1, norm_cfg=norm_cfg, deploy=deploy)
        self.nonlinear = build_activation_layer(act_cfg)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.pw2(self.nonlinear(self.pw1(self.preffn_bn(x))))
        return x + self.drop_path(out)

    def switch_to_deploy(self) -> None:
        switch_to_deploy(self)  # pw1, pw2
        self.preffn_bn = _fold_pre_bn(self.preffn_bn, self.pw1)


def _fold_pre_bn(bn: nn.Module, pw1: ConvBN) -> nn.Module:
    """Fold a block's pre-BN into its deployed 1x1 ``pw1`` (exact: no padding); Identity."""
    if isinstance(bn, nn.Identity):
        return bn
    kernel, bias = fold_bn_into_next_conv(bn, pw1.conv.weight.detach(), pw1.conv.bias.detach())
    pw1.conv.weight.data.copy_(kernel)
    pw1.conv.bias.data.copy_(bias)
    return nn.Identity()


class RepLKNetStage(BaseModule):
    """``num_blocks`` (RepLKBlock, ConvFFN) pairs in one ``blocks`` list, as the official code
    interleaves them (``blocks[2i]`` spatial, ``blocks[2i+1]`` channel), plus the output norm
    ``norm`` (a BN when ``with_norm``, else Identity) applied only to the returned feature."""

    def __init__(self,
                 channels: int,
                 num_blocks: int,
                 kernel_size: int,
                 small_kernel: Optional[int],
                 dw_ratio: float,
                 ffn_ratio: float,
                 drop_path_rates: Sequence[float],
                 with_norm: bool,
                 norm_cfg: dict,
                 act_cfg: dict,
                 ffn_act_cfg: dict,
                 with_cp: bool = False,
                 deploy: bool = False) -> None:
        super().__init__()
        self.with_cp = with_cp
        self.blocks = nn.ModuleList()
        for i in range(num_blocks):
            self.blocks.append(
                RepLKBlock(channels, int(channels * dw_ratio), kernel_size, small_kernel,
                           drop_path_rates[i], norm_cfg, act_cfg, deploy))
            self.blocks.append(
                ConvFFN(channels, ffn_ratio, drop_path_rates[i], norm_cfg, ffn_act_cfg, deploy))
        self.norm = build_norm_layer(norm_cfg, channels)[1] if with_norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = checkpointed(block, x, self.with_cp)
        return x


@MODELS.register_module()
class RepLKNet(LargeKernelBackbone):
    """RepLKNet (Ding et al., CVPR 2022): 31x31 depthwise kernels with a parallel 5x5 branch
    re-parameterised into the large kernel for deployment.

    Stem (3x3 s2 conv, dw 3x3, 1x1, dw 3x3 s2; each conv-BN-ReLU), four stages of interleaved
    :class:`RepLKBlock`/:class:`ConvFFN`, and transitions (1x1 conv-BN-ReLU, dw 3x3 s2
    conv-BN-ReLU) between stages; output strides 4, 8, 16, 32.

    Args:
        arch: ``'31B'``, ``'31L'``, ``'XL'`` or a dict with ``large_kernel_sizes``, ``layers``,
            ``channels``, ``small_kernel`` (int or None) and ``dw_ratio``.
        in_channels: input image channels.
        ffn_ratio: ConvFFN hidden ratio.
        out_indices: stages whose outputs are returned (negative indices allowed).
        drop_path_rate: stochastic depth of the last block pair, linear from 0 over all pairs
            (official default 0.3; the recipes use 0.1-0.8, see the configs).
        norm_intermediate_features: a BN on every stage output, as official XL downstream
            models (31B/31L downstream models have none).
        final_norm: the official classification BN (``norm``) on the last stage's output,
            stored as ``stages.3.norm`` like mmpretrain; use with ``out_indices=(3,)`` and a
            global-pooling neck. Official checkpoints' ``norm.*`` is renamed on loading.
        frozen_stages: -1 freezes nothing, 0 the stem, ``n > 0`` the stem, stages ``0..n-1``
            and the transitions between them (mmpretrain's convention; its port leaves the
            transitions trainable).
        norm_eval: keep every BatchNorm in eval mode during training.
        with_cp: gradient checkpointing of the stem and every block, when gradients are needed.
        norm_cfg: every norm (official: SyncBN in training).
        act_cfg: stem, transitions and RepLK blocks (ReLU).
        ffn_act_cfg: ConvFFN activation (GELU).
        deploy: build the inference form: one biased large kernel per block (the official
            ``small_kernel_merged=True``), every conv-BN pair folded into a biased conv and
            each block's pre-BN folded into its 1x1 ``pw1`` (no BatchNorm left);
            official/mmpretrain deploy checkpoints (merged kernels, unfolded BNs) are folded
            on loading.
        init_cfg: ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')`` accepts
            official raw/``{'model': ...}``/mmseg/mmdet/mmpretrain checkpoints and is strict;
            None keeps PyTorch's default initialisation, as the official code does.
        strides, dilations, conv_cfg, small_kernel_merged: mmpretrain's ``RepLKNet``
            arguments, accepted so that its configs swap in ``type='mmlk.RepLKNet'``.
            ``strides`` (of each stage's downsampling, mmpretrain's documented
            ``(2, 2, 2, 2)``), ``dilations`` (``(1, 1, 1, 1)``) and ``conv_cfg`` (None or a
            plain ``Conv2d``) accept only the values RepLKNet is defined with (mmpretrain
            ignores other values; here they are refused); ``small_kernel_merged=True`` is
            ``deploy=True``.

    Any loader, mmengine's ``load_checkpoint``/``load_from`` included, goes through
    :meth:`convert_official_keys` (a load-state-dict pre-hook): a deploy model folds an
    official/mmpretrain deploy file's conv-BN pairs on the way in, and a file with an output
    norm (``stages.i.norm``: mmpretrain builds one BN per ``out_indices`` stage) that this
    model has no place for is refused with the argument to set, even by non-strict loaders.
    """

    converter = 'tools/model_converters/replknet_to_mmlk.py'
    arch_zoo = {
        '31B': dict(large_kernel_sizes=[31, 29, 27, 13], layers=[2, 2, 18, 2],
                    channels=[128, 256, 512, 1024], small_kernel=5, dw_ratio=1),
        '31L': dict(large_kernel_sizes=[31, 29, 27, 13], layers=[2, 2, 18, 2],
                    channels=[192, 384, 768, 1536], small_kernel=5, dw_ratio=1),
        'XL': dict(large_kernel_sizes=[27, 27, 27, 13], layers=[2, 2, 18, 2],
                   channels=[256, 512, 1024, 2048], small_kernel=None, dw_ratio=1.5),
    }
    _arch_keys = ('large_kernel_sizes', 'layers', 'channels', 'small_kernel', 'dw_ratio')

    def __init__(self,
                 arch: Union[str, dict] = '31B',
                 in_channels: int = 3,
                 ffn_ratio: float = 4,
                 out_indices: Union[int, Sequence[int]] = (3, ),
                 drop_path_rate: float = 0.3,
                 norm_intermediate_features: bool = False,
                 final_norm: bool = False,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU'),
                 ffn_act_cfg: dict = dict(type='GELU'),
                 deploy: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 strides: Sequence[int] = (2, 2, 2, 2),
                 dilations: Sequence[int] = (1, 1, 1, 1),
                 conv_cfg: Optional[dict] = None,
                 small_kernel_merged: bool = False,
                 pretrained: Optional[str] = None) -> None:
        super().__init__(init_cfg=init_cfg, pretrained=pretrained)
        deploy = _check_mmpretrain_args(strides, dilations, conv_cfg, small_kernel_merged,
                                        deploy)
        arch = resolve_arch(arch, self.arch_zoo, self._arch_keys, 'RepLKNet')
        for key in ('large_kernel_sizes', 'layers', 'channels'):
            if len(arch[key]) != self.num_stages:
                raise ValueError(f'RepLKNet arch {key} needs {self.num_stages} entries, got '
                                 f'{arch[key]}')
        if any(n < 1 for n in arch['layers']) or any(c < 1 for c in arch['channels']):
            raise ValueError(f'RepLKNet layers and channels must be positive, got {arch}')
        if arch['dw_ratio'] <= 0 or ffn_ratio <= 0:
            raise ValueError(f'dw_ratio and ffn_ratio must be positive, got {arch["dw_ratio"]} '
                             f'and {ffn_ratio}')
        if norm_intermediate_features and final_norm:
            raise ValueError('norm_intermediate_features (a BN on every downstream output) and '
                             'final_norm (the classification BN) exclude each other, as in the '
                             'official code; pick one')
        self._check_frozen_stages(frozen_stages, self.num_stages)
        self._check_drop_path_rate(drop_path_rate)
        self.arch = arch
        self.channels = list(arch['channels'])
        self.layers = list(arch['layers'])
        self.out_indices = self._check_out_indices(out_indices)
        self.norm_intermediate_features = norm_intermediate_features
        self.final_norm = final_norm
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.deploy = deploy

        c0 = self.channels[0]
        conv_bn_act = dict(norm_cfg=norm_cfg, act_cfg=act_cfg, deploy=deploy)
        self.stem = nn.ModuleList([
            ConvBN(in_channels, c0, 3, stride=2, **conv_bn_act),
            ConvBN(c0, c0, 3, groups=c0, **conv_bn_act),
            ConvBN(c0, c0, 1, **conv_bn_act),
            ConvBN(c0, c0, 3, stride=2, groups=c0, **conv_bn_act),
        ])
        total = sum(self.layers)  # torch.linspace(0, rate, total), one rate per block pair
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.stages = nn.ModuleList()
        self.transitions = nn.ModuleList()
        for i, (num_blocks, channels) in enumerate(zip(self.layers, self.channels)):
            first = sum(self.layers[:i])
            self.stages.append(
                RepLKNetStage(
                    channels, num_blocks, arch['large_kernel_sizes'][i], arch['small_kernel'],
                    arch['dw_ratio'], ffn_ratio, rates[first:first + num_blocks],
                    with_norm=norm_intermediate_features or (final_norm and i == 3),
                    norm_cfg=norm_cfg, act_cfg=act_cfg, ffn_act_cfg=ffn_act_cfg,
                    with_cp=with_cp, deploy=deploy))
            if i < self.num_stages - 1:
                nxt = self.channels[i + 1]
                self.transitions.append(nn.Sequential(
                    ConvBN(channels, nxt, 1, **conv_bn_act),
                    ConvBN(nxt, nxt, 3, stride=2, groups=nxt, **conv_bn_act)))
        self._freeze_stages()
        self._register_load_state_dict_pre_hook(self._convert_on_load)

    def _convert_on_load(self, state_dict: Dict[str, Tensor], prefix: str, *args) -> None:
        """Load-state-dict pre-hook: the backbone's keys of ``state_dict`` (in place) through
        :meth:`convert_official_keys`, then :meth:`check_output_norms`."""
        own = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if not own:
            return
        converted = self.convert_official_keys(own)
        self.check_output_norms(converted)
        for key in [k for k in state_dict if k.startswith(prefix)]:
            del state_dict[key]
        state_dict.update({prefix + k: v for k, v in converted.items()})

    def check_output_norms(self, state_dict: Dict[str, Tensor]) -> None:
        """Refuse a state dict holding an output norm ``stages.i.norm`` that this backbone does
        not have: a non-strict loader would drop it and compute other features silently."""
        stages = sorted({int(k.split('.')[1]) for k in state_dict
                         if re.match(r'stages\.\d\.norm\.', k)})
        extra = [i for i in stages if isinstance(self.stages[i].norm, nn.Identity)]
        if extra:
            raise CheckpointMismatchError(
                f'RepLKNet: the checkpoint has output norms stages.{{{",".join(map(str, extra))}}}'
                '.norm.* that this backbone does not build (mmpretrain builds a BN on every '
                'out_indices stage). Loading it without them would change the features. Set '
                'final_norm=True (the classification BN on stage 3) or '
                'norm_intermediate_features=True (a BN on every stage output), or remove the '
                'keys from the file if they are meant to be dropped.')

    @property
    def out_channels(self) -> List[int]:
        """Channels of each returned feature, for neck/head ``in_channels``."""
        return [self.channels[i] for i in self.out_indices]

    def forward_stages(self, x: Tensor) -> Tuple[Tensor, ...]:
        # Channels-last from the start: the residual adds take the layout of their first
        # operand, so converting only at the large kernels would copy twice in every block.
        x = self.stem[0](to_depthwise_layout(x))
        for layer in self.stem[1:]:
            x = checkpointed(layer, x, self.with_cp)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(stage.norm(x))
            if i < self.num_stages - 1:
                x = self.transitions[i](x)
        return tuple(outs)

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        modules = [self.stem, *self.stages[:self.frozen_stages],
                   *self.transitions[:max(self.frozen_stages - 1, 0)]]
        for module in modules:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    # ------------------------------------------------------------------ layer-wise LR decay
    def _stage2_last_id(self) -> int:
        return 3 + (2 * self.layers[2] - 1) // 4

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """Layer id of a parameter for layer-wise decay, and the number of layers.

        The official ``get_num_layer_for_replknet``: stem 0; stage 0 and transition 0 -> 1;
        stage 1 and transition 1 -> 2; stage 2 in groups of 4 interleaved blocks (2 RepLK +
        2 FFN) from 3, transition 2 with the last group; stage 3 next; everything else (heads)
        last. 14 ids for 18 blocks in stage 2.
        """
        stage3 = self._stage2_last_id() + 1
        num_layers = stage3 + 2
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        name = param_name[len(prefix):]
        if name.startswith('stem.'):
            return 0, num_layers
        match = re.match(r'(stages|transitions)\.(\d+)(?:\.blocks\.(\d+))?', name)
        if match is None:
            return num_layers - 1, num_layers
        kind, stage = match.group(1), int(match.group(2))
        if stage in (0, 1):
            return stage + 1, num_layers
        if stage == 3:
            return stage3, num_layers
        if kind == 'transitions' or match.group(3) is None:  # transition 2, stage-2 norm
            return self._stage2_last_id(), num_layers
        return 3 + int(match.group(3)) // 4, num_layers

    def get_stage_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """Stage id for stage-wise decay: stem 0, stage i and transition i -> i + 1, rest last;
        the number of layers equals :meth:`get_layer_depth`'s so tuned rates port."""
        num_layers = self._stage2_last_id() + 3
        name = param_name[len(prefix):] if param_name.startswith(prefix) else ''
        if name.startswith('stem.'):
            return 0, num_layers
        match = re.match(r'(stages|transitions)\.(\d+)', name)
        if match is None:
            return num_layers - 1, num_layers
        return int(match.group(2)) + 1, num_layers

    # ------------------------------------------------------------------ checkpoints
    def convert_official_keys(self, state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Official classification checkpoints keep the final BN at top level (``norm.*``);
        with ``final_norm`` it is our (and mmpretrain's) ``stages.3.norm``. A deploy model
        folds the conv-BN pairs of official deploy checkpoints (``small_kernel_merged``)."""
        if self.final_norm and not any(k.startswith('stages.3.norm.') for k in state_dict):
            state_dict = {('stages.3.norm.' + k[5:] if k.startswith('norm.') else k): v
                          for k, v in state_dict.items()}
        if self.deploy:
            state_dict = fold_conv_bn_state(state_dict)
            for bn_name in ('prelkb_bn', 'preffn_bn'):  # folded into pw1, as switch_to_deploy
                state_dict = fold_pre_bn_state(state_dict, bn_name, 'pw1.conv')
        return state_dict

    def _classification_norm_prefix(self) -> Optional[str]:
        # With final_norm, stages.3.norm is the classification BN; otherwise an output norm.
        return None if self.final_norm else 'stages.3.norm.'

    def _may_miss(self, key: str) -> bool:
        # Intermediate output norms (XL downstream) are new when starting from ImageNet weights.
        match = re.match(r'stages\.(\d)\.norm\.', key)
        return match is not None and not (self.final_norm and match.group(1) == '3')

    def _may_ignore(self, key: str) -> bool:
        # The classifier and its final BN when a dense-prediction backbone loads ImageNet weights.
        return key.startswith(('head.', 'norm.'))


def _check_mmpretrain_args(strides: Sequence[int], dilations: Sequence[int],
                           conv_cfg: Optional[dict], small_kernel_merged: bool,
                           deploy: bool) -> bool:
    """Check mmpretrain's RepLKNet arguments; return the effective ``deploy``."""
    require_upstream_value('RepLKNet', 'strides', strides, [(2, 2, 2, 2)],
                           'the stem and each transition downsample by 2; mmpretrain ignores '
                           'other values')
    require_upstream_value('RepLKNet', 'dilations', dilations, [(1, 1, 1, 1)],
                           'RepLKNet has no dilated stage; mmpretrain ignores other values')
    require_upstream_value('RepLKNet', 'conv_cfg', conv_cfg, [None, dict(type='Conv2d')],
                           'only plain convolutions are implemented')
    for name, value in (('small_kernel_merged', small_kernel_merged), ('deploy', deploy)):
        require_upstream_value('RepLKNet', name, value, [False, True], 'a bool')
    # mmpretrain's small_kernel_merged=True is its deploy form (merged large kernels).
    return deploy or small_kernel_merged
