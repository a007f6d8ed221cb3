"""The ``triton`` backend: Triton kernels of mmlk's depthwise op for GPUs.

PyTorch's CUDA depthwise kernels are slow for 31x31 and 51x5 kernels in training (the reason
the official SLaK/RepLKNet code ships an implicit-GEMM CUDA extension). torch's CUDA build
already depends on ``triton``, so these kernels add no dependency. Three kernels, every one
accumulating in float32 and reading any memory layout through strides (NCHW or NHWC, fp32,
fp16 or bf16):

* forward: one program per (sample and output row, block of columns, block of channels); it
  walks the kh x kw taps, loading shifted input tiles and the per-channel weights;
* input gradient: the forward kernel on the output gradient with the flipped kernel (exact for
  "same" padding, stride 1 and odd kernels);
* weight gradient: one program per (block of channels, kernel tap, chunk of samples) reducing
  ``x_shifted * grad`` over its samples' pixels into a float32 partial sum; the chunks are
  summed afterwards.

On CPU tensors they run only under Triton's interpreter (``TRITON_INTERPRET=1``), which the
tests use on small shapes; ``benchmarks/bench_gpu_depthwise.py`` measures them on a GPU.
"""
from typing import Optional

import torch
import triton
import triton.language as tl
from torch import Tensor

from .function import DepthwiseKernels

__all__ = ['KERNELS']


@triton.jit
def _dw_forward_kernel(x_ptr, w_ptr, b_ptr, y_ptr, C, H, W,
                       sxn, sxc, sxh, sxw, syn, syc, syh, syw,
                       KH, KW, HAS_BIAS: tl.constexpr, BLOCK_C: tl.constexpr,
                       BLOCK_W: tl.constexpr):
    row = tl.program_id(0)  # n * H + h
    n = (row // H).to(tl.int64)
    h = row % H
    cols = tl.program_id(1) * BLOCK_W + tl.arange(0, BLOCK_W)
    chans = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = chans < C
    acc = tl.zeros((BLOCK_C, BLOCK_W), dtype=tl.float32)
    x_base = x_ptr + n * sxn + chans[:, None].to(tl.int64) * sxc
    for i in range(0, KH):
        ih = h + i - KH // 2
        row_ok = (ih >= 0) & (ih < H)
        for j in range(0, KW):
            iw = cols + j - KW // 2
            mask = c_ok[:, None] & ((iw >= 0) & (iw < W) & row_ok)[None, :]
            xv = tl.load(x_base + ih * sxh + iw[None, :] * sxw, mask=mask, other=0.0)
            wv = tl.load(w_ptr + chans * (KH * KW) + i * KW + j, mask=c_ok, other=0.0)
            acc += xv.to(tl.float32) * wv.to(tl.float32)[:, None]
    if HAS_BIAS:
        acc += tl.load(b_ptr + chans, mask=c_ok, other=0.0).to(tl.float32)[:, None]
    out_mask = c_ok[:, None] & (cols < W)[None, :]
    y_offs = n * syn + chans[:, None].to(tl.int64) * syc + h * syh + cols[None, :] * syw
    tl.store(y_ptr + y_offs, acc.to(y_ptr.dtype.element_ty), mask=out_mask)


@triton.jit
def _dw_weight_grad_kernel(x_ptr, g_ptr, out_ptr, N, C, H, W, SAMPLES_PER_PROGRAM,
                           sxn, sxc, sxh, sxw, sgn, sgc, sgh, sgw,
                           KH, KW, BLOCK_C: tl.constexpr, BLOCK_W: tl.constexpr):
    chans = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
    tap = tl.program_id(1)
    split = tl.program_id(2)
    i = tap // KW
    j = tap % KW
    c_ok = chans < C
    acc = tl.zeros((BLOCK_C, BLOCK_W), dtype=tl.float32)
    n_start = split * SAMPLES_PER_PROGRAM
    for n in range(n_start, n_start + SAMPLES_PER_PROGRAM):
        n_ok = n < N
        x_base = x_ptr + tl.cast(n, tl.int64) * sxn + chans[:, None].to(tl.int64) * sxc
        g_base = g_ptr + tl.cast(n, tl.int64) * sgn + chans[:, None].to(tl.int64) * sgc
        for h in range(0, H):
            ih = h + i - KH // 2
            row_ok = (ih >= 0) & (ih < H) & n_ok
            for w0 in range(0, W, BLOCK_W):
                cols = w0 + tl.arange(0, BLOCK_W)
                iw = cols + j - KW // 2
                g_mask = c_ok[:, None] & ((cols < W) & n_ok)[None, :]
                x_mask = c_ok[:, None] & ((cols < W) & (iw >= 0) & (iw < W) & row_ok)[None, :]
                gv = tl.load(g_base + h * sgh + cols[None, :] * sgw, mask=g_mask, other=0.0)
                xv = tl.load(x_base + ih * sxh + iw[None, :] * sxw, mask=x_mask, other=0.0)
                acc += xv.to(tl.float32) * gv.to(tl.float32)
    total = tl.sum(acc, axis=1)
    out_offs = split.to(tl.int64) * C * KH * KW + chans * (KH * KW) + tap
    tl.store(out_ptr + out_offs, total, mask=c_ok)


def _blocks(channels: int, width: int):
    block_c = min(32, triton.next_power_of_2(channels))
    block_w = min(64, triton.next_power_of_2(width))
    return block_c, block_w


def _forward(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    n, c, h, w = x.shape
    kh, kw = weight.shape[-2:]
    y = torch.empty_like(x)  # keeps x's memory format
    block_c, block_w = _blocks(c, w)
    grid = (n * h, triton.cdiv(w, block_w), triton.cdiv(c, block_c))
    weight = weight.contiguous()
    _dw_forward_kernel[grid](
        x, weight, bias if bias is not None else weight, y, c, h, w, *x.stride(), *y.stride(),
        kh, kw, HAS_BIAS=bias is not None, BLOCK_C=block_c, BLOCK_W=block_w)
    return y


def _weight_grad(x: Tensor, grad: Tensor, kernel_size) -> Tensor:
    n, c, h, w = x.shape
    kh, kw = kernel_size
    block_c, block_w = _blocks(c, w)
    # Enough programs to fill a GPU without a long serial loop per program.
    splits = max(1, min(n, triton.cdiv(4096, triton.cdiv(c, block_c) * kh * kw)))
    per_program = triton.cdiv(n, splits)
    splits = triton.cdiv(n, per_program)
    partial = torch.empty(splits, c, kh, kw, device=x.device, dtype=torch.float32)
    grid = (triton.cdiv(c, block_c), kh * kw, splits)
    _dw_weight_grad_kernel[grid](
        x, grad, partial, n, c, h, w, per_program, *x.stride(), *grad.stride(), kh, kw,
        BLOCK_C=block_c, BLOCK_W=block_w)
    return partial.sum(0).unsqueeze(1)


KERNELS = DepthwiseKernels(_forward, _weight_grad)
