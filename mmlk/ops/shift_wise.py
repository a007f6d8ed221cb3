"""Shift-wise convolution: a long M x k depthwise strip realised by small k x k convolutions
whose outputs are shifted and added.

Li et al., "Shift-ConvNets: Small Convolutional Kernel with Large Kernel Effects" (arXiv
2401.12736, 2024) and "ShiftwiseConv" (CVPR 2025). An M x k strip is cut along its long side
into ``nk = ceil(M / k)`` k x k tiles; one grouped conv computes all tiles of all channels
(``nk`` outputs per channel, "full" padding ``k - 1`` so border windows are kept), and each
tile's output is shifted by its offset along the long side and summed. With matching tiles this
equals the dense depthwise M x k convolution exactly, borders included.

The shift-add here is pure PyTorch (any device, any float dtype, deterministic): each long
strip is read as a *skewed strided view* of the padded tile outputs -- element ``(i, w)`` of the
view is tile ``i`` at column ``w + i * k`` -- and summed over ``i``. That is one read of each
element, no per-tile Python loop and no scatter; ``benchmarks/bench_shiftwise.py`` compares it
with the per-tile slice-add loop.

Footprint: the released code anchors the strip at ``M // 2`` from its first tile (tile ``i``
covers long-side offsets ``[i*k - M//2, i*k - M//2 + k - 1]``), so when ``nk * k > M`` the
footprint is asymmetric (e.g. M=49, k=3 covers [-24, 26]). ``anchor='official'`` reproduces
that for checkpoint compatibility; ``anchor='centred'`` centres the ``nk * k`` footprint.
"""
import copy
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlk.core.validation import check_kernel_pair

from .depthwise import depthwise_conv2d, to_depthwise_layout
from .reparam import ConvBN, fuse_conv_bn, merge_branches

__all__ = ['tile_starts', 'shift_add_strip', 'shift_add_small', 'strip_to_tiles',
           'tiles_to_strip', 'ShiftWiseLargeKernelConv', 'ShiftWiseConv', 'replica_tables',
           'ghost_split']

ANCHORS = ('official', 'centred')


def _num_tiles(long_side: int, small_kernel: int) -> int:
    check_kernel_pair(long_side, small_kernel, 'long kernel side', allow_equal=True)
    return math.ceil(long_side / small_kernel)


