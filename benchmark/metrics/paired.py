"""Paired comparisons and shared ranks for entries evaluated on the same images.

Every entry of a leaderboard is evaluated on the same images (the full official test split),
so two entries are compared image by image rather than through their two confidence intervals,
which overlap long after a paired test separates them. The inputs are one boolean vector per
entry, ``robust[i]`` = image ``i`` is still classified correctly under the worst case of the
attacks (or, for the corruption protocol below, one count vector per entry), and the true
labels ``y[i]`` (class ids).

Accuracy (the share of robust images):
  * Interval: Wilson score 95 % interval of the proportion.
  * Test of A against B: two-sided McNemar test (McNemar 1947) in its exact conditional
    (binomial) form, which is slightly conservative (Fagerland et al., BMC Med. Res. Methodol.
    2013). Only discordant images carry information: ``b10`` images that A
    gets right and B wrong, ``b01`` the other way. Under the null of equal accuracy each
    discordant image is a fair coin, so ``p = min(1, 2 P[X <= min(b01, b10)])`` with
    ``X ~ Binomial(b01 + b10, 1/2)``, and ``p = 1`` without discordant images. Four
    discordant images all favouring the leader give ``p = 2 / 2**4 = 0.125``.

Balanced accuracy (the mean over the classes present in the test split of the per-class
accuracy; a class with no test image is left out of the mean, as in the clean per-class
metrics, rather than counted as 0):
  * Interval: stratified percentile bootstrap, 95 %: each class is resampled with replacement
    at its own size (class sizes fixed, as in the test split), 2000 resamples, seeded.
  * Test of A against B: stratified sign-flip (permutation) test. With ``b10_c`` and ``b01_c``
    the discordant images of class ``c`` (``D_c`` in all, ``n_c`` images in the class), the
    statistic is ``T = sum_c (b10_c - b01_c) / n_c``, ``K`` times the difference of balanced
    accuracies. Under the null that A and B are exchangeable on every image, each discordant
    image is a fair coin, so ``T`` is a sum of independent signs ``+-1 / n_c``, and
    ``p = P[|T| >= |t_observed|]``. It is computed exactly by convolving the per-class
    binomial laws on an integer lattice. When that lattice is too large (many classes of
    unrelated sizes), it is estimated from up to 200000 random sign flips,
    ``p = (count + 1) / (flips + 1)``, stopping early once 200 flips reach the observed
    statistic; or, when the Hoeffding bound ``2 exp(-t**2 / (2 sum_c D_c / n_c**2))`` is below
    what the flips can resolve, the bound is the (conservative) p-value. With one class, or
    classes of equal size, the test is exactly the McNemar test above. A bootstrap p-value is
    not used for ranking: it cannot go below about ``2 / n_boot``, which a multiple-comparison
    correction over many pairs needs, and it is anti-conservative with few discordant images
    (it resamples around the observed difference, never the null);
    ``paired_bootstrap_balanced`` gives the interval of the difference.

Balanced mean corruption accuracy (the corruption protocol). Here each entry has one integer
count per image, ``a[i]`` in ``[0, M]``: how many of the ``M`` corrupted versions of image ``i``
(e.g. 22 corruptions x 5 severities, ``M = 110``) it classifies correctly; the metric is the
mean over the classes present of the class mean of ``a[i] / M``
(:func:`~benchmark.metrics.balanced.balanced_score`):
  * Interval: the same stratified percentile bootstrap, 95 %, 2000 resamples, seeded
    (:func:`~benchmark.metrics.balanced.stratified_bootstrap_scores`).
  * Test of A against B (``sign_flip_balanced_scores``): the stratified sign-flip test on the
    per-image differences ``d_i = a[i] - b[i]`` (in ``[-M, M]``). The statistic is
    ``T = sum_c sum_{i in c} d_i / n_c``, ``K M`` times the difference of balanced scores.
    Under the null that A and B are exchangeable on every image, each ``d_i`` flips sign
    independently with probability 1/2, and ``p = P[|T| >= |t_observed|]``. Exactly: on the
    integer lattice of ``T L`` (``L`` the lcm of the class sizes), the ``D`` images of class
    ``c`` with magnitude ``m = |d_i| > 0`` contribute a Binomial(D, 1/2) kernel on step
    ``m L / n_c``, and the kernels are convolved; with a lattice of more
    than 2000000 points, Monte Carlo sign flips with weights ``|d_i| / n_c`` as above, or the
    Hoeffding bound ``2 exp(-t**2 / (2 sum_i (|d_i| / n_c)**2))`` when it is below what the
    flips can resolve. The balanced-accuracy test above is this test with ``M = 1`` (both are
    ``sign_flip_differences``), so with ``M = 1`` the two give the same p-value. ``b10`` and
    ``b01`` count the images where A scores higher and lower than B.

Multiple comparisons: every pair of entries on a board is tested, and the p-values are
adjusted together with Holm's step-down procedure (Holm 1979), which controls the family-wise
error rate at ``alpha = 0.05`` over all pairs of the board. Entry A is *significantly better*
than B when its metric is higher and the adjusted p-value is ``<= alpha``.

Shared ranks built on these tests are in :mod:`benchmark.metrics.ranks`; intervals of
balanced accuracy in :mod:`benchmark.metrics.balanced`; the packed per-image outcomes these
functions read in :mod:`benchmark.results.outcomes`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from benchmark.errors import ConfigError
from benchmark.metrics.balanced import (
    N_BOOT,
    as_score_vector,
    check_labels,
    check_total,
    class_masks,
    percentile_interval,
)
from benchmark.metrics.sign_flip import (
    N_PERM,
    check_method,
    sign_flip_differences,
)
from benchmark.results.outcomes import as_bool_vector

CORRECTIONS = ("holm", "bonferroni", "none")


def paired_vectors(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = as_bool_vector(a, "a"), as_bool_vector(b, "b")
    if a.shape != b.shape:
        raise ConfigError(f"paired outcomes differ in length: {a.shape[0]} vs {b.shape[0]}")
    return a, b


# ----------------------------------------------------------------------------- paired tests


@dataclass(frozen=True)
class PairedTest:
    """A two-sided paired test of entry ``a`` against entry ``b`` on the same images.

    Attributes:
        b01: images ``a`` gets wrong and ``b`` right.
        b10: images ``a`` gets right and ``b`` wrong.
        difference: metric of ``a`` minus metric of ``b``.
        p_value: two-sided p-value of the null "no difference".
        better: ``"a"`` or ``"b"``, the entry with the higher metric, or None on a tie.
        method: the test, in words.
    """

    b01: int
    b10: int
    difference: float
    p_value: float
    better: str | None
    method: str


def _better(difference: float) -> str | None:
    return "a" if difference > 0 else "b" if difference < 0 else None


def mcnemar_exact(a: Any, b: Any) -> PairedTest:
    """Two-sided exact McNemar test of equal accuracy on paired outcomes.

    ``p = min(1, 2 P[X <= min(b01, b10)])`` with ``X ~ Binomial(b01 + b10, 1/2)``; ``p = 1``
    without discordant images.

    Args:
        a: (N,) outcomes of entry a (True = correct).
        b: (N,) outcomes of entry b on the same images, in the same order.

    Returns:
        The discordant counts, accuracy difference, p-value and the better entry.
    """
    a, b = paired_vectors(a, b)
    b01 = int(np.sum(~a & b))
    b10 = int(np.sum(a & ~b))
    diff = (b10 - b01) / a.shape[0] if a.size else 0.0
    return PairedTest(
        b01, b10, float(diff), mcnemar_p_value(b01, b10), _better(diff), "exact McNemar"
    )


def mcnemar_p_value(b01: int, b10: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (1 without any)."""
    d = b01 + b10
    return 1.0 if d == 0 else min(1.0, 2.0 * float(stats.binom.cdf(min(b01, b10), d, 0.5)))


