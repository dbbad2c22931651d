"""Gaussian smoothing of the input: the 'GS' denoiser of MedRDF (Xu et al. 2022, IV-B.2, V-A.1)."""

from __future__ import annotations

import torch

from benchmark.defenses import Defense, DefenseMeta, SubmissionError
from benchmark.defenses.filters import gaussian_blur


class GaussianSmoothing(Defense):
    """Depthwise Gaussian blur with standard deviation ``sigma`` pixels, reflect padding."""

    meta = DefenseMeta(
        kind="preprocessing",
        randomized=False,
        differentiable=True,
        reference="medrdf_xu2022.md Sec. IV-B.2 and V-A.1 (GS denoiser)",
        version="1.0",
        license="MIT",
        authors=("MedRobustBench",),
        name="Gaussian smoothing",
        paper="Xu, Zhang and Zhang, MedRDF, IEEE TMI 2022, Sec. IV-B.2 (GS)",
        threat_models=("oblivious", "adaptive"),
        description="Gaussian smoothing of the input image",
    )
    defaults = {"sigma": 1.0}

    def setup(self) -> None:
        if float(self.params["sigma"]) <= 0:
            raise SubmissionError("sigma must be > 0")

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        return gaussian_blur(x, float(self.params["sigma"])).clamp(0, 1)
