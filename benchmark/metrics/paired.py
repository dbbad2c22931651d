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

Shared ranks: with ``m`` entries on the board, an entry's rank range is
``low = 1 + #(entries significantly better than it)`` and
``high = m - #(entries significantly worse than it)``; it is shown as ``"low"`` when both are
equal and ``"low-high"`` otherwise (e.g. ``"2-4"``). Entries that no test separates therefore
share a range; the range is a summary of the pairwise tests, not a confidence set of ranks.

Per-image outcomes are stored compactly with :func:`pack_outcomes` (defined, with its inverse
:func:`unpack_outcomes`, in :mod:`benchmark.results.outcomes` so that results readers need no
metrics; re-exported here): the booleans as bits, eight per byte, least significant bit first
(image ``i`` is bit ``i % 8`` of byte ``i // 8``; padding bits are 0), then standard base64
with padding (RFC 4648, section 4).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
from scipy import signal, stats

from benchmark.errors import ConfigError
from benchmark.metrics.base import wilson_interval
from benchmark.results.outcomes import as_bool_vector, pack_outcomes, unpack_outcomes

#: Resamples of the bootstrap intervals.
N_BOOT = 2000
#: Random sign flips when the exact null distribution is too large to enumerate.
N_PERM = 200_000
#: Monte Carlo sign flips are drawn in chunks of this size ...
MC_CHUNK = 20_000
#: ... until this many reach the observed statistic (or ``n_perm`` are drawn).
MC_STOP_COUNT = 200
#: Largest lattice (number of support points) of the exact sign-flip distribution.
MAX_EXACT_LATTICE = 2_000_000

METRIC_NAMES = ("accuracy", "balanced")
CORRECTIONS = ("holm", "bonferroni", "none")


# ----------------------------------------------------------------------------- inputs


def _as_labels(labels: Any, n: int, num_classes: int | None = None) -> np.ndarray:
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


def _paired(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = as_bool_vector(a, "a"), as_bool_vector(b, "b")
    if a.shape != b.shape:
        raise ConfigError(f"paired outcomes differ in length: {a.shape[0]} vs {b.shape[0]}")
    return a, b


def _class_masks(labels: np.ndarray) -> list[np.ndarray]:
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
    labels = _as_labels(labels, correct.shape[0], num_classes)
    if correct.size == 0:
        raise ConfigError("balanced accuracy of no images is undefined")
    return float(np.mean([correct[m].mean() for m in _class_masks(labels)]))


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
    labels = _as_labels(labels, correct.shape[0])
    if correct.size == 0:
        raise ConfigError("cannot bootstrap no images")
    if n_boot < 1:
        raise ConfigError(f"n_boot must be positive, got {n_boot}")
    rng = np.random.default_rng(seed)
    masks = _class_masks(labels)
    total = np.zeros(n_boot)
    for m in masks:
        n_c = int(m.sum())
        total += rng.binomial(n_c, correct[m].mean(), size=n_boot) / n_c
    return total / len(masks)


def _percentile(samples: np.ndarray, level: float) -> tuple[float, float]:
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
    return _percentile(
        stratified_bootstrap_samples(correct, labels, n_boot=n_boot, seed=seed), level
    )


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
    a, b = _paired(a, b)
    b01 = int(np.sum(~a & b))
    b10 = int(np.sum(a & ~b))
    d = b01 + b10
    p = 1.0 if d == 0 else min(1.0, 2.0 * float(stats.binom.cdf(min(b01, b10), d, 0.5)))
    diff = (b10 - b01) / a.shape[0] if a.size else 0.0
    return PairedTest(b01, b10, float(diff), p, _better(diff), "exact McNemar")


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
    a, b = _paired(a, b)
    labels = _as_labels(labels, a.shape[0])
    if a.size == 0:
        raise ConfigError("cannot compare entries on no images")
    masks = _class_masks(labels)
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
    a, b = _paired(a, b)
    labels = _as_labels(labels, a.shape[0])
    if a.size == 0:
        raise ConfigError("cannot compare entries on no images")
    if n_boot < 1:
        raise ConfigError(f"n_boot must be positive, got {n_boot}")
    rng = np.random.default_rng(seed)
    masks = _class_masks(labels)
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
    lo, hi = _percentile(diffs, level)
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


def _correct(p_values: Sequence[float], correction: str) -> np.ndarray:
    p = np.asarray(p_values, dtype=float)
    if correction == "holm":
        return holm(p)
    if correction == "bonferroni":
        return np.minimum(1.0, p * p.size)
    if correction == "none":
        return p
    raise ConfigError(f"unknown correction {correction!r}; use one of {', '.join(CORRECTIONS)}")


# ----------------------------------------------------------------------------- ranks


@dataclass(frozen=True)
class RankRange:
    """An entry's shared rank.

    Attributes:
        low: 1 + the number of entries significantly better than this one.
        high: the number of entries minus the number significantly worse than this one.
        display: ``"low"`` when ``low == high``, else ``"low-high"``.
    """

    low: int
    high: int
    display: str


def shared_ranks(
    significantly_better: np.ndarray | Callable[[int, int], bool], m: int | None = None
) -> list[RankRange]:
    """Rank ranges from pairwise significance.

    Args:
        significantly_better: an (m, m) boolean matrix, or a function of ``(i, j)``, true when
            entry ``i`` is significantly better than entry ``j``. It must be antisymmetric
            (never true both ways); the diagonal is ignored.
        m: the number of entries; required when a function is given.

    Returns:
        One :class:`RankRange` per entry, in the input order: ``low = 1 + #{j: j better than
        i}``, ``high = m - #{j: i better than j}``. ``low <= high`` always.

    Raises:
        ConfigError: if some pair is significantly better both ways.
    """
    if callable(significantly_better):
        if m is None:
            raise ConfigError("shared_ranks needs m with a function")
        better = np.array(
            [[i != j and bool(significantly_better(i, j)) for j in range(m)] for i in range(m)],
            dtype=bool,
        ).reshape(m, m)
    else:
        better = np.array(significantly_better, dtype=bool)
        if better.ndim != 2 or better.shape[0] != better.shape[1]:
            raise ConfigError(f"significance must be a square matrix, got {better.shape}")
        m = better.shape[0]
        better = better & ~np.eye(m, dtype=bool)
    if (better & better.T).any():
        raise ConfigError("an entry cannot be significantly better and worse than another")
    out = []
    for i in range(m):
        low = 1 + int(better[:, i].sum())
        high = m - int(better[i, :].sum())
        out.append(RankRange(low, high, str(low) if low == high else f"{low}-{high}"))
    return out


@dataclass(frozen=True)
class BoardRank:
    """One entry of a ranked board.

    Attributes:
        name: the entry.
        value: its accuracy or balanced accuracy.
        ci95: its 95 % interval (Wilson or stratified bootstrap).
        ci_method: ``"wilson"`` or ``"stratified bootstrap"``.
        n: number of images.
        rank_low: see :class:`RankRange`.
        rank_high: see :class:`RankRange`.
        display: ``"1"``, ``"2-4"``, ...
        p_values: other entry -> p-value of the pair after the correction.
        p_values_raw: other entry -> p-value of the pair before the correction.
    """

    name: str
    value: float
    ci95: tuple[float, float]
    ci_method: str
    n: int
    rank_low: int
    rank_high: int
    display: str
    p_values: dict[str, float] = field(default_factory=dict)
    p_values_raw: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape (numbers as JSON numbers, entries in name order)."""
        return {
            "name": self.name,
            "value": self.value,
            "ci95": [self.ci95[0], self.ci95[1]],
            "ci_method": self.ci_method,
            "n": self.n,
            "rank_low": self.rank_low,
            "rank_high": self.rank_high,
            "rank": self.display,
            "p_values": dict(sorted(self.p_values.items())),
            "p_values_raw": dict(sorted(self.p_values_raw.items())),
        }


def rank_board(
    outcomes: Mapping[str, Any],
    labels: Any,
    *,
    metric: str = "accuracy",
    alpha: float = 0.05,
    correction: str = "holm",
    seed: int = 0,
    n_boot: int = N_BOOT,
) -> list[BoardRank]:
    """Rank entries evaluated on the same images, with shared ranks where tests cannot separate.

    Every pair is tested (exact McNemar for ``"accuracy"``, stratified sign-flip for
    ``"balanced"``), the p-values of all pairs are corrected together, and an entry is
    significantly better than another when its metric is higher and the corrected p-value is
    ``<= alpha``; ranks follow :func:`shared_ranks`.

    Args:
        outcomes: entry name -> (N,) per-image outcomes, all on the same images in the order
            of ``labels``.
        labels: (N,) integer class ids.
        metric: ``"accuracy"`` or ``"balanced"``.
        alpha: family-wise error rate over the pairs of the board.
        correction: ``"holm"``, ``"bonferroni"`` or ``"none"``.
        seed: seed of the bootstrap intervals (and of Monte Carlo sign flips, if any).
        n_boot: resamples of the bootstrap intervals.

    Returns:
        One :class:`BoardRank` per entry, best first: by rank range, then value (descending),
        then name.
    """
    if metric not in METRIC_NAMES:
        raise ConfigError(f"unknown metric {metric!r}; use 'accuracy' or 'balanced'")
    if correction not in CORRECTIONS:
        raise ConfigError(f"unknown correction {correction!r}; use one of {', '.join(CORRECTIONS)}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must lie in (0, 1), got {alpha}")
    if not outcomes:
        raise ConfigError("cannot rank an empty board")
    names = sorted(outcomes)
    vectors = [as_bool_vector(outcomes[k], f"outcomes[{k!r}]") for k in names]
    n = vectors[0].shape[0]
    if any(v.shape[0] != n for v in vectors):
        raise ConfigError("every entry must be evaluated on the same images (lengths differ)")
    y = _as_labels(labels, n)
    if n == 0:
        raise ConfigError("cannot rank entries on no images")

    values, cis = [], []
    for v in vectors:
        if metric == "accuracy":
            k = int(v.sum())
            values.append(k / n)
            cis.append(wilson_interval(k, n))
        else:
            values.append(balanced_accuracy(v, y))
            cis.append(stratified_bootstrap_balanced(v, y, n_boot=n_boot, seed=seed))
    ci_method = "wilson" if metric == "accuracy" else "stratified bootstrap"

    pairs = list(combinations(range(len(names)), 2))
    tests = [
        mcnemar_exact(vectors[i], vectors[j])
        if metric == "accuracy"
        else sign_flip_balanced(vectors[i], vectors[j], y, seed=seed)
        for i, j in pairs
    ]
    raw = [t.p_value for t in tests]
    adjusted = _correct(raw, correction) if pairs else np.zeros(0)
    m = len(names)
    better = np.zeros((m, m), dtype=bool)
    p_adj: list[dict[str, float]] = [{} for _ in names]
    p_raw: list[dict[str, float]] = [{} for _ in names]
    for (i, j), t, p, q in zip(pairs, tests, raw, adjusted, strict=True):
        p_raw[i][names[j]] = p_raw[j][names[i]] = float(p)
        p_adj[i][names[j]] = p_adj[j][names[i]] = float(q)
        if q <= alpha and t.better == "a":
            better[i, j] = True
        elif q <= alpha and t.better == "b":
            better[j, i] = True
    ranks = shared_ranks(better)
    board = [
        BoardRank(
            name=names[i],
            value=float(values[i]),
            ci95=(float(cis[i][0]), float(cis[i][1])),
            ci_method=ci_method,
            n=n,
            rank_low=ranks[i].low,
            rank_high=ranks[i].high,
            display=ranks[i].display,
            p_values=p_adj[i],
            p_values_raw=p_raw[i],
        )
        for i in range(m)
    ]
    return sorted(board, key=lambda e: (e.rank_low, e.rank_high, -e.value, e.name))


__all__ = [
    "CORRECTIONS",
    "METRIC_NAMES",
    "N_BOOT",
    "BoardRank",
    "PairedBootstrap",
    "PairedTest",
    "RankRange",
    "balanced_accuracy",
    "holm",
    "mcnemar_exact",
    "pack_outcomes",
    "paired_bootstrap_balanced",
    "rank_board",
    "shared_ranks",
    "sign_flip_balanced",
    "stratified_bootstrap_balanced",
    "stratified_bootstrap_samples",
    "unpack_outcomes",
]
