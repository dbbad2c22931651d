"""Balanced accuracy and its class-stratified bootstrap interval, from per-image outcomes.

Balanced accuracy is the mean over the classes present in the test split of the per-class
accuracy; a class with no test image is left out of the mean, as in the clean per-class
metrics, rather than counted as 0. Its 95 % interval is a stratified percentile bootstrap: each
class is resampled with replacement at its own size (class sizes fixed, as in the test split),
2000 resamples, seeded. The tests between entries are in :mod:`benchmark.metrics.paired`, the
shared ranks in :mod:`benchmark.metrics.ranks`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmark.errors import ConfigError
from benchmark.results.outcomes import as_bool_vector

#: Resamples of the bootstrap intervals.
N_BOOT = 2000


# ----------------------------------------------------------------------------- inputs


def check_labels(labels: Any, n: int, num_classes: int | None = None) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ConfigError(f"labels must be a vector of {n} class ids, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer) and not np.all(np.mod(arr, 1) == 0):
        raise ConfigError("labels must be integer class ids")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise ConfigError("labels must be non-negative class ids")
    if num_classes is not None and arr.size and arr.max() >= num_classes:
        raise ConfigError(f"label {int(arr.max())} out of range for {num_classes} classes")
    return arr


def class_masks(labels: np.ndarray) -> list[np.ndarray]:
    """One boolean mask per class present, in increasing class order."""
    return [labels == c for c in np.unique(labels)]


# ----------------------------------------------------------------------------- balanced


def balanced_accuracy(correct: Any, labels: Any, num_classes: int | None = None) -> float:
    """Mean over the classes present in ``labels`` of the per-class accuracy.

    A class with no image in ``labels`` is left out of the mean (not counted as 0), so a test
    split that lacks a class is scored on the classes it has.

    Args:
        correct: (N,) per-image outcomes (True = correct / robust).
        labels: (N,) integer class ids.
        num_classes: if given, labels must lie in ``[0, num_classes)``.

    Returns:
        The balanced accuracy in [0, 1].

    Raises:
        ConfigError: on empty input, mismatched lengths or invalid labels.
    """
    correct = as_bool_vector(correct, "correct")
    labels = check_labels(labels, correct.shape[0], num_classes)
    if correct.size == 0:
        raise ConfigError("balanced accuracy of no images is undefined")
    return float(np.mean([correct[m].mean() for m in class_masks(labels)]))


def stratified_bootstrap_samples(
    correct: Any, labels: Any, *, n_boot: int = N_BOOT, seed: int = 0
) -> np.ndarray:
    """Balanced accuracies of ``n_boot`` stratified bootstrap resamples.

    Each resample draws, within every class, as many images as the class has, with
    replacement. The per-class successes of such a resample are Binomial(n_c, k_c / n_c), so
    they are drawn directly (the same distribution as resampling indices, in O(n_boot K)
    instead of O(n_boot N)). Classes are drawn in increasing class order from one
    ``numpy.random.default_rng(seed)``, so the result is deterministic.

    Args:
        correct: (N,) per-image outcomes.
        labels: (N,) integer class ids.
        n_boot: number of resamples.
        seed: seed of the generator.

    Returns:
        (n_boot,) resampled balanced accuracies.
    """
    correct = as_bool_vector(correct, "correct")
    labels = check_labels(labels, correct.shape[0])
    if correct.size == 0:
        raise ConfigError("cannot bootstrap no images")
    if n_boot < 1:
        raise ConfigError(f"n_boot must be positive, got {n_boot}")
    rng = np.random.default_rng(seed)
    masks = class_masks(labels)
    total = np.zeros(n_boot)
    for m in masks:
        n_c = int(m.sum())
        total += rng.binomial(n_c, correct[m].mean(), size=n_boot) / n_c
    return total / len(masks)


def percentile_interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ConfigError(f"level must lie in (0, 1), got {level}")
    tail = (1 - level) / 2
    lo, hi = np.quantile(samples, [tail, 1 - tail])
    return (float(lo), float(hi))


def stratified_bootstrap_balanced(
    correct: Any, labels: Any, *, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the balanced accuracy, resampling within classes.

    Args:
        correct: (N,) per-image outcomes.
        labels: (N,) integer class ids.
        n_boot: number of resamples (see :func:`stratified_bootstrap_samples`).
        seed: seed of the generator; the same inputs and seed give the same interval.
        level: coverage of the interval.

    Returns:
        (low, high): the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles (linear
        interpolation) of the resampled balanced accuracies.
    """
    return percentile_interval(
        stratified_bootstrap_samples(correct, labels, n_boot=n_boot, seed=seed), level
    )
