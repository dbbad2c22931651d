"""Balanced accuracy and its class-stratified bootstrap interval, from per-image outcomes.

Balanced accuracy is the mean over the classes present in the test split of the per-class
accuracy; a class with no test image is left out of the mean, as in the clean per-class
metrics, rather than counted as 0. Its 95 % interval is a stratified percentile bootstrap: each
class is resampled with replacement at its own size (class sizes fixed, as in the test split),
2000 resamples, seeded. The tests between entries are in :mod:`benchmark.metrics.paired`, the
shared ranks in :mod:`benchmark.metrics.ranks`.

Balanced mean corruption accuracy (the corruption protocol) generalises it to integer scores:
``scores[i]`` in ``[0, total]`` is how many of the ``total`` corrupted versions of image ``i``
(e.g. 22 corruptions x 5 severities = 110) are classified correctly, and the balanced score is
the mean over the classes present of the class mean of ``scores[i] / total``. With
``total == 1`` it is the balanced accuracy. Its interval is the same stratified percentile
bootstrap (:func:`stratified_bootstrap_scores`).
"""

from __future__ import annotations

import operator
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


def check_total(total: Any) -> int:
    """``total`` (the number of corrupted versions per image) as a positive int.

    Raises:
        ConfigError: not an integer (floats and booleans are refused), or not positive.
    """
    if isinstance(total, bool | np.bool_):
        raise ConfigError(f"total must be a positive int, got {total!r}")
    try:
        value = operator.index(total)
    except TypeError:
        raise ConfigError(f"total must be a positive int, got {total!r}") from None
    if value < 1:
        raise ConfigError(f"total must be a positive int, got {value}")
    return int(value)


def as_score_vector(values: Any, name: str, total: int) -> np.ndarray:
    """``values`` as a 1-D int64 vector of per-image counts in ``[0, total]``.

    Counts may be given as integers, booleans (0/1) or floats that are whole numbers.

    Raises:
        ConfigError: not 1-D, not numbers, not whole numbers, or outside ``[0, total]``.
    """
    total = check_total(total)
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be a 1-D vector of per-image counts, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ConfigError(f"{name} must hold integer counts, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not (np.isfinite(arr).all() and (arr == np.floor(arr)).all()):
        raise ConfigError(f"{name} must hold whole-number counts, got non-integer values")
    if arr.size and (arr.min() < 0 or arr.max() > total):
        raise ConfigError(
            f"{name} must lie in [0, {total}] (total), got values in [{arr.min()}, {arr.max()}]"
        )
    return arr.astype(np.int64)


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


def contains_chance(ci: Any, classes: int) -> bool:
    """Whether a balanced-accuracy interval ``ci`` (low, high) contains chance, 1/``classes``:
    the data cannot tell the model from one that answers one class (a collapsed model). Never
    true for fewer than two classes."""
    low, high = float(ci[0]), float(ci[1])
    return classes > 1 and low <= 1 / classes <= high


def collapsed_splits(card: dict[str, Any]) -> list[str]:
    """The splits ("val", "test") whose recorded balanced accuracy interval contains chance,
    1/classes (the boards' collapse check): the data cannot tell the model from one that
    answers one class. Empty where none does, and for a card that does not record it (cards
    before session 22, until ``bench zoo rescore``) or records it malformed."""
    out = []
    for split in ("val", "test"):
        b = ((card.get("metrics") or {}).get(split) or {}).get("balanced_acc")
        ci = b.get("ci95") if isinstance(b, dict) else None
        classes = b.get("classes") if isinstance(b, dict) else None
        if (
            isinstance(ci, list)
            and len(ci) == 2
            and all(isinstance(v, (int, float)) for v in ci)
            and isinstance(classes, int)
            and contains_chance(ci, classes)
        ):
            out.append(split)
    return out


# ----------------------------------------------------------------------------- scores


def balanced_score(scores: Any, labels: Any, total: int) -> float:
    """Balanced mean corruption accuracy: mean over classes present of mean(scores / total).

    A class with no image in ``labels`` is left out of the mean, as in
    :func:`balanced_accuracy`; with ``total == 1`` the two agree.

    Args:
        scores: (N,) per-image counts in ``[0, total]``: how many of the ``total`` corrupted
            versions of each image are classified correctly.
        labels: (N,) integer class ids.
        total: the number of corrupted versions per image (e.g. 22 corruptions x 5
            severities = 110).

    Returns:
        The balanced score in [0, 1].

    Raises:
        ConfigError: on empty input, mismatched lengths, invalid labels, counts that are not
            whole numbers in ``[0, total]``, or a ``total`` that is not a positive int.
    """
    total = check_total(total)
    scores = as_score_vector(scores, "scores", total)
    labels = check_labels(labels, scores.shape[0])
    if scores.size == 0:
        raise ConfigError("balanced score of no images is undefined")
    return float(np.mean([scores[m].mean() for m in class_masks(labels)]) / total)


def stratified_bootstrap_score_samples(
    scores: Any, labels: Any, total: int, *, n_boot: int = N_BOOT, seed: int = 0
) -> np.ndarray:
    """Balanced scores of ``n_boot`` stratified bootstrap resamples.

    Each resample draws, within every class, as many images as the class has, with
    replacement. How many of a resample's images carry each distinct score of the class is
    Multinomial(n_c, observed frequencies of those scores), so the counts are drawn directly
    (the same distribution as resampling indices, in O(n_boot K V) for V distinct scores,
    ``V <= total + 1``, instead of O(n_boot N)). Classes are drawn in increasing class order
    from one ``numpy.random.default_rng(seed)``, so the result is deterministic. With
    ``total == 1`` the law is that of :func:`stratified_bootstrap_samples`, but the draws
    (multinomial here, binomial there) are not the same random numbers, so the samples and
    the interval need not be bit-identical.

    Args:
        scores: (N,) per-image counts in ``[0, total]``.
        labels: (N,) integer class ids.
        total: the number of corrupted versions per image.
        n_boot: number of resamples.
        seed: seed of the generator.

    Returns:
        (n_boot,) resampled balanced scores.
    """
    total = check_total(total)
    scores = as_score_vector(scores, "scores", total)
    labels = check_labels(labels, scores.shape[0])
    if scores.size == 0:
        raise ConfigError("cannot bootstrap no images")
    if n_boot < 1:
        raise ConfigError(f"n_boot must be positive, got {n_boot}")
    rng = np.random.default_rng(seed)
    masks = class_masks(labels)
    out = np.zeros(n_boot)
    for m in masks:
        n_c = int(m.sum())
        values, counts = np.unique(scores[m], return_counts=True)
        draws = rng.multinomial(n_c, counts / n_c, size=n_boot)
        out += (draws @ values) / (n_c * total)
    return out / len(masks)


def stratified_bootstrap_scores(
    scores: Any,
    labels: Any,
    total: int,
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the balanced score, resampling within classes.

    Args:
        scores: (N,) per-image counts in ``[0, total]``.
        labels: (N,) integer class ids.
        total: the number of corrupted versions per image.
        n_boot: number of resamples (see :func:`stratified_bootstrap_score_samples`).
        seed: seed of the generator; the same inputs and seed give the same interval.
        level: coverage of the interval.

    Returns:
        (low, high): the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles (linear
        interpolation) of the resampled balanced scores. With ``total == 1`` this is a valid
        interval of the balanced accuracy, not bit-identical to
        :func:`stratified_bootstrap_balanced` (different random draws of the same law).
    """
    return percentile_interval(
        stratified_bootstrap_score_samples(scores, labels, total, n_boot=n_boot, seed=seed),
        level,
    )
