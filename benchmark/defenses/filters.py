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
    windows = padded.unfold(2, k, 1).unfold(3, k, 1)  # N, C, H, W, k, k
    return windows.reshape(*windows.shape[:4], k * k).median(dim=-1).values


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