def sign_flip_balanced(
    a: Any,
    b: Any,
    labels: Any,
    *,
    method: str = "auto",
    n_perm: int = N_PERM,
    seed: int = 0,
) -> PairedTest:
    """Two-sided stratified sign-flip test of equal balanced accuracy on paired outcomes.

    The statistic is ``T = sum_c (b10_c - b01_c) / n_c`` (``K`` times the difference of
    balanced accuracies). Under the null each discordant image of class ``c`` adds
    ``+-1 / n_c`` with probability 1/2, independently, and ``p = P[|T| >= |t_observed|]``.
    It is :func:`sign_flip_differences` on ``d = a - b`` (values in ``{-1, 0, 1}``).

    Args:
        a: (N,) outcomes of entry a.
        b: (N,) outcomes of entry b on the same images.
        labels: (N,) integer class ids.
        method: ``"exact"`` (convolution of the per-class binomial laws on an integer
            lattice), ``"monte_carlo"`` (at most ``n_perm`` random sign flips, or the
            Hoeffding bound when it is below their resolution; see the module docstring) or
            ``"auto"`` (exact when the lattice has at most ``MAX_EXACT_LATTICE`` points).
            Large lattices are convolved by FFT, accurate to about 1e-12 in absolute terms,
            far below any significance level.
        n_perm: most random sign flips of the Monte Carlo method.
        seed: seed of the Monte Carlo method.

    Returns:
        Discordant counts over all classes, balanced-accuracy difference, p-value, better entry.
    """
    check_method(method)
    a, b = paired_vectors(a, b)
    labels = check_labels(labels, a.shape[0])
    if a.size == 0:
        raise ConfigError("cannot compare entries on no images")
    masks = class_masks(labels)
    sizes = np.array([int(m.sum()) for m in masks])
    up = np.array([int(np.sum(a[m] & ~b[m])) for m in masks])  # b10 per class
    down = np.array([int(np.sum(~a[m] & b[m])) for m in masks])  # b01 per class
    diff = float(np.mean((up - down) / sizes))
    d = a.astype(np.int64) - b.astype(np.int64)
    p, how = sign_flip_differences(d, labels, method=method, n_perm=n_perm, seed=seed)
    return PairedTest(
        int(down.sum()), int(up.sum()), diff, p, _better(diff), f"stratified sign-flip ({how})"
    )


