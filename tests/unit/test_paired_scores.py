"""The corruption protocol's statistics on per-image counts: balanced score, its stratified
bootstrap interval, the stratified sign-flip test on integer differences (against brute-force
enumeration, Monte Carlo and the binary test) and shared ranks with ``metric="balanced_score"``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import signal, stats

from benchmark.errors import ConfigError
from benchmark.metrics.balanced import (
    balanced_accuracy,
    balanced_score,
    stratified_bootstrap_balanced,
    stratified_bootstrap_score_samples,
    stratified_bootstrap_scores,
)
from benchmark.metrics.paired import (
    sign_flip_balanced,
    sign_flip_balanced_scores,
    sign_flip_differences,
)
from benchmark.metrics.ranks import METRIC_NAMES, rank_board
from benchmark.metrics.sign_flip import MAX_EXACT_LATTICE, MC_CHUNK, MC_STOP_COUNT

M = 110  # 22 corruptions x 5 severities


def _brute_force_p(d: np.ndarray, labels: np.ndarray) -> float:
    """P[|T| >= |t_obs|] over all 2**N equally likely sign patterns, in exact integers."""
    classes, sizes = np.unique(labels, return_counts=True)
    lcm = math.lcm(*(int(n) for n in sizes))
    weight = {int(c): lcm // int(n) for c, n in zip(classes, sizes, strict=True)}
    w = np.array([abs(int(x)) * weight[int(c)] for x, c in zip(d, labels, strict=True)])
    t_obs = abs(int(np.sum(np.sign(d) * w)))
    hits = sum(
        abs(int(np.dot(signs, w))) >= t_obs for signs in itertools.product((-1, 1), repeat=d.size)
    )
    return hits / 2**d.size


def _scores_pair(rng: np.random.Generator, n: int, shift: int, noise: int = 10):
    """Two count vectors in [0, M] on the same images; ``a`` higher by ``shift`` on average."""
    base = rng.integers(20, 90, n)
    a = np.clip(base + shift + rng.integers(-noise, noise + 1, n), 0, M)
    b = np.clip(base + rng.integers(-noise, noise + 1, n), 0, M)
    return a, b


# ----------------------------------------------------------------------------- balanced score


def test_balanced_score_by_hand():
    # Class 0: (110 + 55) / 2 / 110 = 0.75; class 1: (0 + 22) / 2 / 110 = 0.1; class 2 absent.
    scores = np.array([110, 55, 0, 22])
    labels = np.array([0, 0, 3, 3])
    assert balanced_score(scores, labels, M) == pytest.approx(0.425)
    assert balanced_score(scores.astype(float), labels, M) == pytest.approx(0.425)
    correct = np.array([1, 1, 0, 0, 0, 1], bool)
    labels6 = np.array([0, 0, 0, 0, 2, 2])
    assert balanced_score(correct.astype(int), labels6, 1) == pytest.approx(
        balanced_accuracy(correct, labels6)
    )


@pytest.mark.parametrize(
    ("scores", "total", "match"),
    [
        ([0, 111], M, r"lie in \[0, 110\]"),
        ([-1, 5], M, r"lie in \[0, 110\]"),
        ([1.5, 2.0], M, "whole-number"),
        ([np.nan, 2.0], M, "whole-number"),
        (["a", "b"], M, "integer counts"),
        ([[1, 2]], M, "1-D"),
        ([1, 2], 0, "positive int"),
        ([1, 2], 110.0, "positive int"),
        ([1, 2], True, "positive int"),
        ([1, 2], None, "positive int"),
    ],
)
def test_balanced_score_rejects_bad_counts(scores, total, match):
    labels = np.zeros(np.asarray(scores).shape[-1], int)
    with pytest.raises(ConfigError, match=match):
        balanced_score(scores, labels, total)


def test_balanced_score_rejects_bad_labels_and_no_images():
    with pytest.raises(ConfigError, match="labels"):
        balanced_score([1, 2, 3], [0, 1], M)
    with pytest.raises(ConfigError, match="no images"):
        balanced_score([], [], M)


# ----------------------------------------------------------------------------- bootstrap


def test_score_bootstrap_is_deterministic_and_contains_the_estimate():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 400)
    scores = rng.binomial(M, np.array([0.9, 0.6, 0.3])[labels])
    first = stratified_bootstrap_scores(scores, labels, M, n_boot=500, seed=3)
    assert first == stratified_bootstrap_scores(scores, labels, M, n_boot=500, seed=3)
    assert first != stratified_bootstrap_scores(scores, labels, M, n_boot=500, seed=4)
    lo, hi = first
    assert lo < balanced_score(scores, labels, M) < hi


def test_score_bootstrap_narrows_with_more_images():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 200)
    scores = rng.integers(0, M + 1, 200)
    lo1, hi1 = stratified_bootstrap_scores(scores, labels, M, n_boot=1000)
    lo4, hi4 = stratified_bootstrap_scores(np.tile(scores, 4), np.tile(labels, 4), M, n_boot=1000)
    assert (hi4 - lo4) == pytest.approx((hi1 - lo1) / 2, rel=0.2)
    assert lo4 > lo1 and hi4 < hi1


def test_score_bootstrap_keeps_class_sizes_and_matches_resampling_indices():
    # Class 0: 2 images of scores 0 and 110; class 1: 500 images of 55. With class sizes fixed
    # a resample's balanced score is (j / 2 + 1 / 2) / 2 for j = 0, 1, 2 with probabilities
    # 1/4, 1/2, 1/4.
    scores = np.array([0, M] + [55] * 500)
    labels = np.array([0, 0] + [1] * 500)
    samples = stratified_bootstrap_score_samples(scores, labels, M, n_boot=4000, seed=1)
    allowed = np.array([0.25, 0.5, 0.75])
    assert np.abs(samples[:, None] - allowed[None, :]).min(axis=1).max() < 1e-12
    freq = np.array([np.mean(np.isclose(samples, v)) for v in allowed])
    assert freq == pytest.approx([0.25, 0.5, 0.25], abs=0.03)

    # The multinomial shortcut has the law of resampling image indices within each class.
    rng = np.random.default_rng(5)
    labels = np.repeat([0, 1, 2], [20, 50, 30])
    scores = rng.integers(0, M + 1, 100)
    fast = stratified_bootstrap_score_samples(scores, labels, M, n_boot=4000, seed=0)
    means = []
    for c in range(3):
        members = scores[labels == c] / M
        draws = rng.integers(0, members.size, size=(4000, members.size))
        means.append(members[draws].mean(axis=1))
    slow = np.mean(means, axis=0)
    assert fast.mean() == pytest.approx(np.mean(slow), abs=0.004)
    assert fast.std() == pytest.approx(np.std(slow), rel=0.08)


def test_score_bootstrap_with_total_one_is_a_valid_balanced_accuracy_interval():
    rng = np.random.default_rng(9)
    labels = np.repeat([0, 1, 2], [50, 120, 30])
    correct = rng.random(200) < np.array([0.8, 0.6, 0.4])[labels]
    lo, hi = stratified_bootstrap_scores(correct.astype(int), labels, 1, n_boot=2000)
    ref_lo, ref_hi = stratified_bootstrap_balanced(correct, labels, n_boot=2000)
    assert lo < balanced_accuracy(correct, labels) < hi
    assert (lo, hi) == pytest.approx((ref_lo, ref_hi), abs=0.015)  # same law, other draws


def test_score_bootstrap_rejects_bad_input():
    with pytest.raises(ConfigError, match="n_boot"):
        stratified_bootstrap_scores([1, 2], [0, 0], M, n_boot=0)
    with pytest.raises(ConfigError, match="level"):
        stratified_bootstrap_scores([1, 2], [0, 0], M, level=1.0)
    with pytest.raises(ConfigError, match="no images"):
        stratified_bootstrap_scores([], [], M)
    with pytest.raises(ConfigError, match=r"lie in \[0, 110\]"):
        stratified_bootstrap_scores([1, 200], [0, 0], M)


# ----------------------------------------------------------------------------- sign flip


@pytest.mark.parametrize("seed", range(12))
def test_exact_p_value_matches_enumerating_all_sign_flips(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(6, 13))
    k = int(rng.integers(2, 4))
    labels = np.sort(np.r_[np.arange(k), rng.integers(0, k, n - k)])  # every class present
    # With seed % 3 == 0 the magnitudes share a factor 2, by which the lattice is divided.
    d = 2 * rng.integers(-6, 7, n) if seed % 3 == 0 else rng.integers(-9, 10, n)
    d[0] = 0  # an image where both entries score the same: no sign to flip
    p, how = sign_flip_differences(d, labels, method="exact")
    assert how == "exact"
    assert p == pytest.approx(_brute_force_p(d, labels), rel=1e-12, abs=1e-15)
    # The same through the count vectors of two entries.
    b = rng.integers(20, 30, n)
    test = sign_flip_balanced_scores(b + d, b, labels, 60, method="exact")
    assert test.p_value == p
    assert (test.b10, test.b01) == (int(np.sum(d > 0)), int(np.sum(d < 0)))
    assert "corruption scores (exact)" in test.method


def test_brute_force_hand_case():
    # Class 0 (2 images): d = 3, 0 -> weight 3/2; class 1 (4 images): d = 2, -2, 1, 0 ->
    # weights 1/2, 1/2, 1/4. T = 3/2 + 1/2 - 1/2 + 1/4 = 7/4 (the 0s never move). With the
    # 3/2 positive, T >= 7/4 needs the rest >= 1/4: both halves up (either sign of the
    # quarter, 2 patterns) or the halves opposed and the quarter up (2 patterns); with it
    # negative, T <= 5/4 - 3/2 < 7/4. By symmetry 8 of the 16 patterns have |T| >= 7/4.
    d = np.array([3, 0, 2, -2, 1, 0])
    labels = np.array([0, 0, 1, 1, 1, 1])
    assert _brute_force_p(d, labels) == 8 / 16
    assert sign_flip_differences(d, labels)[0] == pytest.approx(8 / 16, rel=1e-12)


def test_exact_and_monte_carlo_agree_within_monte_carlo_error():
    rng = np.random.default_rng(4)
    labels = np.repeat([0, 1, 2], [30, 70, 13])
    a, b = _scores_pair(rng, 113, shift=2, noise=12)
    exact = sign_flip_balanced_scores(a, b, labels, M, method="exact")
    mc = sign_flip_balanced_scores(a, b, labels, M, method="monte_carlo", n_perm=100_000, seed=1)
    assert "(exact)" in exact.method and "Monte Carlo" in mc.method
    assert 0.005 < exact.p_value < 0.5  # a p-value the flips can resolve
    flips = int(mc.method.split("Monte Carlo, ")[1].split()[0])
    se = math.sqrt(exact.p_value * (1 - exact.p_value) / flips)
    assert abs(mc.p_value - exact.p_value) < 4 * se + 1 / flips
    again = sign_flip_balanced_scores(a, b, labels, M, method="monte_carlo", n_perm=100_000, seed=1)
    assert again == mc  # seeded
    assert sign_flip_balanced_scores(b, a, labels, M).p_value == pytest.approx(
        exact.p_value, rel=1e-9
    )


def test_auto_falls_back_to_monte_carlo_on_a_large_lattice():
    # Seven classes of unrelated sizes: the lcm makes the lattice far too large to convolve.
    sizes = [327, 514, 1099, 115, 142, 28, 35]
    labels = np.repeat(np.arange(7), sizes)
    a, b = _scores_pair(np.random.default_rng(3), labels.size, shift=0)
    test = sign_flip_balanced_scores(a, b, labels, M)
    assert "Monte Carlo" in test.method
    assert 0 < test.p_value <= 1
    count_floor = (MC_STOP_COUNT + 1) / (MC_CHUNK + 1)  # stops after a chunk when p is large
    assert test.p_value > count_floor or "200000 flips" in test.method
    assert math.lcm(*sizes) > MAX_EXACT_LATTICE


def test_monte_carlo_uses_the_hoeffding_bound_beyond_its_resolution():
    rng = np.random.default_rng(8)
    labels = np.repeat([0, 1, 2], [30, 70, 13])
    a, b = _scores_pair(rng, 113, shift=6, noise=4)
    exact = sign_flip_balanced_scores(a, b, labels, M, method="exact")
    bound = sign_flip_balanced_scores(a, b, labels, M, method="monte_carlo", n_perm=1000)
    assert "Hoeffding bound" in bound.method
    assert exact.p_value <= bound.p_value < 1 / 1001  # a valid, conservative p-value
    # The bound by hand: 2 exp(-t**2 / (2 sum_i (|d_i| / n_c)**2)).
    n_c = np.array([30, 70, 13])[labels]
    d = a - b
    t = abs(np.sum(d / n_c))
    assert bound.p_value == pytest.approx(2 * math.exp(-(t**2) / (2 * np.sum((d / n_c) ** 2))))


@pytest.mark.parametrize("method", ["auto", "exact", "monte_carlo"])
def test_total_one_scores_give_the_binary_test(method):
    rng = np.random.default_rng(21)
    for k in range(6):
        sizes = [[40, 40, 40], [30, 70, 13], [5, 90], [113]][k % 4]
        labels = np.repeat(np.arange(len(sizes)), sizes)
        a = rng.random(labels.size) < 0.75
        b = rng.random(labels.size) < 0.55 + 0.05 * k
        binary = sign_flip_balanced(a, b, labels, method=method, n_perm=20_000)
        scores = sign_flip_balanced_scores(
            a.astype(int), b.astype(int), labels, 1, method=method, n_perm=20_000
        )
        assert scores.p_value == binary.p_value
        assert (scores.b01, scores.b10, scores.better) == (binary.b01, binary.b10, binary.better)
        assert scores.difference == pytest.approx(binary.difference, abs=1e-15)
        assert scores.method.replace(" on corruption scores", "") == binary.method


def test_identical_entries_give_p_one():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 90)
    a = rng.integers(0, M + 1, 90)
    for method in ("auto", "exact", "monte_carlo"):
        test = sign_flip_balanced_scores(a, a.copy(), labels, M, method=method)
        assert test.p_value == 1.0 and test.better is None
        assert test.difference == 0.0 and test.b01 == test.b10 == 0
    # Differences that cancel within each class exactly: T = 0, p = 1, no better entry.
    b = a.copy()
    b[labels == 0] = np.clip(b[labels == 0], 3, M - 3)
    first = np.flatnonzero(labels == 0)[:2]
    c = b.copy()
    c[first] += np.array([3, -3])
    tie = sign_flip_balanced_scores(c, b, labels, M)
    assert tie.p_value == 1.0 and tie.better is None and tie.difference == 0.0
    assert (tie.b01, tie.b10) == (1, 1)


def test_a_clearly_better_entry_is_separated():
    rng = np.random.default_rng(6)
    labels = np.repeat([0, 1], [60, 90])
    b = rng.integers(10, 100, 150)
    a = b + rng.integers(2, 8, 150)  # a higher by several counts on every image
    test = sign_flip_balanced_scores(a, b, labels, M)
    assert test.p_value < 1e-6 and test.better == "a"
    assert (test.b10, test.b01) == (150, 0)
    assert test.difference == pytest.approx(
        balanced_score(a, labels, M) - balanced_score(b, labels, M), abs=1e-15
    )
    swapped = sign_flip_balanced_scores(b, a, labels, M)
    assert swapped.better == "b" and swapped.p_value == pytest.approx(test.p_value, rel=1e-6)


def test_sign_flip_scores_rejects_bad_input():
    labels = np.zeros(3, int)
    with pytest.raises(ConfigError, match="differ in length"):
        sign_flip_balanced_scores([1, 2, 3], [1, 2], labels, M)
    with pytest.raises(ConfigError, match=r"lie in \[0, 110\]"):
        sign_flip_balanced_scores([1, 2, 111], [1, 2, 3], labels, M)
    with pytest.raises(ConfigError, match=r"lie in \[0, 110\]"):
        sign_flip_balanced_scores([1, 2, 3], [1, -2, 3], labels, M)
    with pytest.raises(ConfigError, match="whole-number"):
        sign_flip_balanced_scores([1, 2, 3.5], [1, 2, 3], labels, M)
    with pytest.raises(ConfigError, match="positive int"):
        sign_flip_balanced_scores([1, 2, 3], [1, 2, 3], labels, 0)
    with pytest.raises(ConfigError, match="labels"):
        sign_flip_balanced_scores([1, 2, 3], [1, 2, 3], [0, 1], M)
    with pytest.raises(ConfigError, match="method"):
        sign_flip_balanced_scores([1, 2, 3], [1, 2, 3], labels, M, method="bootstrap")
    with pytest.raises(ConfigError, match="no images"):
        sign_flip_balanced_scores([], [], [], M)
    with pytest.raises(ConfigError, match="whole numbers"):
        sign_flip_differences([0.5, 1.0], [0, 0])
    with pytest.raises(ConfigError, match="n_perm"):
        sign_flip_differences([3, 1], [0, 0], method="monte_carlo", n_perm=0)


# ----------------------------------------------------------------------------- binary regression


def _reference_sign_flip_balanced(a, b, labels, method="auto", n_perm=200_000, seed=0):
    """``(b01, b10, difference, p, method)`` of ``sign_flip_balanced`` before it was built on
    ``sign_flip_differences`` (a frozen copy of that implementation's arithmetic)."""
    a, b, labels = np.asarray(a, bool), np.asarray(b, bool), np.asarray(labels)
    masks = [labels == c for c in np.unique(labels)]
    sizes = np.array([int(m.sum()) for m in masks])
    up = np.array([int(np.sum(a[m] & ~b[m])) for m in masks])
    down = np.array([int(np.sum(~a[m] & b[m])) for m in masks])
    diff = float(np.mean((up - down) / sizes))
    b01, b10 = int(down.sum()), int(up.sum())
    keep = (up + down) > 0
    if not keep.any():
        return b01, b10, diff, 1.0, "stratified sign-flip (exact)"
    sizes, up, disc = sizes[keep], up[keep], (up + down)[keep]
    lcm = math.lcm(*(int(n) for n in sizes))
    steps = [lcm // int(n) for n in sizes]
    g = math.gcd(*steps)
    steps = [s // g for s in steps]
    lattice = sum(int(d) * s for d, s in zip(disc, steps, strict=True)) + 1
    if method == "exact" or (method == "auto" and lattice <= MAX_EXACT_LATTICE):
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
        return b01, b10, diff, min(1.0, p), "stratified sign-flip (exact)"
    weights = 1.0 / sizes
    t_obs = abs(float(np.sum((2 * up - disc) * weights)))
    bound = 2.0 * math.exp(-(t_obs**2) / (2.0 * float(np.sum(disc * weights**2))))
    if bound < 1.0 / (n_perm + 1):
        return b01, b10, diff, min(1.0, bound), "stratified sign-flip (Hoeffding bound)"
    rng = np.random.default_rng(seed)
    count = drawn = 0
    while drawn < n_perm and count < MC_STOP_COUNT:
        size = min(MC_CHUNK, n_perm - drawn)
        x = rng.binomial(disc, 0.5, size=(size, disc.size))
        t = np.abs((2 * x - disc) @ weights)
        count += int(np.sum(t >= t_obs * (1 - 1e-12) - 1e-15))
        drawn += size
    p = min(1.0, (count + 1) / (drawn + 1))
    return b01, b10, diff, p, f"stratified sign-flip (Monte Carlo, {drawn} flips)"


def test_binary_sign_flip_is_unchanged_by_the_refactor():
    rng = np.random.default_rng(12345)
    seen = set()
    for k in range(60):
        n = int(rng.integers(1, 300))
        labels = rng.integers(0, int(rng.integers(1, 4)), n)
        a = rng.random(n) < rng.random()
        b = rng.random(n) < rng.random()
        if k % 7 == 0:
            b = a.copy()
            b[: int(rng.integers(0, 4))] ^= True
        method = ("auto", "exact", "monte_carlo", "monte_carlo")[k % 4]
        n_perm = (200_000, 200_000, 30_000, 5)[k % 4]
        seed = int(rng.integers(0, 5))
        got = sign_flip_balanced(a, b, labels, method=method, n_perm=n_perm, seed=seed)
        want = _reference_sign_flip_balanced(a, b, labels, method, n_perm, seed)
        assert (got.b01, got.b10, got.difference, got.p_value, got.method) == want
        seen.add(want[4].split("(")[1].split(",")[0].rstrip(")"))
    # A large lattice (FFT convolution) and a lattice too large for "auto".
    labels = np.repeat([0, 1, 2], [1000, 1500, 1500])
    a, b = rng.random(4000) < 0.6, rng.random(4000) < 0.58
    got = sign_flip_balanced(a, b, labels, method="exact")
    assert (got.b01, got.b10, got.difference, got.p_value, got.method) == (
        _reference_sign_flip_balanced(a, b, labels, "exact")
    )
    labels = np.repeat(np.arange(5), [97, 389, 601, 1009, 904])
    a, b = rng.random(3000) < 0.7, rng.random(3000) < 0.69
    got = sign_flip_balanced(a, b, labels, n_perm=40_000)
    want = _reference_sign_flip_balanced(a, b, labels, "auto", 40_000)
    assert (got.b01, got.b10, got.difference, got.p_value, got.method) == want
    seen.add(want[4].split("(")[1].split(",")[0].rstrip(")"))
    assert seen == {"exact", "Monte Carlo", "Hoeffding bound"}


# ----------------------------------------------------------------------------- ranks


def _three_score_entries(n: int = 300) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], [n // 3, n - n // 3])
    b = rng.integers(30, 80, n)
    a = np.clip(b + rng.integers(3, 12, n), 0, M)  # clearly better
    c = b.copy()
    # B and C differ on 6 images only, by +-2, 3 each way.
    c[:3] += 2
    c[3:6] -= 2
    return {"C": c, "A": a, "B": b}, labels


def test_rank_board_balanced_score_three_entries():
    outcomes, labels = _three_score_entries()
    board = rank_board(outcomes, labels, metric="balanced_score", total=M, n_boot=200)
    ranks = {e.name: e.display for e in board}
    assert ranks == {"A": "1", "B": "2-3", "C": "2-3"}
    a = board[0]
    assert a.name == "A" and a.p_values["B"] < 1e-6 and a.p_values["C"] < 1e-6
    assert all(a.p_values[k] >= a.p_values_raw[k] for k in ("B", "C"))
    b = next(e for e in board if e.name == "B")
    assert b.p_values["C"] > 0.05
    assert a.ci_method == "stratified bootstrap"
    assert a.value == pytest.approx(balanced_score(outcomes["A"], labels, M))
    assert a.ci95 == stratified_bootstrap_scores(outcomes["A"], labels, M, n_boot=200)
    assert a.ci95[0] < a.value < a.ci95[1]
    assert (
        a.p_values_raw["B"]
        == sign_flip_balanced_scores(outcomes["A"], outcomes["B"], labels, M).p_value
    )
    assert a.to_dict()["rank"] == "1" and a.to_dict()["n"] == 300


def test_rank_board_balanced_score_with_total_one_ranks_like_balanced():
    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1], [100, 200])
    outcomes = {"x": rng.random(300) < 0.9, "y": rng.random(300) < 0.6, "z": rng.random(300) < 0.6}
    binary = rank_board(outcomes, labels, metric="balanced", n_boot=200)
    counts = {k: v.astype(int) for k, v in outcomes.items()}
    scores = rank_board(counts, labels, metric="balanced_score", total=1, n_boot=200)
    assert [(e.name, e.display, e.p_values) for e in scores] == [
        (e.name, e.display, e.p_values) for e in binary
    ]


def test_rank_board_balanced_score_rejects_bad_input():
    assert "balanced_score" in METRIC_NAMES
    outcomes, labels = _three_score_entries(30)
    with pytest.raises(ConfigError, match="needs total"):
        rank_board(outcomes, labels, metric="balanced_score")
    with pytest.raises(ConfigError, match="total applies only"):
        rank_board({"a": np.ones(3, bool)}, np.zeros(3, int), metric="balanced", total=M)
    with pytest.raises(ConfigError, match="total applies only"):
        rank_board({"a": np.ones(3, bool)}, np.zeros(3, int), total=M)
    with pytest.raises(ConfigError, match="positive int"):
        rank_board(outcomes, labels, metric="balanced_score", total=0)
    with pytest.raises(ConfigError, match=r"outcomes\['A'\] must lie in \[0, 50\]"):
        rank_board(outcomes, labels, metric="balanced_score", total=50)
    with pytest.raises(ConfigError, match="whole-number"):
        rank_board({"a": np.array([1.5, 2.0])}, [0, 0], metric="balanced_score", total=M)
    with pytest.raises(ConfigError, match=r"lie in \[0, 110\]"):
        rank_board({"a": np.array([-1, 2])}, [0, 0], metric="balanced_score", total=M)
    with pytest.raises(ConfigError, match="same images"):
        rank_board({"a": [1, 2], "b": [1, 2, 3]}, [0, 0], metric="balanced_score", total=M)
    # Counts are not booleans: the binary metrics still refuse them.
    with pytest.raises(ConfigError, match="booleans"):
        rank_board(outcomes, labels, metric="balanced")
