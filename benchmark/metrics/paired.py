"""Paired comparisons and shared ranks for entries evaluated on the same images.

Every entry of a leaderboard is evaluated on the same images (the full official test split),
so two entries are compared image by image rather than through their two confidence intervals,
which overlap long after a paired test separates them. The inputs are one boolean vector per
entry, ``robust[i]`` = image ``i`` is still classified correctly under the worst case of the
attacks, and the true labels ``y[i]`` (class ids).

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
from scipy import signal, stats

from benchmark.errors import ConfigError
from benchmark.metrics.balanced import (
    N_BOOT,
    check_labels,
    class_masks,
    percentile_interval,
)
from benchmark.results.outcomes import as_bool_vector

#: Random sign flips when the exact null distribution is too large to enumerate.
N_PERM = 200_000
#: Monte Carlo sign flips are drawn in chunks of this size ...
MC_CHUNK = 20_000
#: ... until this many reach the observed statistic (or ``n_perm`` are drawn).
MC_STOP_COUNT = 200
#: Largest lattice (number of support points) of the exact sign-flip distribution.
MAX_EXACT_LATTICE = 2_000_000

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
    if method not in ("auto", "exact", "monte_carlo"):
        raise ConfigError(f"unknown method {method!r}; use 'auto', 'exact' or 'monte_carlo'")
    a, b = paired_vectors(a, b)
    labels = check_labels(labels, a.shape[0])
    if a.size == 0:
        raise ConfigError("cannot compare entries on no images")
    masks = class_masks(labels)
    sizes = np.array([int(m.sum()) for m in masks])
    up = np.array([int(np.sum(a[m] & ~b[m])) for m in masks])  # b10 per class
    down = np.array([int(np.sum(~a[m] & b[m])) for m in masks])  # b01 per class
    diff = float(np.mean((up - down) / sizes))
    b01, b10 = int(down.sum()), int(up.sum())
    keep = (up + down) > 0
    if not keep.any():
        return PairedTest(b01, b10, diff, 1.0, _better(diff), "stratified sign-flip (exact)")
    sizes, up, disc = sizes[keep], up[keep], (up + down)[keep]

    # Integer lattice: T * L / g = sum_c (2 X_c - D_c) s_c with s_c = L / (g n_c).
    lcm = math.lcm(*(int(n) for n in sizes))
    steps = [lcm // int(n) for n in sizes]
    g = math.gcd(*steps)
    steps = [s // g for s in steps]
    lattice = sum(int(d) * s for d, s in zip(disc, steps, strict=True)) + 1
    exact = method == "exact" or (method == "auto" and lattice <= MAX_EXACT_LATTICE)
    if exact:
        # W = sum_c X_c s_c, X_c ~ Bin(D_c, 1/2); T (on the lattice) = 2 W - S.
        pmf = np.ones(1)
        for d, s in zip(disc, steps, strict=True):
            kernel = np.zeros(int(d) * s + 1)
            kernel[::s] = stats.binom.pmf(np.arange(int(d) + 1), int(d), 0.5)
            big = pmf.size * kernel.size > 1e6
            pmf = signal.fftconvolve(pmf, kernel) if big else np.convolve(pmf, kernel)
        pmf = np.clip(pmf, 0.0, None)
        total = sum(int(d) * s for d, s in zip(disc, steps, strict=True))
        t_obs = abs(2 * sum(int(u) * s for u, s in zip(up, steps, strict=True)) - total)
        t = np.abs(2 * np.arange(pmf.size) - total)
        p = float(pmf[t >= t_obs].sum() / pmf.sum())
        label = "stratified sign-flip (exact)"
    else:
        p, label = _sign_flip_monte_carlo(up, disc, sizes, n_perm=n_perm, seed=seed)
    return PairedTest(b01, b10, diff, min(1.0, p), _better(diff), label)


def _sign_flip_monte_carlo(
    up: np.ndarray, disc: np.ndarray, sizes: np.ndarray, *, n_perm: int, seed: int
) -> tuple[float, str]:
    """p-value of the stratified sign-flip test without the exact lattice.

    First the Hoeffding bound ``P[|T| >= t] <= 2 exp(-t**2 / (2 sum_c D_c / n_c**2))`` (T is
    a sum of independent signs times ``1 / n_c``): when it is below what ``n_perm`` flips can
    resolve, the bound itself is the (conservative) p-value. Otherwise sign flips are drawn
    in chunks of ``MC_CHUNK`` until ``MC_STOP_COUNT`` flips reach ``|t_observed|`` (a large
    p-value is then known well enough: Besag & Clifford 1991) or ``n_perm`` flips are drawn;
    ``p = (count + 1) / (flips + 1)``.
    """
    if n_perm < 1:
        raise ConfigError(f"n_perm must be positive, got {n_perm}")
    weights = 1.0 / sizes
    t_obs = abs(float(np.sum((2 * up - disc) * weights)))
    bound = 2.0 * math.exp(-(t_obs**2) / (2.0 * float(np.sum(disc * weights**2))))
    if bound < 1.0 / (n_perm + 1):
        return bound, "stratified sign-flip (Hoeffding bound)"
    rng = np.random.default_rng(seed)
    count = drawn = 0
    while drawn < n_perm and count < MC_STOP_COUNT:
        size = min(MC_CHUNK, n_perm - drawn)
        x = rng.binomial(disc, 0.5, size=(size, disc.size))
        t = np.abs((2 * x - disc) @ weights)
        count += int(np.sum(t >= t_obs * (1 - 1e-12) - 1e-15))  # ties count as extreme
        drawn += size
    return (count + 1) / (drawn + 1), f"stratified sign-flip (Monte Carlo, {drawn} flips)"


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
]
