"""Median filter (feature squeezing), Xu, Evans and Qi, NDSS 2018, Sec. 3.2."""

from __future__ import annotations

import torch

from benchmark.defenses import Defense, DefenseMeta, SubmissionError
from benchmark.defenses.filters import median_filter


class MedianFilter(Defense):
    """Median of each ``k x k`` window, reflect padding at the borders (Sec. 3.2)."""

    meta = DefenseMeta(
        kind="preprocessing",
        randomized=False,
        differentiable=True,  # the median passes the gradient to the selected pixel
        reference="https://arxiv.org/abs/1704.01155 Sec. 3.2",
        version="1.0",
        license="MIT",
        authors=("MedRobustBench",),
        name="Median filter",
        paper="Xu, Evans and Qi, Feature Squeezing, NDSS 2018, Sec. 3.2",
        threat_models=("oblivious", "adaptive"),
        description="Feature squeezing: median filter over k x k windows",
    )
    defaults = {"kernel_size": 3}

    def setup(self) -> None:
        k = int(self.params["kernel_size"])
        if k < 2:
            raise SubmissionError("kernel_size must be >= 2")

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        return median_filter(x, int(self.params["kernel_size"]))