def sign_flip_balanced_scores(
    a: Any,
    b: Any,
    labels: Any,
    total: int,
    *,
    method: str = "auto",
    n_perm: int = N_PERM,
    seed: int = 0,
) -> PairedTest:
    """Two-sided stratified sign-flip test of equal balanced score on paired count vectors.

    ``a[i]`` and ``b[i]`` are how many of the ``total`` corrupted versions of image ``i`` each
    entry classifies correctly. With ``d = a - b``, the statistic is
    ``T = sum_c sum_{i in c} d_i / n_c`` (``K * total`` times the difference of balanced
    scores); under the null that a and b are exchangeable on every image, each ``d_i`` flips
    sign independently with probability 1/2, and ``p = P[|T| >= |t_observed|]``
    (:func:`sign_flip_differences`). With ``total == 1`` it is :func:`sign_flip_balanced`
    (same p-value; the method label differs).

    Args:
        a: (N,) counts of entry a, whole numbers in ``[0, total]``.
        b: (N,) counts of entry b on the same images, in the same order.
        labels: (N,) integer class ids.
        total: the number of corrupted versions per image (e.g. 110).
        method: ``"auto"``, ``"exact"`` or ``"monte_carlo"``, as in :func:`sign_flip_balanced`.
        n_perm: most random sign flips of the Monte Carlo method.
        seed: seed of the Monte Carlo method.

    Returns:
        ``b10`` = images where ``a > b``, ``b01`` = images where ``b > a``, the difference of
        balanced scores (a - b), the p-value, the better entry (the sign of the difference,
        computed exactly in integers) and the method, e.g. ``"stratified sign-flip on
        corruption scores (exact)"``.
    """
    check_method(method)
    total = check_total(total)
    a, b = as_score_vector(a, "a", total), as_score_vector(b, "b", total)
    if a.shape != b.shape:
        raise ConfigError(f"paired scores differ in length: {a.shape[0]} vs {b.shape[0]}")
    labels = check_labels(labels, a.shape[0])
    if a.size == 0:
        raise ConfigError("cannot compare entries on no images")
    d = a - b
    masks = class_masks(labels)
    sizes = [int(m.sum()) for m in masks]
    net = [int(d[m].sum()) for m in masks]
    lcm = math.lcm(*sizes)
    exact_sign = sum(x * (lcm // n) for x, n in zip(net, sizes, strict=True))
    diff = float(np.mean(np.array(net) / np.array(sizes))) / total if exact_sign else 0.0
    p, how = sign_flip_differences(d, labels, method=method, n_perm=n_perm, seed=seed)
    return PairedTest(
        int(np.sum(d < 0)),
        int(np.sum(d > 0)),
        diff,
        p,
        _better(exact_sign),
        f"stratified sign-flip on corruption scores ({how})",
    )


@dataclass(frozen=True)
class PairedBootstrap:
    """Paired stratified bootstrap of the difference of balanced accuracies (a - b).

    Attributes:
        difference: balanced accuracy of ``a`` minus that of ``b``.
        low: lower end of the percentile interval of the difference.
        high: upper end.
        p_value: two-sided bootstrap p-value, ``min(1, 2 min(#(d* <= 0) + 1, #(d* >= 0) + 1)
            / (n_boot + 1))``; it cannot go below ``2 / (n_boot + 1)``.
        n_boot: number of resamples.
        level: coverage of the interval.
    """

    difference: float
    low: float
    high: float
    p_value: float
    n_boot: int
    level: float


def paired_bootstrap_balanced(
    a: Any,
    b: Any,
    labels: Any,
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = 0.95,
) -> PairedBootstrap:
    """Interval (and bootstrap p-value) of the difference of balanced accuracies.

    Images are resampled within each class with replacement, class sizes fixed, and the same
    resampled images score both entries (paired). Within class ``c`` a resample's counts of
    the four outcome patterns (both right, only a, only b, neither) are
    Multinomial(n_c, observed pattern frequencies), drawn directly (the same distribution as
    resampling indices). For a test to rank with, prefer :func:`sign_flip_balanced` (see the
    module docstring).

    Args:
        a: (N,) outcomes of entry a.
        b: (N,) outcomes of entry b on the same images.
        labels: (N,) integer class ids.
        n_boot: number of resamples.
        seed: seed of the generator (deterministic).
        level: coverage of the percentile interval.

    Returns:
        The difference, its percentile interval and the bootstrap p-value.
    """
    a, b = paired_vectors(a, b)
    labels = check_labels(labels, a.shape[0])
    if a.size == 0:
        raise ConfigError("cannot compare entries on no images")
    if n_boot < 1:
        raise ConfigError(f"n_boot must be positive, got {n_boot}")
    rng = np.random.default_rng(seed)
    masks = class_masks(labels)
    diffs = np.zeros(n_boot)
    point = 0.0
    for m in masks:
        n_c = int(m.sum())
        am, bm = a[m], b[m]
        freq = np.array([np.sum(am & bm), np.sum(am & ~bm), np.sum(~am & bm), np.sum(~am & ~bm)])
        counts = rng.multinomial(n_c, freq / n_c, size=n_boot)
        diffs += (counts[:, 1] - counts[:, 2]) / n_c
        point += (freq[1] - freq[2]) / n_c
    diffs /= len(masks)
    lo, hi = percentile_interval(diffs, level)
    below, above = int(np.sum(diffs <= 0)), int(np.sum(diffs >= 0))
    p = min(1.0, 2 * (min(below, above) + 1) / (n_boot + 1))
    return PairedBootstrap(float(point / len(masks)), lo, hi, p, n_boot, level)


# ----------------------------------------------------------------------------- corrections


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values (Holm 1979).

    Sorted ascending, ``p_(k)`` becomes ``max_{j <= k} min(1, (m - j + 1) p_(j))`` (1-based),
    which makes the adjusted values monotone in the raw ones; rejecting where the adjusted
    value is ``<= alpha`` is Holm's procedure at family-wise level ``alpha``.

    Args:
        p_values: the raw p-values of the family.

    Returns:
        The adjusted p-values, in the input order.
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ConfigError("p_values must be a flat sequence")
    if p.size and (np.isnan(p).any() or p.min() < 0 or p.max() > 1):
        raise ConfigError("p-values must lie in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def adjust_p_values(p_values: Sequence[float], correction: str) -> np.ndarray:
    p = np.asarray(p_values, dtype=float)
    if correction == "holm":
        return holm(p)
    if correction == "bonferroni":
        return np.minimum(1.0, p * p.size)
    if correction == "none":
        return p
    raise ConfigError(f"unknown correction {correction!r}; use one of {', '.join(CORRECTIONS)}")


__all__ = [
    "CORRECTIONS",
    "PairedBootstrap",
    "PairedTest",
    "adjust_p_values",
    "holm",
    "mcnemar_exact",
    "paired_bootstrap_balanced",
    "sign_flip_balanced",
    "sign_flip_balanced_scores",
    "sign_flip_differences",
]
