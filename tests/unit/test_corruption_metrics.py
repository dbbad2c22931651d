"""Flip probability (Xu et al. eq. 5) and corruption error (ImageNet-C) on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.metrics.corruption import corruption_errors, flip_probability, flips, relative


def test_flip_probability_previous_frame_rule():
    # Two sequences of 4 frames. Sequence 1: 0 0 1 1 -> 1 flip of 3; sequence 2: 2 0 2 0 -> 3.
    preds = np.array([[0, 0, 1, 1], [2, 0, 2, 0]])
    assert flips(preds, "previous").tolist() == [[False, True, False], [True, True, True]]
    fp = flip_probability(preds, "previous")
    assert fp["value"] == pytest.approx((1 + 3) / (2 * 3))  # eq. 5: 1 / (r (n - 1)) sum
    assert fp["n"] == 2 and fp["sequences_with_a_flip"] == 1.0


def test_flip_probability_clean_frame_rule_for_noise():
    # Versus the clean frame: 0 1 0 1 -> frames 1 and 3 differ from frame 0: 2 of 3.
    preds = np.array([[0, 1, 0, 1], [1, 1, 1, 1]])
    assert flip_probability(preds, "clean")["value"] == pytest.approx(2 / 6)
    assert flip_probability(preds, "previous")["value"] == pytest.approx(3 / 6)


def test_multi_label_flip_is_any_label_change():
    preds = np.array([[[0, 1], [0, 1], [1, 1]]])  # one sequence, 3 frames, 2 labels
    assert flip_probability(preds, "previous")["value"] == pytest.approx(1 / 2)
    assert flip_probability(preds, "clean")["value"] == pytest.approx(1 / 2)


def test_flip_probability_rejects_bad_input():
    with pytest.raises(ValueError, match="n >= 2 frames"):
        flips(np.zeros((3, 1)), "previous")
    with pytest.raises(ValueError, match="compare must be"):
        flips(np.zeros((3, 2)), "next")


def test_corruption_error_by_hand():
    errors = {"blur": [0.2, 0.4], "noise": [0.3, 0.5]}
    ref = {"blur": [0.4, 0.6], "noise": [0.2, 0.2]}
    out = corruption_errors(errors, 0.1, ref, 0.2)
    assert out["ce"]["blur"] == pytest.approx(0.6 / 1.0)
    assert out["ce"]["noise"] == pytest.approx(0.8 / 0.4)
    assert out["mce"] == pytest.approx((0.6 + 2.0) / 2)
    assert out["relative_ce"]["blur"] == pytest.approx((0.1 + 0.3) / (0.2 + 0.4))
    assert out["relative_ce"]["noise"] is None  # the reference never degrades: undefined
    assert out["relative_mce"] == pytest.approx(0.4 / 0.6)
    assert relative(1.0, 0.0) is None
    with pytest.raises(ValueError, match="2 severities vs 1"):
        corruption_errors({"a": [0.1, 0.2]}, 0.0, {"a": [0.1]}, 0.0)


def test_a_reference_that_does_not_degrade_leaves_relative_ce_undefined_despite_round_off():
    # A constant reference (a collapsed RetinaMNIST tiny CNN): its corrupted errors equal its clean
    # error, but 0.55 - 0.55000000000000004 is not 0 in floats. The ratio must be None, not 1e15.
    ref_clean = 0.45 + 0.1  # 0.55000000000000004
    errors = {"blur": [0.6, 0.7], "noise": [0.5, 0.9]}
    ref = {"blur": [0.55, 0.55], "noise": [0.55, 0.65]}
    out = corruption_errors(errors, 0.5, ref, ref_clean)
    assert out["relative_ce"]["blur"] is None
    assert out["relative_ce"]["noise"] == pytest.approx((0.0 + 0.4) / (0.0 + 0.1))
    assert out["relative_mce"] == pytest.approx(4.0)
    assert relative(1.0, 1e-17) is None
    # A reference that improves under corruption (negative degradation) is no yardstick either.
    assert corruption_errors({"a": [0.5]}, 0.4, {"a": [0.2]}, 0.3)["relative_ce"]["a"] is None
