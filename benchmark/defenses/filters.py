"""Image filters shared by defense plugins (part of the public plugin API).

Batched torch implementations on float NCHW tensors, differentiable, CPU or CUDA.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def median_filter(x: Tensor, kernel_size: int = 3) -> Tensor:
    """Median of each ``k x k`` window with reflect padding; an even window sits right of
    centre (as feature squeezing's 2x2 filter). The gradient goes to the selected pixel."""
    k = int(kernel_size)
    lo, hi = (k - 1) // 2, k // 2
    padded = F.pad(x, (lo, hi, lo, hi), mode="reflect")
    if k == 3 and not (torch.is_grad_enabled() and x.requires_grad):
        return _median9(padded)
    return _median_sorted(padded, k)


def _median_sorted(padded: Tensor, k: int) -> Tensor:
    """The ``k x k`` median of a padded batch by a sort over the materialised windows
    (differentiable: the gradient goes to the selected pixel)."""
    windows = padded.unfold(2, k, 1).unfold(3, k, 1)  # N, C, H, W, k, k
    return windows.reshape(*windows.shape[:4], k * k).median(dim=-1).values


# Paeth's median-of-9 exchange network (Graphics Gems, 1990): 19 compare-exchanges.
_MEDIAN9 = [(1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3)]
_MEDIAN9 += [(5, 8), (4, 7), (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2)]


def _median9(padded: Tensor) -> Tensor:
    """The 3 x 3 median of a padded batch by an exchange network of elementwise min/max on
    the nine shifted views: the same values as the sort-based median (a median is a
    selection, so exactly), without materialising the 9x window tensor; MedRDF's votes run
    it on every noisy copy. Gradient-free callers only (the sort-based path routes the
    gradient to the selected pixel)."""
    h, w = padded.shape[-2] - 2, padded.shape[-1] - 2
    p = [padded[..., i : i + h, j : j + w] for i in range(3) for j in range(3)]
    for a, b in _MEDIAN9:
        p[a], p[b] = torch.minimum(p[a], p[b]), torch.maximum(p[a], p[b])
    return p[4].contiguous()


def gaussian_blur(x: Tensor, sigma: float = 1.0) -> Tensor:
    """Separable depthwise Gaussian blur, standard deviation ``sigma`` pixels, radius
    ceil(2 sigma), reflect padding."""
    radius = max(1, math.ceil(2 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    c = x.shape[1]
    out = F.pad(x, (radius,) * 4, mode="reflect")
    out = F.conv2d(out, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