def tile_starts(long_side: int, small_kernel: int, anchor: str = 'official') -> List[int]:
    """Long-side offset (relative to the output pixel) of the first column of each tile."""
    nk = _num_tiles(long_side, small_kernel)
    if anchor == 'official':
        first = -(long_side // 2)
    elif anchor == 'centred':
        first = -((nk * small_kernel) // 2)
    else:
        raise ValueError(f'anchor must be one of {ANCHORS}, got {anchor!r}')
    return [first + i * small_kernel for i in range(nk)]


def shift_add_strip(tiles: Tensor, starts: Sequence[int], small_kernel: int,
                    out_size: Tuple[int, int], horizontal: bool) -> Tensor:
    """Sum the shifted tile outputs of one long strip per channel.

    Args:
        tiles: ``(B, C, nk, Hy, Wy)`` outputs of the k x k tile convolutions with padding
            ``k - 1`` on an ``H x W`` input (``Hy = H + k - 1``), tile ``i`` in slot ``i``.
        starts: :func:`tile_starts` of the strip.
        small_kernel: k.
        out_size: ``(H, W)``.
        horizontal: the long side runs along W (a ``k x M`` strip) if True, along H if False.
    Returns:
        ``(B, C, H, W)``: the dense depthwise strip convolution with "same"-size output.
    """
    if not horizontal:
        out = shift_add_strip(tiles.transpose(-1, -2), starts, small_kernel,
                              (out_size[1], out_size[0]), horizontal=True)
        return out.transpose(-1, -2)
    k = small_kernel
    height, width = out_size
    short = (k - 1) - k // 2  # the short side is centred: rows [short, short + H)
    tiles = tiles[..., short:short + height, :]
    nk = tiles.shape[2]
    if len(starts) != nk:
        raise ValueError(f'{len(starts)} tile offsets for {nk} tiles')
    # Column of y read by output column w for tile i: w + starts[i] + k - 1. Pad so every read
    # of the skewed view below stays inside its own row.
    first = starts[0] + k - 1
    left = max(0, -first)
    right = max(0, width - 1 + starts[-1] + k - 1 - (tiles.shape[-1] - 1))
    tiles = F.pad(tiles, (left, right)).contiguous()
    step = starts[1] - starts[0] if nk > 1 else 0
    if any(b - a != step for a, b in zip(starts, starts[1:])):
        raise ValueError(f'tile offsets must be evenly spaced, got {list(starts)}')
    b, c, _, h, _ = tiles.shape
    s = tiles.stride()
    # view[b, c, i, h, w] = tiles[b, c, i, h, w + first + left + i * step]
    view = tiles.as_strided((b, c, nk, h, width), (s[0], s[1], s[2] + step, s[3], 1),
                            tiles.storage_offset() + first + left)
    return view.sum(2)


def shift_add_small(tiles: Tensor, small_kernel: int, out_size: Tuple[int, int]) -> Tensor:
    """The centred ``k x k`` response of ``(B, C, Hy, Wy)`` full-padding tile outputs."""
    short = (small_kernel - 1) - small_kernel // 2
    return tiles[..., short:short + out_size[0], short:short + out_size[1]]


def strip_to_tiles(kernel: Tensor, small_kernel: int, horizontal: bool) -> Tensor:
    """Cut a depthwise strip kernel ``(C, 1, k, M)`` (horizontal) or ``(C, 1, M, k)`` into
    ``(C * nk, 1, k, k)`` tiles, zero-padding the long side at its end to ``nk * k`` (tile ``t`` of
    channel ``c`` is output channel ``c * nk + t``, the grouped-conv layout)."""
    if not horizontal:
        return strip_to_tiles(kernel.transpose(-1, -2), small_kernel, True).transpose(-1, -2)
    channels, _, k, long_side = kernel.shape
    if k != small_kernel:
        raise ValueError(f'the strip is {k} wide, expected the small kernel {small_kernel}')
    nk = math.ceil(long_side / k)  # the strip may already be padded to nk * k (even)
    padded = F.pad(kernel, (0, nk * k - long_side))
    tiles = padded.reshape(channels, k, nk, k).permute(0, 2, 1, 3)
    return tiles.reshape(channels * nk, 1, k, k)


def tiles_to_strip(tiles: Tensor, long_side: int, horizontal: bool,
                   channels: Optional[int] = None) -> Tensor:
    """Inverse of :func:`strip_to_tiles`: the dense ``nk * k`` long strip (not cut to M)."""
    if not horizontal:
        return tiles_to_strip(tiles.transpose(-1, -2), long_side, True, channels).transpose(-1, -2)
    k = tiles.shape[-1]
    nk = math.ceil(long_side / k)
    channels = channels or tiles.shape[0] // nk
    return tiles.reshape(channels, nk, k, k).permute(0, 2, 1, 3).reshape(channels, 1, k, nk * k)


IMPLS = ('dense', 'shift_add')


def centred_strip(tiles: Tensor, starts: Sequence[int], small_kernel: int,
                  horizontal: bool) -> Tuple[Tensor, int]:
    """``(C, nk, k, k)`` tiles placed at ``starts`` -> the dense depthwise strip that computes
    the same shift-add, zero-padded to be centred (``(C, 1, k, 2P+1)`` wide or its transpose
    tall), and ``P``. Differentiable in ``tiles``."""
    k = small_kernel
    channels, nk = tiles.shape[:2]
    strip = tiles_to_strip(tiles.reshape(-1, 1, k, k), nk * k, horizontal, channels)
    first, last = starts[0], starts[-1] + k - 1  # long-side reach relative to the output pixel
    pad = max(-first, last)
    left, right = first + pad, pad - last
    return F.pad(strip, (left, right) if horizontal else (0, 0, left, right)), pad


def strip_conv(x: Tensor, strip: Tensor, pad: int, horizontal: bool,
               bias: Optional[Tensor] = None) -> Tensor:
    """Depthwise "same" convolution with a :func:`centred_strip`."""
    return depthwise_conv2d(x, strip, bias)  # centred: "same" padding (short // 2, pad)


def _check_impl(impl: str) -> str:
    if impl not in IMPLS:
        raise ValueError(f'impl must be one of {IMPLS}, got {impl!r}')
    return impl


class ShiftWiseLargeKernelConv(nn.Module):
    """SLaK's decomposed large kernel with both long strips realised shift-wise (Shift-ConvNets,
    2024: the "equ-SLaK" operator).

    An ``M x k`` (tall) and a ``k x M`` (wide) depthwise strip, each followed by a BN, plus a
    ``k x k`` conv-BN, summed -- the function of :class:`~mmlk.ops.DecomposedLargeKernelConv` --
    but the strips are ``nk = ceil(M / k)`` k x k tiles each, all computed by **one** grouped conv
    (``tiles``: ``2 * nk`` outputs per channel, tall tiles first) and shifted/added by
    :func:`shift_add_strip`. With ``anchor='official'`` the tiles start at ``-M // 2`` and the
    strip is zero beyond ``M``: :meth:`from_decomposed` converts a SLaK module's weights with
    identical outputs (the paper's equivalence claim).

    Args:
        channels: input (= output) channels.
        kernel_size: the long side M (odd).
        small_kernel: k (odd), the tile and small-branch size.
        anchor: ``'official'`` (released code's footprint) or ``'centred'``.
        norm_cfg: norm of each branch.
        deploy: build the inference form: the two strip BNs folded into the tiles and one bias,
            the small branch a biased conv (:meth:`switch_to_deploy`, exact in eval mode).
        impl: how the tiles are executed, the same sums either way (tested): ``'dense'``
            assembles the tiles into the two dense strips they add up to (:func:`centred_strip`)
            and runs two depthwise convs; ``'shift_add'`` runs the tile conv and shifts and adds
            its outputs (:func:`shift_add_strip`). ``'dense'`` is the default because it
            measured 6-60x faster on CPU (``benchmarks/bench_shiftwise.py``): the tile conv
            writes ``2 * ceil(M / k)`` maps per channel.
    """

    def __init__(self,
                 channels: int,
                 kernel_size: int,
                 small_kernel: int = 5,
                 anchor: str = 'official',
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 deploy: bool = False,
                 impl: str = 'dense') -> None:
        super().__init__()
        from mmcv.cnn import build_norm_layer

        self.num_tiles = _num_tiles(kernel_size, small_kernel)
        if small_kernel >= kernel_size:
            raise ValueError(f'the small kernel ({small_kernel}) must be smaller than the long '
                             f'side ({kernel_size})')
        self.channels, self.kernel_size, self.small_kernel = channels, kernel_size, small_kernel
        self.anchor = anchor
        self.starts = tile_starts(kernel_size, small_kernel, anchor)
        self.deploy = deploy
        self.impl = _check_impl(impl)
        self.tiles = nn.Conv2d(channels, 2 * channels * self.num_tiles, small_kernel,
                               padding=small_kernel - 1, groups=channels, bias=False)
        if deploy:
            self.bias = nn.Parameter(torch.zeros(channels))
        else:
            self.bn_tall = build_norm_layer(norm_cfg, channels)[1]
            self.bn_wide = build_norm_layer(norm_cfg, channels)[1]
        self.small_conv = ConvBN(channels, channels, small_kernel, groups=channels,
                                 norm_cfg=norm_cfg, deploy=deploy)

    def strips(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """The tall and wide strip responses (before their BNs)."""
        k, nk = self.small_kernel, self.num_tiles
        if self.impl == 'dense':
            x = to_depthwise_layout(x)
            tiles = self.tiles.weight.view(self.channels, 2, nk, k, k)
            tall, pad = centred_strip(tiles[:, 0], self.starts, k, horizontal=False)
            wide, _ = centred_strip(tiles[:, 1], self.starts, k, horizontal=True)
            return strip_conv(x, tall, pad, False), strip_conv(x, wide, pad, True)
        y = self.tiles(x)
        y = y.view(x.shape[0], self.channels, 2, nk, y.shape[-2], y.shape[-1])
        size = x.shape[-2:]
        return (shift_add_strip(y[:, :, 0], self.starts, k, size, horizontal=False),
                shift_add_strip(y[:, :, 1], self.starts, k, size, horizontal=True))

    def forward(self, x: Tensor) -> Tensor:
        tall, wide = self.strips(x)
        if self.deploy:
            return tall + wide + self.small_conv(x) + self.bias.view(1, -1, 1, 1)
        return self.bn_tall(tall) + self.bn_wide(wide) + self.small_conv(x)

    def switch_to_deploy(self) -> None:
        """Fold the strip BNs into the tiles (a BN after the shift-add is a per-channel affine
        map, so it scales every tile of its channel) and the small branch's BN into its conv."""
        if self.deploy:
            return
        k, nk = self.small_kernel, self.num_tiles
        tiles = self.tiles.weight.detach().reshape(self.channels, 2, nk * k, k)
        tall, tall_bias = fuse_conv_bn(tiles[:, 0, None], self.bn_tall)
        wide, wide_bias = fuse_conv_bn(tiles[:, 1, None], self.bn_wide)
        self.tiles.weight.data.copy_(torch.stack([tall[:, 0], wide[:, 0]], 1).reshape_as(
            self.tiles.weight))
        self.bias = nn.Parameter((tall_bias + wide_bias).detach())
        self.small_conv.switch_to_deploy()
        del self.bn_tall, self.bn_wide
        self.deploy = True

    def equivalent_strips(self) -> Tuple[Tensor, Tensor]:
        """The dense ``(nk*k) x k`` tall and ``k x (nk*k)`` wide kernels the tiles compute."""
        w = self.tiles.weight.reshape(self.channels, 2, self.num_tiles, 1, self.small_kernel,
                                      self.small_kernel)
        tall = tiles_to_strip(w[:, 0].reshape(-1, 1, self.small_kernel, self.small_kernel),
                              self.kernel_size, horizontal=False, channels=self.channels)
        wide = tiles_to_strip(w[:, 1].reshape(-1, 1, self.small_kernel, self.small_kernel),
                              self.kernel_size, horizontal=True, channels=self.channels)
        return tall, wide

    @classmethod
    def from_decomposed(cls, module: nn.Module) -> 'ShiftWiseLargeKernelConv':
        """Convert a training-form :class:`~mmlk.ops.DecomposedLargeKernelConv` (SLaK) into the
        shift-wise form computing the same function (official anchor, same BNs)."""
        if getattr(module, 'deploy', False):
            raise ValueError('convert the training form (LoRA1/LoRA2/small_conv), not a deployed '
                             'SLaK kernel')
        if module.small_conv.bn is None:
            raise ValueError('the SLaK kernel has no BNs to carry over (built with norm_cfg=None)')
        conv = cls(module.channels, module.kernel_size, module.small_kernel, anchor='official')
        conv.to(module.LoRA1.conv.weight.dtype)  # the copy below keeps full precision
        k = module.small_kernel
        tall = strip_to_tiles(module.LoRA1.conv.weight.detach(), k, horizontal=False)
        wide = strip_to_tiles(module.LoRA2.conv.weight.detach(), k, horizontal=True)
        tiles = torch.stack([tall.reshape(module.channels, -1, k, k),
                             wide.reshape(module.channels, -1, k, k)], 1)
        conv.tiles.weight.data.copy_(tiles.reshape(-1, 1, k, k))
        conv.bn_tall = copy.deepcopy(module.LoRA1.bn)
        conv.bn_wide = copy.deepcopy(module.LoRA2.bn)
        conv.small_conv = copy.deepcopy(module.small_conv)
        weight = module.LoRA1.conv.weight
        return conv.to(weight.device, weight.dtype)

    def extra_repr(self) -> str:
        return (f'channels={self.channels}, kernel_size=({self.kernel_size}, {self.small_kernel}), '
                f'tiles={self.num_tiles}, anchor={self.anchor!r}, impl={self.impl!r}, '
                f'deploy={self.deploy}')


def replica_tables(channels: int, num_tiles: int, num_replicas: int, seed: int = 123
                   ) -> Tuple[Tensor, Tensor, Tensor]:
    """The CVPR operator's random tile arrangements, drawn from a private generator.

    Returns ``(index_h, index_v, index_small)``: ``index_h[r, c, i]`` is the tile (of channel
    ``c``'s ``num_tiles``) placed at strip position ``i`` in replica ``r`` of the horizontal
    strip, likewise ``index_v``; ``index_small[r, c]`` the tile reused as the k x k branch. The
    draw order follows the released code (all horizontal permutations, then all vertical ones,
    then the small-branch picks, per replica and channel, from ``torch.manual_seed(seed)``) but
    never touches the global RNG.
    """
    g = torch.Generator().manual_seed(seed)
    perms = [torch.stack([torch.stack([torch.randperm(num_tiles, generator=g)
                                       for _ in range(channels)]) for _ in range(num_replicas)])
             for _ in range(2)]
    small = torch.stack([torch.randint(0, num_tiles, (channels, ), generator=g)
                         for _ in range(num_replicas)])
    return perms[0], perms[1], small


def ghost_split(channels: int, ghost_ratio: float, seed: int = 123) -> Tuple[Tensor, Tensor]:
    """``(rep, ghost)`` channel indices (sorted) of the CVPR operator: ``R = int(C * (1 -
    ghost_ratio)) // 2 * 2`` channels go through the shift-wise conv, the others pass through.
    Drawn as the released code does (``numpy`` seed 123, ``choice`` without replacement) from a
    private ``RandomState``."""
    import numpy as np
    if not 0 <= ghost_ratio < 1:
        raise ValueError(f'ghost_ratio must be in [0, 1), got {ghost_ratio}')
    rep_count = int(channels * (1 - ghost_ratio)) // 2 * 2
    if rep_count < 2:
        raise ValueError(f'ghost_ratio {ghost_ratio} leaves no channel pair of {channels} for the '
                         'shift-wise conv')
    ghost = np.sort(np.random.RandomState(seed).choice(channels, channels - rep_count,
                                                       replace=False))
    rep = np.setdiff1d(np.arange(channels), ghost)
    return torch.as_tensor(rep, dtype=torch.long), torch.as_tensor(ghost, dtype=torch.long)


def _gather_replicas(tiles: Tensor, index: Tensor) -> Tensor:
    """``sum_r tiles[:, c, index[r, c, i]]`` for every (c, i): ``(B, C, nk, H, W)``."""
    channels, num_tiles = index.shape[1:]
    offsets = torch.arange(channels, device=tiles.device).view(-1, 1) * num_tiles
    flat = tiles.flatten(1, 2)
    out = 0
    for replica in index.to(tiles.device):
        out = out + flat.index_select(1, (replica + offsets).flatten())
    return out.view_as(tiles)


class ShiftWiseConv(nn.Module):
    """The CVPR 2025 ShiftwiseConv operator (Li et al., "ShiftwiseConv: Small Convolutional
    Kernel with Large Kernel Effect").

    A fixed random subset of ``ghost`` channels passes through; on the other ``R`` channels
    ``num_paths`` grouped k x k convs (``LoRAs``, summed: linear over-parameterisation) give
    ``nk = ceil(M / k)`` tiles per channel, which ``num_replicas`` random arrangements place
    along a horizontal and a vertical long strip and, one tile each, as a k x k branch. Each
    branch has its own BN (``bn_lora1`` horizontal, ``bn_lora2`` vertical, ``bn_small``) and the
    rep channels add an identity: ``cat([BN_H(H) + BN_V(V) + BN_S(S) + x_rep, x_ghost])``.

    The ghost split and arrangements are reproducible buffers (:func:`ghost_split`,
    :func:`replica_tables`), so a checkpoint is self-contained; the released checkpoints lack
    them and a load regenerates them from the same seeds. Module names follow the released code.

    ``switch_to_deploy()`` (or ``deploy=True``) is exact in eval mode: the paths are summed, the
    replicas merged into one tile per strip position (``tiles``: horizontal, then vertical)
    and one k x k kernel (``small``), each branch's BN folded in, the identity added to the
    k x k kernel's centre, and the three biases summed. The deploy forward runs the merged
    tiles as two dense k-wide depthwise strips (:meth:`dense_strips`, the k x k kernel merged
    into one of them): the same linear map without materialising the tile outputs.

    ``impl`` chooses how the training form runs its branches, with the same sums (tested):
    ``'dense'`` (default, measured fastest on CPU) merges paths and replicas into per-position
    tiles and runs them as dense strips, as deploy does but before the BNs; ``'shift_add'``
    runs the tile convs and gathers, shifts and adds their outputs, as the released code.
    """

    def __init__(self,
                 channels: int,
                 kernel_size: int,
                 small_kernel: int = 3,
                 ghost_ratio: float = 0.23,
                 num_paths: int = 2,
                 num_replicas: int = 4,
                 anchor: str = 'official',
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 seed: int = 123,
                 deploy: bool = False,
                 impl: str = 'dense') -> None:
        super().__init__()
        from mmcv.cnn import build_norm_layer
        self.impl = _check_impl(impl)
        if num_paths < 1 or num_replicas < 1:
            raise ValueError(f'num_paths and num_replicas must be >= 1, got {num_paths} and '
                             f'{num_replicas}')
        self.num_tiles = _num_tiles(kernel_size, small_kernel)
        self.channels, self.kernel_size, self.small_kernel = channels, kernel_size, small_kernel
        self.starts = tile_starts(kernel_size, small_kernel, anchor)
        rep, ghost = ghost_split(channels, ghost_ratio, seed)
        self.register_buffer('rep_index', rep)
        self.register_buffer('ghost_index', ghost)
        index_h, index_v, index_small = replica_tables(len(rep), self.num_tiles, num_replicas,
                                                       seed)
        self.register_buffer('index_h', index_h)
        self.register_buffer('index_v', index_v)
        self.register_buffer('index_small', index_small)
        reps = len(rep)
        self.deploy = deploy
        if deploy:
            self.tiles = nn.Conv2d(reps, 2 * reps * self.num_tiles, small_kernel,
                                   padding=small_kernel - 1, groups=reps, bias=False)
            self.small = nn.Conv2d(reps, reps, small_kernel, padding=small_kernel // 2,
                                   groups=reps, bias=True)
            return
        self.LoRAs = nn.ModuleList(
            nn.Conv2d(reps, reps * self.num_tiles, small_kernel, padding=small_kernel - 1,
                      groups=reps, bias=False) for _ in range(num_paths))
        self.bn_lora1 = build_norm_layer(norm_cfg, reps)[1]
        self.bn_lora2 = build_norm_layer(norm_cfg, reps)[1]
        self.bn_small = build_norm_layer(norm_cfg, reps)[1]

    def merged_tiles(self, weight: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Tile-conv weights ``(R * nk, 1, k, k)`` -> the horizontal and vertical tiles per strip
        position ``(R, nk, k, k)`` and the k x k kernels ``(R, 1, k, k)``, replicas summed."""
        k, nk = self.small_kernel, self.num_tiles
        tiles = weight.view(-1, nk, k, k)
        rows = torch.arange(tiles.shape[0], device=weight.device)

        def merged(index: Tensor) -> Tensor:
            return sum(tiles[rows[:, None], replica] for replica in index)

        small = sum(tiles[rows, replica] for replica in self.index_small)[:, None]
        return merged(self.index_h), merged(self.index_v), small

    def branches(self, x_rep: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """The horizontal, vertical and small outputs before their BNs."""
        size, k = x_rep.shape[-2:], self.small_kernel
        if self.impl == 'dense':
            x_rep = to_depthwise_layout(x_rep)
            tiles_h, tiles_v, small = self.merged_tiles(sum(conv.weight for conv in self.LoRAs))
            strip_h, pad = centred_strip(tiles_h, self.starts, k, horizontal=True)
            strip_v, _ = centred_strip(tiles_v, self.starts, k, horizontal=False)
            return (strip_conv(x_rep, strip_h, pad, True), strip_conv(x_rep, strip_v, pad, False),
                    depthwise_conv2d(x_rep, small))
        y = sum(conv(x_rep) for conv in self.LoRAs)
        tiles = y.view(y.shape[0], -1, self.num_tiles, y.shape[-2], y.shape[-1])
        h = shift_add_strip(_gather_replicas(tiles, self.index_h), self.starts, k, size, True)
        v = shift_add_strip(_gather_replicas(tiles, self.index_v), self.starts, k, size, False)
        pick = (self.index_small + torch.arange(tiles.shape[1], device=y.device) *
                self.num_tiles)
        small = sum(shift_add_small(y.index_select(1, p), k, size) for p in pick)
        return h, v, small

    def forward(self, x: Tensor) -> Tensor:
        ghosts = self.ghost_index.numel() > 0
        x_rep = x.index_select(1, self.rep_index) if ghosts else x  # no copy without ghosts
        if self.deploy:
            # Inference runs the merged tiles as two dense depthwise strips (the same linear
            # map; materialising the tile outputs for the shift-add measured 5-30x slower on
            # CPU, benchmarks/bench_shiftwise.py). The centred k x k kernel (identity and bias
            # included) merges into the horizontal strip through the shared reparam utility:
            # two convs in all.
            x_rep = to_depthwise_layout(x_rep)
            strip_h, strip_v, pad = self.dense_strips()
            kernel_h, bias = merge_branches([(strip_h, torch.zeros_like(self.small.bias)),
                                             (self.small.weight, self.small.bias)])
            out = (strip_conv(x_rep, kernel_h, pad, True, bias) +
                   strip_conv(x_rep, strip_v, pad, False))
        else:
            h, v, small = self.branches(x_rep)
            out = self.bn_lora1(h) + self.bn_lora2(v) + self.bn_small(small) + x_rep
        if not ghosts:
            return out
        return torch.cat([out, x.index_select(1, self.ghost_index)], 1)

    def dense_strips(self) -> Tuple[Tensor, Tensor, int]:
        """The deploy tiles as centred dense strips ``(R, 1, k, 2P+1)`` and ``(R, 1, 2P+1, k)``
        (the footprint, asymmetric under the official anchor, zero-padded to be centred) and P."""
        k, nk = self.small_kernel, self.num_tiles
        weight = self.tiles.weight.view(-1, 2, nk, k, k)
        strip_h, pad = centred_strip(weight[:, 0], self.starts, k, horizontal=True)
        strip_v, _ = centred_strip(weight[:, 1], self.starts, k, horizontal=False)
        return strip_h, strip_v, pad

    def switch_to_deploy(self) -> None:
        if self.deploy:
            return
        k, nk = self.small_kernel, self.num_tiles
        weight = sum(conv.weight.detach() for conv in self.LoRAs)  # the paths are linear
        merged_h, merged_v, small = self.merged_tiles(weight)
        reps = merged_h.shape[0]
        tiles_h, bias_h = fuse_conv_bn(merged_h.reshape(reps, 1, nk * k, k), self.bn_lora1)
        tiles_v, bias_v = fuse_conv_bn(merged_v.reshape(reps, 1, nk * k, k), self.bn_lora2)
        small, bias_s = fuse_conv_bn(small, self.bn_small)
        small = small.clone()
        small[:, 0, k // 2, k // 2] += 1  # the identity on the rep channels
        self.tiles = nn.Conv2d(reps, 2 * reps * nk, k, padding=k - 1, groups=reps,
                               bias=False).to(weight.device, weight.dtype)
        self.tiles.weight.data.copy_(torch.stack([tiles_h.view(reps, nk, k, k),
                                                  tiles_v.view(reps, nk, k, k)], 1).reshape(
                                                      -1, 1, k, k))
        self.small = nn.Conv2d(reps, reps, k, padding=k // 2, groups=reps, bias=True).to(
            weight.device, weight.dtype)
        self.small.weight.data.copy_(small)
        self.small.bias.data.copy_((bias_h + bias_v + bias_s).detach())
        del self.LoRAs, self.bn_lora1, self.bn_lora2, self.bn_small
        self.deploy = True

    def extra_repr(self) -> str:
        paths = 'merged' if self.deploy else len(self.LoRAs)
        return (f'channels={self.channels} (rep {len(self.rep_index)}), kernel_size=('
                f'{self.kernel_size}, {self.small_kernel}), tiles={self.num_tiles}, '
                f'paths={paths}, replicas={len(self.index_h)}, impl={self.impl!r}, '
                f'deploy={self.deploy}')
