"""Paired tests, intervals, Holm and shared ranks on hand-computed and reference cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from benchmark.errors import ConfigError, ResultsError
from benchmark.metrics.balanced import (
    balanced_accuracy,
    stratified_bootstrap_balanced,
    stratified_bootstrap_samples,
)
from benchmark.metrics.paired import (
    holm,
    mcnemar_exact,
    paired_bootstrap_balanced,
    sign_flip_balanced,
)
from benchmark.metrics.ranks import rank_board, shared_ranks
from benchmark.results.outcomes import pack_outcomes, unpack_outcomes


def _pair(both: int, only_a: int, only_b: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes of two entries with the given counts of the four agreement patterns."""
    a = np.array([True] * both + [True] * only_a + [False] * only_b + [False] * neither)
    b = np.array([True] * both + [False] * only_a + [True] * only_b + [False] * neither)
    return a, b


# ----------------------------------------------------------------------------- McNemar


def test_mcnemar_four_discordances_for_the_leader_give_0_125():
    a, b = _pair(90, 4, 0, 6)  # a leads by 4 images, all 4 discordances its way
    t = mcnemar_exact(a, b)
    assert (t.b01, t.b10) == (0, 4)
    assert t.p_value == pytest.approx(0.125)
    assert t.better == "a" and t.difference == pytest.approx(0.04)


def test_mcnemar_is_symmetric_and_one_without_discordance():
    a, b = _pair(50, 7, 2, 41)
    ab, ba = mcnemar_exact(a, b), mcnemar_exact(b, a)
    assert ab.p_value == ba.p_value
    assert (ab.b01, ab.b10) == (ba.b10, ba.b01)
    assert ab.better == "a" and ba.better == "b"
    same = mcnemar_exact(a, a)
    assert same.p_value == 1.0 and same.better is None and same.b01 == same.b10 == 0


@pytest.mark.parametrize(
    ("only_a", "only_b", "expected"),
    [(30, 30, 1.0), (10, 0, 2 / 2**10), (0, 10, 2 / 2**10), (3, 1, 0.625), (40, 0, 2 / 2**40)],
)
def test_mcnemar_known_discordant_counts(only_a, only_b, expected):
    a, b = _pair(60, only_a, only_b, 20)
    assert mcnemar_exact(a, b).p_value == pytest.approx(expected, rel=1e-12)


def test_mcnemar_matches_scipy_binomtest_on_random_cases():
    rng = np.random.default_rng(7)
    for _ in range(25):
        n = int(rng.integers(5, 300))
        a = rng.random(n) < rng.random()
        b = rng.random(n) < rng.random()
        t = mcnemar_exact(a, b)
        d = t.b01 + t.b10
        expected = 1.0 if d == 0 else stats.binomtest(t.b10, d, 0.5).pvalue
        assert t.p_value == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_paired_inputs_are_checked():
    with pytest.raises(ConfigError, match="differ in length"):
        mcnemar_exact(np.ones(3, bool), np.ones(4, bool))
    with pytest.raises(ConfigError, match="booleans"):
        mcnemar_exact(np.array([0, 2]), np.array([0, 1]))


# ----------------------------------------------------------------------------- balanced


def test_balanced_accuracy_skips_absent_classes():
    correct = np.array([1, 1, 0, 0, 0, 1], bool)
    labels = np.array([0, 0, 0, 0, 2, 2])  # class 1 absent: mean of 2/4 and 1/2
    assert balanced_accuracy(correct, labels, num_classes=3) == pytest.approx(0.5)
    assert balanced_accuracy(correct, np.zeros(6, int)) == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="out of range"):
        balanced_accuracy(correct, labels, num_classes=2)


