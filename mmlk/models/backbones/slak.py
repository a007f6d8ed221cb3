"""SLaK backbone (Liu et al., "More ConvNets in the 2020s: Scaling up Kernels Beyond 51x51
using Sparsity", ICLR 2023)."""
from typing import Optional, Sequence, Union

from torch import nn

from mmlk.ops import DecomposedLargeKernelConv, check_kernel_pair
from mmlk.registry import MODELS
from .convnext_skeleton import ConvNeXtSkeleton, resolve_arch, split_kernel_sizes

__all__ = ['SLaK']


@MODELS.register_module()
class SLaK(ConvNeXtSkeleton):
    """SLaK: ConvNeXt whose depthwise 7x7 is SLaK's decomposed ``M x 5 + 5 x M + 5 x 5`` conv.

    Widths are the ConvNeXt ones times ``width_factor`` with ``int()`` truncation, as the
    official code does: T/S give ``[124, 249, 499, 998]`` and B ``[166, 332, 665, 1331]``.
    Module and parameter names equal the official ones, so official checkpoints load by key
    prefix only (see ``tools/model_converters/slak_to_mmlk.py``).

    Args:
        arch: ``'tiny'``, ``'small'``, ``'base'``, ``'large'`` or a dict with ``depths`` and
            ``dims`` (pre-``width_factor`` widths).
        kernel_size: the long side of each stage's kernel followed by the shared short side,
            ``(M0, M1, M2, M3, N)``; the official SLaK uses ``(51, 49, 47, 13, 5)``.
        width_factor: multiplies every stage width (1.3 in SLaK).
        norm_cfg: norm of every kernel branch (``SyncBN`` in the official code).
        deploy: build the re-parameterised (two biased branches per block) form.
        **kwargs: the shared ConvNeXt arguments (``out_indices``, ``drop_path_rate``,
            ``frozen_stages``, ``norm_eval``, ``with_cp``, ``gap_before_final_norm``,
            ``layer_scale_init_value``, ``init_cfg`` ...), see :class:`ConvNeXtSkeleton`.
    """

    converter = 'tools/model_converters/slak_to_mmlk.py'
    arch_zoo = {
        'tiny': dict(depths=[3, 3, 9, 3], dims=[96, 192, 384, 768]),
        'small': dict(depths=[3, 3, 27, 3], dims=[96, 192, 384, 768]),
        'base': dict(depths=[3, 3, 27, 3], dims=[128, 256, 512, 1024]),
        'large': dict(depths=[3, 3, 27, 3], dims=[192, 384, 768, 1536]),
    }

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 kernel_size: Sequence[int] = (51, 49, 47, 13, 5),
                 width_factor: float = 1.3,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 deploy: bool = False,
                 **kwargs) -> None:
        arch = resolve_arch(arch, self.arch_zoo, ('depths', 'dims'), 'SLaK')
        long_sides, short_side = split_kernel_sizes(kernel_size, self.num_stages,
                                                    '(51, 49, 47, 13, 5)')
        kernel_size = [*long_sides, short_side]
        for long_side in long_sides:
            check_kernel_pair(long_side, short_side)
        if width_factor <= 0:
            raise ValueError(f'width_factor must be positive, got {width_factor}')
        self.arch = arch
        self.kernel_size = kernel_size
        self.width_factor = width_factor
        self.deploy = deploy
        dims = [int(d * width_factor) for d in arch['dims']]

        def mixer(channels: int, stage: int) -> nn.Module:
            return self.build_large_kernel(channels, long_sides[stage], short_side, norm_cfg,
                                           deploy)

        super().__init__(arch['depths'], dims, mixer, **kwargs)

    def build_large_kernel(self, channels: int, long_side: int, short_side: int,
                           norm_cfg: Optional[dict], deploy: bool) -> nn.Module:
        """Each block's spatial layer: SLaK's decomposed M x N + N x M + N x N kernel.
        Subclasses with the same macro design replace only this."""
        return DecomposedLargeKernelConv(channels, long_side, short_side, norm_cfg=norm_cfg,
                                         deploy=deploy)
