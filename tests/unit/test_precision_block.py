"""The data cards' block on what a split's size means: Wilson widths and the paired tests'
smallest detectable gaps, against hand computations; the site drops the blocks' markers."""

from __future__ import annotations

import numpy as np

from benchmark.leaderboard.markdown_pages import render_markdown
from benchmark.metrics.paired import mcnemar_exact, mcnemar_p_value, sign_flip_balanced
from benchmark.reports.precision import (
    fewest_one_way,
    render_precision,
    smallest_split,
)


def test_mcnemar_p_value_by_hand():
    """The exact two-sided p-value: 2 P[Binomial(d, 1/2) <= min], and the metrics test uses it."""
    assert abs(mcnemar_p_value(0, 6) - 2 / 64) < 1e-12
    assert abs(mcnemar_p_value(1, 9) - 2 * 11 / 1024) < 1e-12
    assert abs(mcnemar_p_value(8, 2) - 2 * 56 / 1024) < 1e-12
    assert mcnemar_p_value(0, 0) == 1.0 and mcnemar_p_value(5, 5) == 1.0
    a = np.array([True] * 9 + [False] + [True] * 5)
    b = np.array([False] * 9 + [True] + [True] * 5)
    assert mcnemar_exact(a, b).p_value == mcnemar_p_value(1, 9)


def test_smallest_split_by_hand():
    # 6 one way: p = 2 / 2^6 = 0.031; 5 one way: 0.0625. Of 10: 9-1 gives 2 * 11 / 1024 = 0.021,
    # 8-2 gives 2 * 56 / 1024 = 0.109.
    assert smallest_split(5) is None
    assert smallest_split(6) == 6
    assert smallest_split(10) == 9


def test_six_images_of_one_class_are_the_fewest_the_balanced_test_calls():
    """For one pair, the boards' stratified sign-flip test agrees with McNemar's 6."""
    labels = np.array([0] * 11 + [1] * 30)
    for k, significant in ((5, False), (6, True)):
        a = np.ones(41, bool)
        b = a.copy()
        b[:k] = False  # k images of the small class, all favouring a
        p = sign_flip_balanced(a, b, labels, method="exact").p_value
        assert (p < 0.05) is significant, (k, p)


def _doc(n: int, counts: list[int]) -> dict:
    matrix = [[c if i == j else 0 for j in range(len(counts))] for i, c in enumerate(counts)]
    return {
        "data": {"dataset": "toy", "split": "test", "n": n},
        "metrics": {"clean": {"confusion_matrix": {"matrix": matrix}}},
    }


def test_holm_first_step_by_hand():
    # 2 / 2^d <= 0.05 / m: m = 1 -> d = 6 (0.031); m = 15 -> 0.00333: d = 10 (0.00195; 9 gives
    # 0.0039); m = 66 -> 0.000758: d = 12 (0.000488); m = 276 -> 0.000181: d = 14 (0.000122)
    assert [fewest_one_way(0.05 / m) for m in (1, 15, 66, 276)] == [6, 10, 12, 14]


def test_the_boards_holm_adjusted_test_needs_that_many():
    """Six rows whose first entry beats one other by d images all one way: the board's own
    ranking separates them at d = 10, not at 9 (Holm over 15 pairs)."""
    from benchmark.metrics.ranks import rank_board

    labels = np.array([0] * 50 + [1] * 50)
    for d, separated in ((9, False), (10, True)):
        base = np.ones(100, bool)
        worse = base.copy()
        worse[:d] = False
        rows = {"a": base, "b": worse, **{f"c{i}": base.copy() for i in range(4)}}
        board = {r.name: r for r in rank_board(rows, labels, metric="balanced")}
        assert (board["a"].rank_high < board["b"].rank_low) is separated, d


def test_rendered_numbers_by_hand():
    text = render_precision([("toy/clean/x.json", _doc(135, [11, 26, 98]))])
    # Wilson for 68/135: centre 0.50361, half-width 0.08317 (z = 1.96)
    assert "| 68/135 (50.4 %) | [42.0, 58.7] | 8.3 |" in text
    assert "| 10 | 9 | 5.9 |" in text  # (9 - 1) / 135
    # 6 rows: 15 pairs, 10 images: 7.4 accuracy points; in the 11-image class of 3 classes,
    # 10 / 33 = 30.3 balanced points; 24 rows need 14 > 11 images: more than that class holds
    assert "| 6 | 15 | 10 | 7.4 | 30.3 |" in text
    assert "| 24 | 276 | 14 | 10.4 | beyond one class |" in text
    assert "by 3.03 points in the smallest class" in text


def test_edge_cases_do_not_crash_or_claim_too_much():
    abstained = _doc(20, [5, 5])  # 10 of 20 in the confusion matrix: counts unknown
    text = render_precision([("a", abstained), ("b", abstained), ("c", _doc(0, []))])
    assert text.count("n = 20 images") == 1  # the same split once; n = 0 left out
    assert "Balanced accuracy" not in text and "balanced gap" not in text
    assert "| 40 |" not in text  # d > n is not listed
    absent = render_precision([("d", _doc(30, [0, 10, 20]))])
    assert "2 classes, the smallest with 10" in absent  # an absent class does not count


def test_site_drops_the_generated_block_markers():
    md = "Intro.\n\n<!-- bench:results precision a/b/*.json -->\n\n| x |\n|---|\n| 1 |\n\n"
    md += "<!-- /bench:results -->\n\nAfter.\n"
    html = str(render_markdown(md))
    assert "bench:results" not in html and "<table>" in html and "After." in html
