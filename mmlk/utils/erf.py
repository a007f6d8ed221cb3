"""Effective receptive field (ERF) as measured in the RepLKNet and SLaK papers.

Ding et al., CVPR 2022, section 5 / Liu et al., ICLR 2023, figure 3: for each image, the
gradient of the (ReLU'd) centre pixel of the last feature map, summed over channels, with
respect to the input; ReLU'd gradients are summed over images. The map is log-scaled
(``log10(x + 1)``) and summarised by the area ratio of the smallest centred square that
holds a fraction ``t`` of the total contribution: the larger the ratio, the larger the ERF.
"""
from typing import Callable, Dict, Iterable, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ['input_gradient_map', 'accumulate_erf', 'log_scale', 'centred_area_ratio',
           'erf_table', 'DEFAULT_THRESHOLDS']

DEFAULT_THRESHOLDS = (0.2, 0.3, 0.5, 0.99)


def input_gradient_map(features: Callable[[Tensor], Tensor], images: Tensor) -> Tensor:
    """``(H, W)`` contribution of each input pixel to the centre of ``features(images)``.

    ``features`` maps ``(N, 3, H, W)`` to the last-stage map ``(N, C, h, w)``; the centre
    ``(h // 2, w // 2)`` is ReLU'd and summed over channels and images, its input gradient is
    ReLU'd and summed over images and colour channels.
    """
    images = images.detach().clone().requires_grad_(True)
    out = features(images)
    if out.dim() != 4:
        raise ValueError(f'the ERF needs a spatial feature map (N, C, h, w), got shape '
                         f'{tuple(out.shape)}; for classification backbones disable global '
                         'pooling (e.g. gap_before_final_norm=False)')
    centre = torch.relu(out[:, :, out.shape[2] // 2, out.shape[3] // 2]).sum()
    grad, = torch.autograd.grad(centre, images)
    return torch.relu(grad).sum((0, 1))


def accumulate_erf(features: Callable[[Tensor], Tensor], batches: Iterable[Tensor]) -> np.ndarray:
    """Sum of :func:`input_gradient_map` over ``batches`` (float64 numpy ``(H, W)``)."""
    total: Optional[np.ndarray] = None
    for images in batches:
        grad = input_gradient_map(features, images).double().cpu().numpy()
        total = grad if total is None else total + grad
    if total is None:
        raise ValueError('no images to compute the ERF on')
    return total


def log_scale(erf: np.ndarray) -> np.ndarray:
    """``log10(x + 1)``, as the papers plot and analyse the ERF."""
    return np.log10(np.asarray(erf, np.float64) + 1)


def centred_area_ratio(erf: np.ndarray, threshold: float) -> float:
    """Area ratio ``side**2 / (H * W)`` of the smallest centred odd square (clipped to the map)
    whose sum reaches ``threshold`` of the map's total; 1.0 if only the whole map does."""
    if not 0 < threshold <= 1:
        raise ValueError(f'threshold must be in (0, 1], got {threshold}')
    erf = np.asarray(erf, np.float64)
    h, w = erf.shape
    total = erf.sum()
    if total <= 0:
        raise ValueError('the ERF map is all zeros: the centre output does not depend on the '
                         'input (all-zero features or a wrong layer)')
    cy, cx = h // 2, w // 2
    for radius in range(max(h, w)):
        top, left = max(cy - radius, 0), max(cx - radius, 0)
        window = erf[top:cy + radius + 1, left:cx + radius + 1]
        if window.sum() >= threshold * total - 1e-12 * total:
            return window.size / float(h * w)
    return 1.0


def erf_table(erf: np.ndarray, thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
              log: bool = True) -> Dict[float, float]:
    """``{t: area ratio}`` for the (log-scaled) ERF map."""
    data = log_scale(erf) if log else np.asarray(erf, np.float64)
    return {t: centred_area_ratio(data, t) for t in thresholds}
