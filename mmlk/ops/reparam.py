"""Structural re-parameterisation, written once for every reparameterisable block.

RepLKNet (Ding et al., CVPR 2022) and SLaK (Liu et al., ICLR 2023) train parallel conv+BN
branches and deploy them as fewer biased convolutions. Two exact identities do all the work:

* a BN after a bias-free conv is an affine map per output channel, so it folds into the
  kernel (scale) and a bias (shift) — :func:`fuse_conv_bn`;
* centred kernels of different sizes applied with "same" padding sum into one kernel of the
  larger size after zero-padding the smaller one symmetrically — :func:`pad_kernel_to` and
  :func:`merge_branches`.
"""
from collections import OrderedDict
from typing import Iterable, Mapping, Optional, Sequence, Tuple

import torch
from mmcv.cnn import build_activation_layer, build_norm_layer
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from .depthwise import DepthwiseConv2d

__all__ = [
    'fuse_conv_bn', 'pad_kernel_to', 'merge_branches', 'ConvBN', 'switch_to_deploy',
    'fold_conv_bn_state'
]


def fuse_conv_bn(kernel: Tensor, bn: Optional[nn.Module],
                 conv_bias: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Fold an eval-mode BN that follows a conv into the conv's kernel and bias.

    ``bn(conv(x)) = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta``.

    Args:
        kernel: conv weight of shape ``(C_out, C_in/groups, kh, kw)``.
        bn: a BatchNorm/SyncBatchNorm with running statistics, or None for a conv without norm.
        conv_bias: the conv's own bias, if any.
    Returns:
        ``(kernel, bias)`` of the single conv that computes the same function.
    """
    out_channels = kernel.shape[0]
    if conv_bias is None:
        conv_bias = kernel.new_zeros(out_channels)
    if bn is None:
        return kernel, conv_bias
    if not isinstance(bn, _BatchNorm):
        raise TypeError(f'only BatchNorm-type norms can be folded into a conv, got '
                        f'{type(bn).__name__}')
    if not bn.track_running_stats or bn.running_var is None:
        raise ValueError('cannot fold a BatchNorm without running statistics '
                         '(track_running_stats=False)')
    std = (bn.running_var + bn.eps).sqrt()
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    scale = gamma / std
    fused_kernel = kernel * scale.reshape(-1, 1, 1, 1)
    fused_bias = beta + (conv_bias - bn.running_mean) * scale
    return fused_kernel, fused_bias


def pad_kernel_to(kernel: Tensor, size: Sequence[int]) -> Tensor:
    """Zero-pad a ``(..., kh, kw)`` kernel symmetrically to ``size = (H, W)``.

    Exact only when both kernels are centred ("same" padding ``k // 2`` per axis), which needs
    ``H - kh`` and ``W - kw`` to be even and non-negative; anything else is a programming error
    and raises.
    """
    kh, kw = kernel.shape[-2:]
    target_h, target_w = size
    dh, dw = target_h - kh, target_w - kw
    if dh < 0 or dw < 0 or dh % 2 or dw % 2:
        raise ValueError(f'cannot centre a {kh}x{kw} kernel inside {target_h}x{target_w}: '
                         'the size differences must be even and non-negative')
    if dh == 0 and dw == 0:
        return kernel
    return nn.functional.pad(kernel, [dw // 2, dw // 2, dh // 2, dh // 2])


def merge_branches(branches: Iterable[Tuple[Tensor, Tensor]],
                   size: Optional[Sequence[int]] = None) -> Tuple[Tensor, Tensor]:
    """Sum parallel centred branches ``(kernel, bias)`` into one kernel of ``size``.

    ``size`` defaults to the largest height and width among the branches.
    """
    branches = list(branches)
    if not branches:
        raise ValueError('merge_branches needs at least one branch')
    if size is None:
        size = (max(k.shape[-2] for k, _ in branches), max(k.shape[-1] for k, _ in branches))
    kernel = sum(pad_kernel_to(k, size) for k, _ in branches)
    bias = sum(b for _, b in branches)
    return kernel, bias


class ConvBN(nn.Module):
    """A bias-free conv followed by a norm layer (and optionally an activation), with children
    named ``conv``, ``bn`` and ``nonlinear``.

    The child names are those of the official RepLKNet/SLaK ``conv_bn``/``conv_bn_relu``
    Sequentials, so their checkpoints map onto this module without renaming. ``norm_cfg=None``
    builds the conv alone (with a bias when ``bias_without_norm``). :meth:`fuse` covers the
    conv and norm only; the activation stays outside the re-parameterised part.

    ``switch_to_deploy()`` folds the BN into the conv (which gains a bias) and ``deploy=True``
    builds that form directly: the inference form, one op fewer per conv.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size,
                 stride=1,
                 padding=None,
                 groups: int = 1,
                 dilation=1,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 act_cfg: Optional[dict] = None,
                 bias_without_norm: bool = True,
                 deploy: bool = False) -> None:
        super().__init__()
        if deploy and norm_cfg is not None:  # the BN is folded into a biased conv
            norm_cfg, bias_without_norm = None, True
        kh, kw = _pair(kernel_size)
        if padding is None:  # "same" padding per axis for odd kernels
            padding = (dilation * (kh - 1) // 2, dilation * (kw - 1) // 2)
        # Depthwise convs go through mmlk's depthwise op (its fast backward; another stride,
        # dilation or padding runs nn.Conv2d's forward); the parameters are nn.Conv2d's.
        conv_type = DepthwiseConv2d if groups == in_channels == out_channels else nn.Conv2d
        self.conv = conv_type(in_channels, out_channels, (kh, kw), stride=stride, padding=padding,
                              dilation=dilation, groups=groups,
                              bias=norm_cfg is None and bias_without_norm)
        if norm_cfg is not None:
            self.bn = build_norm_layer(norm_cfg, out_channels)[1]
        else:
            self.bn = None
        self.nonlinear = build_activation_layer(act_cfg) if act_cfg is not None else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return x if self.nonlinear is None else self.nonlinear(x)

    def fuse(self) -> Tuple[Tensor, Tensor]:
        """The ``(kernel, bias)`` of one conv equivalent to this conv+norm in eval mode."""
        return fuse_conv_bn(self.conv.weight, self.bn, self.conv.bias)

    def switch_to_deploy(self) -> None:
        if self.bn is None:
            return
        kernel, bias = self.fuse()
        conv = self.conv
        self.conv = type(conv)(conv.in_channels, conv.out_channels, conv.kernel_size,
                               conv.stride, conv.padding, conv.dilation, conv.groups,
                               bias=True).to(kernel.device, kernel.dtype)
        self.conv.weight.data.copy_(kernel.detach())
        self.conv.bias.data.copy_(bias.detach())
        self.bn = None


def fold_bn_into_next_conv(bn: nn.Module, kernel: Tensor,
                           conv_bias: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Fold an eval-mode BN that *precedes* a 1x1 conv without padding into that conv.

    ``conv(bn(x)) = W (s * x + t) + b = (W * s) x + (W t + b)`` with ``s = gamma / std`` and
    ``t = beta - mean * s`` per input channel: exact for a 1x1 kernel, since no padded border
    sees the BN's shift (a k x k conv with zero padding would). RepLKNet's ``prelkb_bn`` and
    ``preffn_bn`` feed only their block's ``pw1``.
    """
    if not isinstance(bn, _BatchNorm) or not bn.track_running_stats:
        raise TypeError(f'only a BatchNorm with running statistics folds into the next conv, '
                        f'got {type(bn).__name__}')
    if tuple(kernel.shape[-2:]) != (1, 1) or kernel.shape[1] != bn.num_features:
        raise ValueError(f'a BN folds exactly only into a following dense 1x1 conv over its '
                         f'{bn.num_features} channels; got a kernel of shape {tuple(kernel.shape)}')
    scale = bn.weight / (bn.running_var + bn.eps).sqrt()
    shift = bn.bias - bn.running_mean * scale
    bias = kernel.new_zeros(kernel.shape[0]) if conv_bias is None else conv_bias
    return kernel * scale[None, :, None, None], bias + kernel[:, :, 0, 0] @ shift


def fold_pre_bn_state(state_dict: Mapping[str, Tensor], bn_name: str, conv_name: str,
                      eps: float = 1e-5) -> 'OrderedDict[str, Tensor]':
    """:func:`fold_bn_into_next_conv` on a state dict: every ``P.{bn_name}.*`` whose
    ``P.{conv_name}.weight`` exists is folded into that conv's weight and bias and dropped."""
    suffix = f'.{bn_name}.running_var'
    prefixes = [k[:-len(suffix)] for k in state_dict if k.endswith(suffix)
                and f'{k[:-len(suffix)]}.{conv_name}.weight' in state_dict]
    folded = OrderedDict(state_dict)
    for p in prefixes:
        weight = folded[f'{p}.{conv_name}.weight']
        bn = nn.BatchNorm2d(weight.shape[1], eps=eps).to(weight.dtype)
        bn.load_state_dict({k: folded.pop(f'{p}.{bn_name}.{k}') for k in bn.state_dict()})
        kernel, bias = fold_bn_into_next_conv(bn, weight, folded.get(f'{p}.{conv_name}.bias'))
        folded[f'{p}.{conv_name}.weight'] = kernel.detach()
        folded[f'{p}.{conv_name}.bias'] = bias.detach()
    return folded


def fold_conv_bn_state(state_dict: Mapping[str, Tensor],
                       eps: float = 1e-5) -> 'OrderedDict[str, Tensor]':
    """Fold every ``P.conv.weight`` + ``P.bn.*`` group of a state dict into ``P.conv.weight`` +
    ``P.conv.bias`` (what :meth:`ConvBN.switch_to_deploy` does to a module), e.g. to load an
    official checkpoint whose large kernels are merged but whose conv-BN pairs are not.
    ``eps`` is the BNs' epsilon (PyTorch's default in every official large-kernel code)."""
    prefixes = {
        k[:-len('.bn.running_var')] for k in state_dict
        if k.endswith('.bn.running_var')
        and k[:-len('.bn.running_var')] + '.conv.weight' in state_dict
    }
    folded = OrderedDict()
    for key, value in state_dict.items():
        prefix = key.rsplit('.', 2)[0] if key.count('.') >= 2 else ''
        if prefix in prefixes and key.startswith(prefix + '.bn.'):
            continue
        if key.endswith('.conv.weight') and key[:-len('.conv.weight')] in prefixes:
            p = key[:-len('.conv.weight')]
            bn = nn.BatchNorm2d(value.shape[0], eps=eps).to(value.dtype)
            bn.load_state_dict({k: state_dict[f'{p}.bn.{k}'] for k in bn.state_dict()})
            kernel, bias = fuse_conv_bn(value, bn, state_dict.get(f'{p}.conv.bias'))
            folded[key], folded[f'{p}.conv.bias'] = kernel.detach(), bias.detach()
        elif not (key.endswith('.conv.bias') and key[:-len('.conv.bias')] in prefixes):
            folded[key] = value
    return folded


def _pair(v) -> Tuple[int, int]:
    if isinstance(v, int):
        return v, v
    v = tuple(v)
    if len(v) != 2:
        raise ValueError(f'expected an int or a pair, got {v}')
    return v


def switch_to_deploy(model: nn.Module) -> nn.Module:
    """Switch every reparameterisable sub-module of ``model`` to its deploy form, in place.

    A module takes part by defining ``switch_to_deploy()``. The outermost such descendant on
    each path is called and is responsible for its own children, so this works on a block, a
    backbone (whose own ``switch_to_deploy`` calls this on itself) or a whole detector.
    """
    for child in model.children():
        fn = getattr(child, 'switch_to_deploy', None)
        if callable(fn):
            fn()
        else:
            switch_to_deploy(child)
    return model
