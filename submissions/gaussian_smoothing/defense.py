"""Gaussian smoothing of the input, the 'GS' denoiser of MedRDF (Xu et al. 2022, Sec. V-B)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from benchmark.defenses import Defense, DefenseMeta, SubmissionError


class GaussianSmoothing(Defense):
    """Depthwise Gaussian blur with standard deviation ``sigma`` pixels, reflect padding."""

    meta = DefenseMeta(
        kind="preprocessing",
        randomized=False,
        differentiable=True,
        reference="medrdf_xu2022.md Sec. V-B (GS denoiser)",
        version="1.0",
        license="MIT",
        authors=("MedRobustBench",),
        description="Gaussian smoothing of the input image",
    )
    defaults = {"sigma": 1.0}

    def setup(self) -> None:
        if float(self.params["sigma"]) <= 0:
            raise SubmissionError("sigma must be > 0")

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        sigma = float(self.params["sigma"])
        radius = max(1, math.ceil(2 * sigma))
        t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
        g = torch.exp(-(t**2) / (2 * sigma**2))
        g = g / g.sum()
        c = x.shape[1]
        padded = F.pad(x, (radius, radius, radius, radius), mode="reflect")
        out = F.conv2d(padded, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        out = F.conv2d(out, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
        return out.clamp(0, 1)
