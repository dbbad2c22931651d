"""Bit-depth reduction (feature squeezing), Xu, Evans and Qi, NDSS 2018, Sec. 3.1."""

from __future__ import annotations

import torch

from benchmark.defenses import Defense, DefenseMeta, SubmissionError


class BitDepthReduction(Defense):
    """Quantise every pixel to ``bits`` bits: ``round(x (2^b - 1)) / (2^b - 1)`` (Sec. 3.1)."""

    meta = DefenseMeta(
        kind="preprocessing",
        randomized=False,
        differentiable=False,  # zero gradient almost everywhere: attacked with BPDA (identity)
        reference="https://arxiv.org/abs/1704.01155 Sec. 3.1",
        version="1.0",
        license="MIT",
        authors=("MedRobustBench",),
        name="Bit-depth reduction",
        paper="Xu, Evans and Qi, Feature Squeezing, NDSS 2018, Sec. 3.1",
        threat_models=("oblivious", "adaptive"),
        description="Feature squeezing: reduce the colour depth to a few bits",
    )
    defaults = {"bits": 5}

    def setup(self) -> None:
        if not 1 <= int(self.params["bits"]) <= 8:
            raise SubmissionError("bits must be between 1 and 8")

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        levels = 2 ** int(self.params["bits"]) - 1
        return torch.round(x * levels) / levels