def test_stratified_bootstrap_is_deterministic_and_contains_the_estimate():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 400)
    correct = rng.random(400) < np.array([0.9, 0.6, 0.3])[labels]
    first = stratified_bootstrap_balanced(correct, labels, n_boot=500, seed=3)
    assert first == stratified_bootstrap_balanced(correct, labels, n_boot=500, seed=3)
    assert first != stratified_bootstrap_balanced(correct, labels, n_boot=500, seed=4)
    lo, hi = first
    assert lo < balanced_accuracy(correct, labels) < hi


def test_stratified_bootstrap_keeps_class_sizes():
    # Class 0: 3 images, 1 correct; class 1: 1000 images, all correct. With class sizes fixed
    # a resample's class-0 accuracy is j/3, so its balanced accuracy is (j/3 + 1)/2 exactly;
    # resampling the whole set would let class 0 hold 0, 2, 4... images (values like 0.75).
    correct = np.array([True, False, False] + [True] * 1000)
    labels = np.array([0, 0, 0] + [1] * 1000)
    samples = stratified_bootstrap_samples(correct, labels, n_boot=2000, seed=1)
    allowed = np.array([(j / 3 + 1) / 2 for j in range(4)])
    assert np.abs(samples[:, None] - allowed[None, :]).min(axis=1).max() < 1e-12
    # Binomial(3, 1/3) frequencies of j = 0..3: 8/27, 12/27, 6/27, 1/27.
    freq = np.array([np.mean(np.isclose(samples, v)) for v in allowed])
    assert freq == pytest.approx(np.array([8, 12, 6, 1]) / 27, abs=0.04)


def test_stratified_bootstrap_matches_resampling_indices():
    # The binomial shortcut has the law of resampling image indices within each class.
    rng = np.random.default_rng(5)
    labels = np.repeat([0, 1, 2], [20, 50, 30])
    correct = rng.random(100) < 0.6
    fast = stratified_bootstrap_samples(correct, labels, n_boot=4000, seed=0)
    rates = []
    for c in range(3):
        members = correct[labels == c]
        draws = rng.integers(0, members.size, size=(4000, members.size))
        rates.append(members[draws].mean(axis=1))
    slow = np.mean(rates, axis=0)
    assert fast.mean() == pytest.approx(np.mean(slow), abs=0.004)
    assert fast.std() == pytest.approx(np.std(slow), rel=0.08)


def test_stratified_bootstrap_narrows_with_more_images():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 200)
    correct = rng.random(200) < 0.7
    lo1, hi1 = stratified_bootstrap_balanced(correct, labels, n_boot=1000)
    lo4, hi4 = stratified_bootstrap_balanced(np.tile(correct, 4), np.tile(labels, 4), n_boot=1000)
    assert (hi4 - lo4) == pytest.approx((hi1 - lo1) / 2, rel=0.2)


def test_sign_flip_reduces_to_mcnemar_with_equal_class_sizes():
    rng = np.random.default_rng(11)
    labels = np.repeat([0, 1, 2], 40)
    for _ in range(5):
        a, b = rng.random(120) < 0.7, rng.random(120) < 0.6
        assert sign_flip_balanced(a, b, labels).p_value == pytest.approx(
            mcnemar_exact(a, b).p_value, rel=1e-9
        )


def test_sign_flip_exact_agrees_with_monte_carlo_and_is_symmetric():
    rng = np.random.default_rng(4)
    labels = np.repeat([0, 1, 2], [30, 70, 13])
    a, b = rng.random(113) < 0.75, rng.random(113) < 0.6
    exact = sign_flip_balanced(a, b, labels, method="exact")
    mc = sign_flip_balanced(a, b, labels, method="monte_carlo", n_perm=100_000, seed=1)
    assert "exact" in exact.method and "Monte Carlo" in mc.method
    assert mc.p_value == pytest.approx(exact.p_value, abs=0.01)
    assert sign_flip_balanced(b, a, labels).p_value == pytest.approx(exact.p_value, rel=1e-9)
    assert exact.difference == pytest.approx(
        balanced_accuracy(a, labels) - balanced_accuracy(b, labels)
    )


