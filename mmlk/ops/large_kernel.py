"""Large depthwise kernels with parallel small-kernel branches, re-parameterisable.

* :class:`ReparamLargeKernelConv` — RepLKNet (Ding et al., "Scaling Up Your Kernels to 31x31",
  CVPR 2022): a K x K depthwise conv-BN plus a parallel k x k one, merged into one biased
  K x K conv for deployment.
* :class:`DecomposedLargeKernelConv` — SLaK (Liu et al., "More ConvNets in the 2020s: Scaling
  up Kernels Beyond 51x51 using Sparsity", ICLR 2023): an M x M kernel replaced by an M x N
  ("tall") and an N x M ("wide") depthwise kernel plus an N x N one, each with its own BN.

Both merge through :mod:`mmlk.ops.reparam`, run on channels-last data (see
:func:`mmlk.ops.depthwise.to_depthwise_layout`) and compute every depthwise kernel, training
and deploy form, with :mod:`mmlk.ops.depthwise` (its fast backward, and Triton on GPUs).
"""
from typing import Optional

from torch import Tensor, nn

from mmlk.core.validation import check_kernel_pair

from .depthwise import same_depthwise, to_depthwise_layout
from .reparam import ConvBN, merge_branches

__all__ = ['DecomposedLargeKernelConv', 'ReparamLargeKernelConv']


class DecomposedLargeKernelConv(nn.Module):
    """Depthwise ``M x N`` + ``N x M`` + ``N x N`` conv-BN branches, summed (SLaK, ICLR 2023).

    Child names follow the official ``ReparamLargeKernelConv`` (``LoRA1`` = tall ``M x N``,
    ``LoRA2`` = wide ``N x M``, ``small_conv`` = ``N x N``, each with ``conv``/``bn``), so the
    official checkpoints load without renaming. Padding is "same" per axis, ``(M//2, N//2)`` and
    ``(N//2, M//2)``: the official scalar ``M//2`` only works with its CUDA op, which ignores it.

    ``switch_to_deploy()`` folds every BN into its conv and adds the ``N x N`` kernel into the
    tall kernel (both are ``N`` wide and centred), leaving two biased depthwise convs
    (``tall_conv``, ``wide_conv``) that compute the same function in eval mode.

    Args:
        channels: number of input (= output) channels.
        kernel_size: the long side ``M`` (odd).
        small_kernel: the short side ``N`` (odd, < ``M``).
        norm_cfg: norm after each branch; SyncBN in the official code.
        deploy: build the merged two-branch form directly.
    """

    def __init__(self,
                 channels: int,
                 kernel_size: int,
                 small_kernel: int = 5,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 deploy: bool = False) -> None:
        super().__init__()
        check_kernel_pair(kernel_size, small_kernel)
        self.channels = channels
        self.kernel_size = kernel_size
        self.small_kernel = small_kernel
        self.deploy = deploy
        tall, wide = (kernel_size, small_kernel), (small_kernel, kernel_size)
        if deploy:
            self.tall_conv = _depthwise(channels, tall, bias=True)
            self.wide_conv = _depthwise(channels, wide, bias=True)
        else:
            self.LoRA1 = ConvBN(channels, channels, tall, groups=channels, norm_cfg=norm_cfg)
            self.LoRA2 = ConvBN(channels, channels, wide, groups=channels, norm_cfg=norm_cfg)
            self.small_conv = ConvBN(channels, channels, small_kernel, groups=channels,
                                     norm_cfg=norm_cfg)

    def forward(self, x: Tensor) -> Tensor:
        x = to_depthwise_layout(x)
        if self.deploy:
            return self.tall_conv(x) + self.wide_conv(x)
        return self.LoRA1(x) + self.LoRA2(x) + self.small_conv(x)

    def switch_to_deploy(self) -> None:
        if self.deploy:
            return
        tall = merge_branches([self.LoRA1.fuse(), self.small_conv.fuse()],
                              size=(self.kernel_size, self.small_kernel))
        self.tall_conv = _depthwise_from(*tall)
        self.wide_conv = _depthwise_from(*self.LoRA2.fuse())
        del self.LoRA1, self.LoRA2, self.small_conv
        self.deploy = True

    def extra_repr(self) -> str:
        return (f'channels={self.channels}, kernel_size=({self.kernel_size}, {self.small_kernel}), '
                f'deploy={self.deploy}')


class ReparamLargeKernelConv(nn.Module):
    """Depthwise ``K x K`` conv-BN with a parallel ``k x k`` conv-BN, summed (RepLKNet, CVPR 2022).

    Child names follow the official module (``lkb_origin`` and ``small_conv``, each with
    ``conv``/``bn``; ``lkb_reparam`` in the deploy form), so official and mmpretrain checkpoints
    of both forms load without renaming. ``small_kernel=None`` is RepLKNet-XL's single branch.

    ``switch_to_deploy()`` folds both BNs and adds the zero-padded small kernel into the large
    one (:func:`mmlk.ops.merge_branches`), leaving one biased depthwise ``K x K`` conv that
    computes the same function in eval mode.

    Args:
        channels: number of input (= output) channels.
        kernel_size: the large kernel ``K`` (odd).
        small_kernel: the parallel kernel ``k`` (odd, < ``K``) or None for no parallel branch.
        norm_cfg: norm after each branch.
        deploy: build the merged single-conv form directly.
    """

    def __init__(self,
                 channels: int,
                 kernel_size: int,
                 small_kernel: Optional[int] = 5,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 deploy: bool = False) -> None:
        super().__init__()
        if small_kernel is None:
            check_kernel_pair(kernel_size, 1)
        else:
            check_kernel_pair(kernel_size, small_kernel)
        self.channels = channels
        self.kernel_size = kernel_size
        self.small_kernel = small_kernel
        self.deploy = deploy
        if deploy:
            self.lkb_reparam = _depthwise(channels, (kernel_size, kernel_size), bias=True)
        else:
            self.lkb_origin = ConvBN(channels, channels, kernel_size, groups=channels,
                                     norm_cfg=norm_cfg)
            if small_kernel is not None:
                self.small_conv = ConvBN(channels, channels, small_kernel, groups=channels,
                                         norm_cfg=norm_cfg)

    def forward(self, x: Tensor) -> Tensor:
        x = to_depthwise_layout(x)
        if self.deploy:
            return self.lkb_reparam(x)
        out = self.lkb_origin(x)
        if self.small_kernel is not None:
            out = out + self.small_conv(x)
        return out

    def switch_to_deploy(self) -> None:
        if self.deploy:
            return
        branches = [self.lkb_origin.fuse()]
        if self.small_kernel is not None:
            branches.append(self.small_conv.fuse())
            del self.small_conv
        self.lkb_reparam = _depthwise_from(*merge_branches(branches))
        del self.lkb_origin
        self.deploy = True

    def extra_repr(self) -> str:
        return (f'channels={self.channels}, kernel_size={self.kernel_size}, '
                f'small_kernel={self.small_kernel}, deploy={self.deploy}')


def _depthwise(channels: int, kernel_size, bias: bool) -> nn.Conv2d:
    return same_depthwise(channels, kernel_size, bias)


def _depthwise_from(kernel: Tensor, bias: Tensor) -> nn.Conv2d:
    """A biased "same"-padded depthwise conv holding a merged ``(kernel, bias)``."""
    conv = _depthwise(kernel.shape[0], kernel.shape[-2:], bias=True).to(kernel.device, kernel.dtype)
    conv.weight.data.copy_(kernel.detach())
    conv.bias.data.copy_(bias.detach())
    return conv
