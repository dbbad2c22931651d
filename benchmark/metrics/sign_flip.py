"""The stratified sign-flip test's null distribution: exact by convolution on an integer
lattice, else Monte Carlo sign flips or the Hoeffding bound.

The core of the paired tests of :mod:`benchmark.metrics.paired` (see its docstring for the
statistic, the null and when each method is used): ``sign_flip_differences`` takes the
per-image differences ``d = a - b`` of two entries (booleans: -1, 0, 1; corruption counts: -M
to M) and the class labels, and returns the two-sided p-value of
``T = sum_c sum_{i in c} d_i / n_c`` under independent sign flips of every image's difference.
"""

from __future__ import annotations

import math
from functools import reduce
from typing import Any

import numpy as np
from scipy import signal, stats

from benchmark.errors import ConfigError
from benchmark.metrics.balanced import check_labels, class_masks

#: Random sign flips when the exact null distribution is too large to enumerate.
N_PERM = 200_000
#: Monte Carlo sign flips are drawn in chunks of this size ...
MC_CHUNK = 20_000
#: ... until this many reach the observed statistic (or ``n_perm`` are drawn).
MC_STOP_COUNT = 200
#: Largest lattice (number of support points) of the exact sign-flip distribution.
MAX_EXACT_LATTICE = 2_000_000


def check_method(method: str) -> None:
    if method not in ("auto", "exact", "monte_carlo"):
        raise ConfigError(f"unknown method {method!r}; use 'auto', 'exact' or 'monte_carlo'")