def test_sign_flip_monte_carlo_uses_a_hoeffding_bound_beyond_its_resolution():
    rng = np.random.default_rng(8)
    labels = np.repeat([0, 1, 2], [30, 70, 13])
    a, b = np.ones(113, bool), rng.random(113) < 0.4
    exact = sign_flip_balanced(a, b, labels, method="exact")
    bound = sign_flip_balanced(a, b, labels, method="monte_carlo", n_perm=1000)
    assert "Hoeffding" in bound.method
    assert exact.p_value <= bound.p_value < 1 / 1001  # a valid, conservative p-value


def test_sign_flip_weights_discordances_by_class_size():
    # One discordance in a class of 2 moves the balanced accuracy by 1/4, three discordances
    # in a class of 100 by 3/200 in total: T = 1/2 + 3/100. Under the null the 2**4 sign
    # patterns are equally likely and |T| >= 0.53 only when all four signs agree: 2 of 16.
    a = np.array([True, True] + [True] * 3 + [True] * 97)
    b = np.array([False, True] + [False] * 3 + [True] * 97)
    labels = np.array([0, 0] + [1] * 100)
    assert sign_flip_balanced(a, b, labels).p_value == pytest.approx(2 / 16)


def test_paired_bootstrap_is_paired_and_deterministic():
    labels = np.repeat([0, 1], [60, 90])
    a, b = _pair(100, 30, 0, 20)  # b10 = 30, b01 = 0 across both classes
    out = paired_bootstrap_balanced(a, b, labels, n_boot=1000, seed=0)
    assert out == paired_bootstrap_balanced(a, b, labels, n_boot=1000, seed=0)
    assert out.difference == pytest.approx(
        balanced_accuracy(a, labels) - balanced_accuracy(b, labels)
    )
    assert 0 < out.low <= out.difference <= out.high
    assert out.p_value == pytest.approx(2 / 1001)  # every resample favours a: the floor
    same = paired_bootstrap_balanced(a, a, labels, n_boot=200)
    assert (same.low, same.high, same.p_value) == (0.0, 0.0, 1.0)


# ----------------------------------------------------------------------------- Holm


def test_holm_against_a_hand_computation():
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> running
    # max 0.02, 0.03, 0.06, 0.06.
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]).size == 0
    with pytest.raises(ConfigError):
        holm([0.2, 1.5])


# ----------------------------------------------------------------------------- ranks


def test_shared_ranks_definition():
    # 0 beats 1 and 2; 1 and 2 are not separated; 3 is beaten by everyone.
    better = np.zeros((4, 4), bool)
    better[0, [1, 2, 3]] = True
    better[[1, 2], 3] = True
    ranks = shared_ranks(better)
    assert [(r.low, r.high, r.display) for r in ranks] == [
        (1, 1, "1"),
        (2, 3, "2-3"),
        (2, 3, "2-3"),
        (4, 4, "4"),
    ]
    assert [r.display for r in shared_ranks(lambda i, j: False, m=3)] == ["1-3"] * 3
    with pytest.raises(ConfigError, match="better and worse"):
        shared_ranks(np.ones((2, 2), bool))


def test_rank_board_shares_a_rank_when_not_separable():
    a, b = _pair(100, 3, 1, 46)
    board = rank_board({"a": a, "b": b}, np.zeros(150, int))
    assert [(e.name, e.display) for e in board] == [("a", "1-2"), ("b", "1-2")]
    assert board[0].p_values["b"] == pytest.approx(0.625)


def test_rank_board_separates_forty_one_way_discordances_on_150_images():
    a, b = _pair(80, 40, 0, 30)
    board = rank_board({"b": b, "a": a}, np.zeros(150, int))
    assert [(e.name, e.display, e.rank_low, e.rank_high) for e in board] == [
        ("a", "1", 1, 1),
        ("b", "2", 2, 2),
    ]
    first = board[0]
    assert first.n == 150 and first.value == pytest.approx(120 / 150)
    assert first.ci_method == "wilson" and first.ci95[0] < first.value < first.ci95[1]
    assert first.p_values_raw["b"] == pytest.approx(2 / 2**40)


