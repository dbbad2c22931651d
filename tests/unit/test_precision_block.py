"""The data cards' block on what a split's size means: Wilson widths and the paired tests'
smallest detectable gaps, against hand computations; the site drops the blocks' markers."""

from __future__ import annotations

import numpy as np

from benchmark.leaderboard.markdown_pages import render_markdown
from benchmark.metrics.paired import mcnemar_exact, sign_flip_balanced
from benchmark.reports.precision import mcnemar_p, render_precision, smallest_split


def test_mcnemar_p_is_the_metrics_test():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.random(60) < 0.6, rng.random(60) < 0.6
        b01, b10 = int(np.sum(~a & b)), int(np.sum(a & ~b))
        assert abs(mcnemar_p(b01, b10) - mcnemar_exact(a, b).p_value) < 1e-12


def test_smallest_split_by_hand():
    # 6 one way: p = 2 / 2^6 = 0.031; 5 one way: 0.0625. Of 10: 9-1 gives 2 * 11 / 1024 = 0.021,
    # 8-2 gives 2 * 56 / 1024 = 0.109.
    assert smallest_split(5) is None
    assert smallest_split(6) == 6
    assert smallest_split(10) == 9


def test_six_images_of_one_class_are_the_fewest_the_balanced_test_calls():
    """The block's balanced-accuracy sentence: the boards' stratified sign-flip test, exact."""
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


def test_rendered_numbers_by_hand():
    text = render_precision([("toy/clean/x.json", _doc(135, [11, 26, 98]))])
    # Wilson for 68/135: centre 0.50361, half-width 0.08317 (z = 1.96)
    assert "| 68/135 (50.4 %) | [42.0, 58.7] | 8.3 |" in text
    assert "| 10 | 9 | 5.9 |" in text  # (9 - 1) / 135
    # one image of the 11-image class in 3 classes: 100 / 33 = 3.03 points; six: 18.2
    assert "by 3.03 points" in text and "from 6 images on: 18.2 points" in text


def test_site_drops_the_generated_block_markers():
    md = "Intro.\n\n<!-- bench:results precision a/b/*.json -->\n\n| x |\n|---|\n| 1 |\n\n"
    md += "<!-- /bench:results -->\n\nAfter.\n"
    html = str(render_markdown(md))
    assert "bench:results" not in html and "<table>" in html and "After." in html