def sign_flip_differences(
    d: Any,
    labels: Any,
    *,
    method: str = "auto",
    n_perm: int = N_PERM,
    seed: int = 0,
) -> tuple[float, str]:
    """Two-sided stratified sign-flip p-value on per-image integer differences.

    The core of :func:`sign_flip_balanced` and :func:`sign_flip_balanced_scores`. With
    ``n_c`` the size of image ``i``'s class ``c``, the statistic is
    ``T = sum_c sum_{i in c} d_i / n_c``; under the null each ``d_i`` flips sign
    independently with probability 1/2 (images with ``d_i = 0`` do not move ``T``), and
    ``p = P[|T| >= |t_observed|]``.

    Exact method: within class ``c`` the ``D`` images of magnitude ``m = |d_i| > 0`` add
    ``m (2 X - D) / n_c`` with ``X ~ Binomial(D, 1/2)``. On the integer lattice
    ``T * L / g`` (``L`` the lcm of the sizes of the classes with a nonzero difference, ``g``
    the gcd of the ``s_c = L / n_c``, further divided by the gcd of all steps ``m s_c``) each
    such group is a binomial kernel on step ``m s_c``; the kernels are convolved (per class,
    then across classes; by FFT once large) when the lattice has at most
    ``MAX_EXACT_LATTICE`` points. Otherwise Monte Carlo sign flips with weights
    ``|d_i| / n_c`` (drawn per group as binomial counts, the same law), or the Hoeffding bound
    ``2 exp(-t**2 / (2 sum_i (|d_i| / n_c)**2))`` when it is below the flips' resolution
    (:func:`_sign_flip_monte_carlo`). Without a nonzero difference ``p = 1`` ("exact").

    Args:
        d: (N,) integer differences (ints, or floats that are whole numbers), e.g. ``a - b``
            with counts ``a``, ``b`` in ``[0, M]``, so ``d`` in ``[-M, M]``.
        labels: (N,) integer class ids.
        method: ``"auto"``, ``"exact"`` or ``"monte_carlo"``, as in :func:`sign_flip_balanced`.
        n_perm: most random sign flips of the Monte Carlo method.
        seed: seed of the Monte Carlo method.

    Returns:
        ``(p, how)``: the p-value (at most 1) and how it was computed: ``"exact"``,
        ``"Monte Carlo, <flips> flips"`` or ``"Hoeffding bound"``.
    """
    check_method(method)
    d = np.asarray(d)
    if d.ndim != 1:
        raise ConfigError(f"differences must be a 1-D vector, got shape {d.shape}")
    if d.dtype.kind not in "biuf" or (
        d.dtype.kind == "f" and not (np.isfinite(d).all() and (d == np.floor(d)).all())
    ):
        raise ConfigError("differences must be whole numbers")
    d = d.astype(np.int64)
    labels = check_labels(labels, d.shape[0])
    if d.size == 0:
        raise ConfigError("cannot compare entries on no images")

    # Groups (class, magnitude), classes in increasing order, magnitudes ascending.
    class_sizes: list[int] = []  # n_c of the classes with a nonzero difference
    class_groups: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (mags, D, net)
    for m in class_masks(labels):
        dc = d[m]
        nz = dc[dc != 0]
        if nz.size == 0:
            continue
        mags, disc = np.unique(np.abs(nz), return_counts=True)
        pos = np.array([int(np.sum(nz == v)) for v in mags])
        class_sizes.append(int(m.sum()))
        class_groups.append((mags, disc, 2 * pos - disc))
    if not class_sizes:
        return 1.0, "exact"

    # Integer lattice: T * L / g = sum_groups m s_c (2 X - D) with s_c = L / (g n_c).
    lcm = math.lcm(*class_sizes)
    steps = [lcm // n for n in class_sizes]
    g = math.gcd(*steps)
    steps = [s // g for s in steps]
    # Within class c, magnitudes are multiples of h_c; the class moves on step h_c s_c.
    hs = [math.gcd(*(int(v) for v in mags)) for mags, _, _ in class_groups]
    g2 = math.gcd(*(h * s for h, s in zip(hs, steps, strict=True)))
    stretch = [h * s // g2 for h, s in zip(hs, steps, strict=True)]
    spans = [
        sum(int(v) // h * int(k) for v, k in zip(mags, disc, strict=True))
        for (mags, disc, _), h in zip(class_groups, hs, strict=True)
    ]
    span = sum(w * s for w, s in zip(spans, stretch, strict=True))  # S: T = 2 W - S
    exact = method == "exact" or (method == "auto" and span + 1 <= MAX_EXACT_LATTICE)
    if not exact:
        mags = np.concatenate([gr[0] for gr in class_groups])
        disc = np.concatenate([gr[1] for gr in class_groups])
        net = np.concatenate([gr[2] for gr in class_groups])
        sizes = np.repeat(class_sizes, [gr[0].size for gr in class_groups])
        p, how = _sign_flip_monte_carlo(net, disc, mags / sizes, n_perm=n_perm, seed=seed)
        return min(1.0, p), how

    # W = sum_groups (m / h_c) X stretch_c, X ~ Bin(D, 1/2).
    pmf = np.ones(1)
    for (mags, disc, _), h, s in zip(class_groups, hs, stretch, strict=True):
        kernels = [_binomial_kernel(int(k), int(v) // h) for v, k in zip(mags, disc, strict=True)]
        class_pmf = np.clip(reduce(_convolve, kernels), 0.0, None)
        pmf = _convolve(pmf, _stretch(class_pmf, s))
    pmf = np.clip(pmf, 0.0, None)
    t_obs = abs(
        sum(
            s * sum(int(v) // h * int(x) for v, x in zip(mags, net, strict=True))
            for (mags, _, net), h, s in zip(class_groups, hs, stretch, strict=True)
        )
    )
    t = np.abs(2 * np.arange(pmf.size) - span)
    return min(1.0, float(pmf[t >= t_obs].sum() / pmf.sum())), "exact"


def _binomial_kernel(count: int, step: int) -> np.ndarray:
    """The law of ``step * X``, ``X ~ Binomial(count, 1/2)``, on the lattice ``0, 1, ...``."""
    return _stretch(stats.binom.pmf(np.arange(count + 1), count, 0.5), step)


def _stretch(pmf: np.ndarray, step: int) -> np.ndarray:
    """A law on ``0, 1, ..., k`` moved to ``0, step, ..., k * step`` (zeros in between)."""
    out = np.zeros((pmf.size - 1) * step + 1)
    out[::step] = pmf
    return out


def _convolve(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``np.convolve``, or FFT convolution once ``x.size * y.size > 1e6``."""
    return signal.fftconvolve(x, y) if x.size * y.size > 1e6 else np.convolve(x, y)


def _sign_flip_monte_carlo(
    net: np.ndarray, disc: np.ndarray, weights: np.ndarray, *, n_perm: int, seed: int
) -> tuple[float, str]:
    """p-value of the stratified sign-flip test without the exact lattice.

    The images are in groups of equal weight (for the balanced tests: equal class and equal
    ``|d_i|``, weight ``|d_i| / n_c``); group ``j`` holds ``disc[j]`` images and its observed
    net sign count is ``net[j]`` (positive minus negative), so
    ``t_observed = sum_j net[j] weights[j]``. Under the null a group adds
    ``(2 X - disc[j]) weights[j]`` with ``X ~ Binomial(disc[j], 1/2)``.

    First the Hoeffding bound ``P[|T| >= t] <= 2 exp(-t**2 / (2 sum_j disc[j] weights[j]**2))``
    (T is a sum of independent signs times the weights): when it is below what ``n_perm``
    flips can resolve, the bound itself is the (conservative) p-value. Otherwise sign flips
    are drawn in chunks of ``MC_CHUNK`` until ``MC_STOP_COUNT`` flips reach ``|t_observed|``
    (a large p-value is then known well enough: Besag & Clifford 1991) or ``n_perm`` flips
    are drawn; ``p = (count + 1) / (flips + 1)``.

    Returns:
        ``(p, how)``: ``how`` is ``"Hoeffding bound"`` or ``"Monte Carlo, <flips> flips"``.
    """
    if n_perm < 1:
        raise ConfigError(f"n_perm must be positive, got {n_perm}")
    t_obs = abs(float(np.sum(net * weights)))
    bound = 2.0 * math.exp(-(t_obs**2) / (2.0 * float(np.sum(disc * weights**2))))
    if bound < 1.0 / (n_perm + 1):
        return bound, "Hoeffding bound"
    rng = np.random.default_rng(seed)
    count = drawn = 0
    while drawn < n_perm and count < MC_STOP_COUNT:
        size = min(MC_CHUNK, n_perm - drawn)
        x = rng.binomial(disc, 0.5, size=(size, disc.size))
        t = np.abs((2 * x - disc) @ weights)
        count += int(np.sum(t >= t_obs * (1 - 1e-12) - 1e-15))  # ties count as extreme
        drawn += size
    return (count + 1) / (drawn + 1), f"Monte Carlo, {drawn} flips"


__all__ = [
    "MAX_EXACT_LATTICE",
    "MC_CHUNK",
    "MC_STOP_COUNT",
    "N_PERM",
    "check_method",
    "sign_flip_differences",
]
