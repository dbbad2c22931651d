"""Adversarial metrics and sanity checks on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.evaluation.sanity import run_checks
from benchmark.metrics import METRICS, Predictions, compute_adversarial_metrics
from benchmark.metrics.adversarial import worst_case_accuracy, worst_case_balanced_accuracy


def _pred(classes, labels, k=3):
    probs = np.full((len(classes), k), 0.1)
    probs[np.arange(len(classes)), classes] = 0.8
    return Predictions(probs=probs, labels=np.asarray(labels), class_names=("a", "b", "c")[:k])


LABELS = [0, 1, 2, 0, 1]
CLEAN = _pred([0, 1, 2, 1, 1], LABELS)  # 4/5 correct
ADV = _pred([0, 2, 2, 2, 0], LABELS)  # predictions change on images 1, 3, 4


def test_fooling_ratio_counts_changed_predictions_over_all_images():
    fr = METRICS.get("fooling_ratio")(CLEAN, ADV)
    assert fr["value"] == pytest.approx(3 / 5) and fr["n"] == 5
    # Image 3 was already wrong and changes (1 -> 2): it counts (Xu et al. fn. 2).


def test_attack_success_rate_over_clean_correct_images():
    asr = METRICS.get("attack_success_rate")(CLEAN, ADV)
    # Clean-correct: images 0, 1, 2, 4; under attack 1 and 4 are wrong -> 2/4.
    assert asr["value"] == pytest.approx(0.5) and asr["n"] == 4


def test_adversarial_block_has_robust_accuracy_and_confusion():
    m = compute_adversarial_metrics(CLEAN, ADV)
    assert m["robust_accuracy"]["value"] == pytest.approx(2 / 5)
    assert m["confusion_matrix"]["matrix"] == [[1, 0, 1], [1, 0, 1], [0, 0, 1]]
    assert "accuracy" not in m


def test_worst_case_is_per_sample_over_attacks():
    other = _pred([0, 1, 1, 0, 1], LABELS)  # wrong only on image 2
    wc = worst_case_accuracy(CLEAN, [ADV, other])
    # Correct everywhere: image 0 only (image 2 fails `other`, 1 and 4 fail ADV, 3 clean).
    assert wc["value"] == pytest.approx(1 / 5)
    assert worst_case_accuracy(CLEAN, [])["value"] == pytest.approx(4 / 5)
    # Balanced: class 0 robust 1/2 (image 0 of 0, 3), class 1 0/2, class 2 0/1 -> 1/6.
    assert worst_case_balanced_accuracy(CLEAN, [ADV, other]) == pytest.approx(1 / 6)


def test_balanced_worst_case_is_chance_for_a_constant_answer():
    labels = [0, 0, 0, 1]  # majority class 0: a constant "0" is 75 % accurate
    constant = _pred([0, 0, 0, 0], labels, k=2)
    assert worst_case_accuracy(constant, [constant])["value"] == pytest.approx(0.75)
    assert worst_case_balanced_accuracy(constant, [constant]) == pytest.approx(0.5)


def test_multilabel_fooling_ratio_is_labelwise():
    clean = Predictions(
        probs=np.array([[0.9, 0.1], [0.2, 0.8]]),
        labels=np.array([[1, 0], [0, 1]]),
        class_names=("x", "y"),
        multi_label=True,
    )
    adv = Predictions(
        probs=np.array([[0.9, 0.7], [0.2, 0.8]]),
        labels=clean.labels,
        class_names=("x", "y"),
        multi_label=True,
    )
    fr = METRICS.get("fooling_ratio")(clean, adv)
    assert fr["value"] == pytest.approx(1 / 4) and fr["any_label_changed"] == pytest.approx(0.5)


def _cell(attack, eps, acc, steps=1, knowledge="white-box", norm="linf", bounded=True):
    return {
        "attack": attack,
        "eps": eps,
        "accuracy": acc,
        "steps": steps,
        "params": {},
        "knowledge": knowledge,
        "norm": norm,
        "bounded": bounded,
    }


def _status(checks):
    return {c["name"]: c["status"] for c in checks}


def test_sanity_checks_pass_on_a_consistent_evaluation():
    cells = [
        _cell("fgsm", 0.01, 0.5),
        _cell("fgsm", 0.02, 0.3),
        _cell("pgd", 0.01, 0.2, steps=10),
        _cell("square", 0.01, 0.4, knowledge="score-based"),
    ]
    checks = run_checks(cells, {0.01: 0.9, 0.02: 0.85}, 0.0, n=100)
    assert _status(checks) == {
        "eps_monotonicity": "pass",
        "iterative_vs_single_step": "pass",
        "large_eps_pgd": "pass",
        "whitebox_vs_blackbox": "pass",
        "noise_vs_attack": "pass",
    }
    assert all(c["flag"] == "" for c in checks)


def test_sanity_checks_flag_gradient_masking_symptoms():
    cells = [
        _cell("fgsm", 0.01, 0.3),
        _cell("fgsm", 0.02, 0.5),  # accuracy rises with eps
        _cell("pgd", 0.01, 0.6, steps=10),  # iterative weaker than one step
        _cell("square", 0.01, 0.1, knowledge="score-based"),
    ]  # black-box stronger
    checks = {c["name"]: c for c in run_checks(cells, {0.01: 0.05}, 0.4, n=100)}
    assert checks["eps_monotonicity"]["status"] == "fail"
    assert checks["iterative_vs_single_step"]["flag"] == "possible gradient masking"
    assert checks["whitebox_vs_blackbox"]["flag"] == "possible gradient masking"
    assert checks["large_eps_pgd"]["status"] == "fail"
    assert checks["noise_vs_attack"]["status"] == "fail"
    assert checks["eps_monotonicity"]["details"][0]["accuracy"] == [0.3, 0.5]
    on_defense = {c["name"]: c for c in run_checks(cells, {}, None, n=100, defended=True)}
    assert on_defense["whitebox_vs_blackbox"]["flag"] == "gradient masking suspected"


def test_sanity_tolerates_one_sample_and_reports_not_applicable():
    cells = [_cell("fgsm", 0.01, 0.30), _cell("fgsm", 0.02, 0.31)]  # +1 sample of 100
    checks = {c["name"]: c for c in run_checks(cells, {}, None, n=100)}
    assert checks["eps_monotonicity"]["status"] == "pass"
    assert checks["large_eps_pgd"]["status"] == "not_applicable"
    assert checks["whitebox_vs_blackbox"]["status"] == "not_applicable"


def test_a_black_box_attack_is_not_counted_as_one_gradient_step():
    """Square has no steps parameter (recorded as 1); it used to count as a single-step
    attack, so a strong black-box cell failed "iterative beats one step" with the wrong name.
    A one-step BIM (I-FGSM-1) is still a single step."""
    from benchmark.evaluation.sanity import iterative_vs_single_step

    cells = [
        _cell("fgsm", 0.01, 0.5),
        _cell("pgd", 0.01, 0.4, steps=10),
        _cell("square", 0.01, 0.2, knowledge="score-based"),
    ]
    check = iterative_vs_single_step(cells, 0.0)
    assert check["status"] == "pass"
    assert check["details"][0]["best_single_step_accuracy"] == 0.5
    one_step = iterative_vs_single_step([*cells, _cell("bim", 0.01, 0.3)], 0.0)
    assert one_step["status"] == "fail"  # I-FGSM-1 beat PGD-10