def _three_entries(n: int = 300) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], [n // 3, n - n // 3])
    a = np.ones(n, bool)
    a[rng.choice(n, 15, replace=False)] = False
    b = rng.random(n) < 0.6
    c = b.copy()
    # B and C differ on 6 images only, 3 each way.
    flip = np.r_[np.flatnonzero(b)[:3], np.flatnonzero(~b)[:3]]
    c[flip] = ~c[flip]
    return {"C": c, "A": a, "B": b}, labels


@pytest.mark.parametrize("metric", ["accuracy", "balanced"])
def test_rank_board_three_entries(metric):
    outcomes, labels = _three_entries()
    board = rank_board(outcomes, labels, metric=metric, n_boot=200)
    ranks = {e.name: e.display for e in board}
    assert ranks == {"A": "1", "B": "2-3", "C": "2-3"}
    assert board[0].name == "A"
    a = board[0]
    assert a.p_values["B"] < 0.05 and a.p_values["C"] < 0.05
    assert all(a.p_values[k] >= a.p_values_raw[k] for k in ("B", "C"))
    b = next(e for e in board if e.name == "B")
    assert b.p_values["C"] > 0.05
    assert a.to_dict()["rank"] == "1" and a.to_dict()["n"] == 300
    if metric == "balanced":
        assert a.ci_method == "stratified bootstrap"
        assert a.value == pytest.approx(balanced_accuracy(outcomes["A"], labels))


def test_rank_board_holm_can_merge_ranks_that_uncorrected_tests_separate():
    # Raw p: a-b and b-c 2/2**6 = 0.031, a-c 2/2**12. Holm: 0.0015, then 2 * 0.031 = 0.0625
    # for both adjacent pairs, so only a > c remains: a "1-2", b "1-3", c "2-3".
    a = np.array([True] * 6 + [True] * 6 + [True] * 88)
    b = np.array([False] * 6 + [True] * 6 + [True] * 88)
    c = np.array([False] * 6 + [False] * 6 + [True] * 88)
    labels = np.zeros(100, int)
    uncorrected = rank_board({"a": a, "b": b, "c": c}, labels, correction="none")
    corrected = rank_board({"a": a, "b": b, "c": c}, labels)
    assert [e.display for e in uncorrected] == ["1", "2", "3"]
    assert [(e.name, e.display) for e in corrected] == [("a", "1-2"), ("b", "1-3"), ("c", "2-3")]


def test_rank_board_rejects_bad_input():
    with pytest.raises(ConfigError, match="same images"):
        rank_board({"a": np.ones(3, bool), "b": np.ones(4, bool)}, np.zeros(3, int))
    with pytest.raises(ConfigError, match="metric"):
        rank_board({"a": np.ones(3, bool)}, np.zeros(3, int), metric="auc")
    single = rank_board({"a": np.ones(3, bool)}, np.zeros(3, int))
    assert single[0].display == "1" and single[0].p_values == {}


# ----------------------------------------------------------------------------- storage


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 13, 150, 1001])
def test_pack_unpack_round_trip(n):
    bits = np.random.default_rng(n).random(n) < 0.5
    text = pack_outcomes(bits)
    assert text.isascii() and len(text) == 4 * -(-((n + 7) // 8) // 3)
    assert np.array_equal(unpack_outcomes(text, n), bits)


def test_pack_bit_order_is_little_endian():
    # Images 0 and 3 robust -> byte 0b00001001 = 9 -> base64 "CQ==".
    assert pack_outcomes([True, False, False, True]) == "CQ=="
    with pytest.raises(ResultsError, match="bytes"):
        unpack_outcomes("CQ==", 9)
    with pytest.raises(ResultsError, match="padding"):
        unpack_outcomes("CQ==", 3)
    with pytest.raises(ResultsError, match="base64"):
        unpack_outcomes("not base64!", 4)
