"""Metric interface: predictions in, a JSON-ready value with ``n`` and a 95% CI out.

Every scalar metric returns ``{"value", "n", "ci95": [lo, hi], "ci_method"}`` so results files
always say how many samples a number rests on and how uncertain it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmark.registry import Registry


@dataclass(frozen=True)
class MetricMeta:
    """Static description of a registered metric.

    Attributes:
        description: one line shown by ``bench list metrics``.
        tasks: "single-label", "multi-label" or "any".
        higher_is_better: direction of the metric.
        reference: where the definition comes from.
        kind: "clean" (``fn(pred)``), "adversarial" (``fn(clean_pred, adv_pred)``) or
            "corruption" (sequence and severity metrics).
    """

    description: str
    tasks: str = "any"
    higher_is_better: bool = True
    reference: str = ""
    kind: str = "clean"


@dataclass(frozen=True)
class Predictions:
    """Scores of a model on a labelled set.

    Attributes:
        probs: (N, K) class probabilities (softmax) or (N, L) label probabilities (sigmoid).
        labels: (N,) int class ids, or (N, L) 0/1 for multi-label tasks.
        class_names: one name per class / label.
        multi_label: whether ``probs`` are independent label probabilities.
        seed: seed of the bootstrap used for confidence intervals.
        abstained: (N,) bool, samples a defense abstained on (MedRDF's vote); their predicted
            class is -1, so every accuracy counts them as errors.
    """

    probs: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    multi_label: bool = False
    seed: int = 0
    abstained: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Number of samples."""
        return int(self.labels.shape[0])

    @property
    def predicted(self) -> np.ndarray:
        """Argmax class (single-label; -1 where abstained) or thresholded 0/1 labels at 0.5
        (multi-label)."""
        if self.multi_label:
            return (self.probs > 0.5).astype(np.int64)
        pred = self.probs.argmax(axis=1)
        if self.abstained is not None:
            pred = np.where(self.abstained, -1, pred)
        return pred


MetricFn = Callable[[Predictions], dict[str, Any]]

METRICS: Registry[MetricFn] = Registry("metric", meta_type=MetricMeta)

BOOTSTRAP_SAMPLES = 1000


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion (well-behaved at 0, 1 and small n)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def scalar(value: float, n: int, ci: tuple[float, float], method: str) -> dict[str, Any]:
    """The JSON shape of a scalar metric."""
    return {
        "value": float(value),
        "n": int(n),
        "ci95": [float(ci[0]), float(ci[1])],
        "ci_method": method,
    }


def bootstrap_ci(
    stat: Callable[[np.ndarray], float], n: int, seed: int, samples: int = BOOTSTRAP_SAMPLES
) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of ``stat(indices)`` over ``n`` samples.

    Resamples where the statistic is undefined (``nan``, e.g. one class only) are skipped.
    """
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(samples):
        v = stat(rng.integers(0, n, size=n))
        if not math.isnan(v):
            values.append(v)
    if not values:
        return (float("nan"), float("nan"))
    lo, hi = np.percentile(values, [2.5, 97.5])
    return (float(lo), float(hi))
