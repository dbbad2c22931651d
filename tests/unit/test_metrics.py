"""Metrics on hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.metrics import METRICS, Predictions, compute_clean_metrics, wilson_interval


def _pred(probs, labels, names=("a", "b"), multi_label=False):
    return Predictions(
        probs=np.asarray(probs, dtype=float),
        labels=np.asarray(labels),
        class_names=tuple(names),
        multi_label=multi_label,
    )


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(10, 10)
    assert hi == pytest.approx(1.0) and lo == pytest.approx(0.7225, abs=1e-4)


def test_accuracy_and_binary_auc():
    # Positive-class scores 0.1, 0.4, 0.35, 0.8 for labels 0, 0, 1, 1:
    # pairs (pos, neg): (0.35>0.1) (0.35<0.4) (0.8>0.1) (0.8>0.4) -> AUC 3/4.
    p1 = np.array([0.1, 0.4, 0.35, 0.8])
    pred = _pred(np.stack([1 - p1, p1], 1), [0, 0, 1, 1])
    acc = METRICS.get("accuracy")(pred)
    assert acc["value"] == 0.75 and acc["n"] == 4 and acc["ci_method"] == "wilson"
    assert acc["ci95"][0] < 0.75 < acc["ci95"][1]
    auc = METRICS.get("auc")(pred)
    assert auc["value"] == pytest.approx(0.75)
    assert 0 <= auc["ci95"][0] <= auc["ci95"][1] <= 1


def test_multiclass_auc_is_mean_one_vs_rest():
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.5, 0.2, 0.3]])
    labels = np.array([0, 1, 2, 2])
    # OvR AUCs: class 0: pos {0.8} vs neg {0.2,0.3,0.5} -> 1; class 1: pos {0.7} vs
    # {0.1,0.3,0.2} -> 1; class 2: pos {0.4,0.3} vs neg {0.1,0.1} -> 1.
    assert METRICS.get("auc")(_pred(probs, labels, "abc"))["value"] == pytest.approx(1.0)
    labels2 = np.array([0, 1, 2, 0])
    probs2 = probs.copy()
    probs2[3] = [0.1, 0.8, 0.1]  # a class-0 sample scored as class 1
    # class 0: pos {0.8,0.1} vs neg {0.2,0.3}: pairs 0.8>0.2, 0.8>0.3, 0.1<0.2, 0.1<0.3 -> 0.5
    # class 1: pos {0.7} vs neg {0.1,0.3,0.8} -> 2/3; class 2: pos {0.4} vs {0.1,0.1,0.1} -> 1
    expected = (0.5 + 2 / 3 + 1.0) / 3
    assert METRICS.get("auc")(_pred(probs2, labels2, "abc"))["value"] == pytest.approx(expected)


def test_confusion_matrix_and_per_class_accuracy():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8], [0.7, 0.3]])
    labels = np.array([0, 0, 1, 1, 1])
    pred = _pred(probs, labels)
    cm = METRICS.get("confusion_matrix")(pred)
    assert cm["matrix"] == [[2, 0], [1, 2]] and cm["labels"] == ["a", "b"]
    pca = METRICS.get("per_class_accuracy")(pred)
    assert pca["per_class"]["a"]["value"] == 1.0 and pca["per_class"]["a"]["n"] == 2
    assert pca["per_class"]["b"]["value"] == pytest.approx(2 / 3)
    assert pca["balanced_accuracy"] == pytest.approx((1 + 2 / 3) / 2)


def test_multilabel_accuracy_is_mean_label_accuracy():
    probs = np.array([[0.9, 0.2, 0.6], [0.1, 0.7, 0.4]])
    labels = np.array([[1, 0, 0], [0, 1, 1]])
    pred = _pred(probs, labels, "xyz", multi_label=True)
    # correct: [1,1,0] and [1,1,0] -> 4/6
    assert METRICS.get("accuracy")(pred)["value"] == pytest.approx(4 / 6)
    metrics = compute_clean_metrics(pred)
    assert "confusion_matrix" not in metrics and "accuracy" in metrics


def test_undefined_auc_is_reported_not_nan():
    pred = _pred([[0.3, 0.7], [0.6, 0.4]], [1, 1])
    auc = METRICS.get("auc")(pred)
    assert auc["value"] is None and "undefined" in auc["reason"]


def test_bootstrap_ci_is_seeded():
    rng = np.random.default_rng(1)
    p1 = rng.random(50)
    labels = (rng.random(50) < p1).astype(int)
    a = METRICS.get("auc")(_pred(np.stack([1 - p1, p1], 1), labels))
    b = METRICS.get("auc")(_pred(np.stack([1 - p1, p1], 1), labels))
    assert a == b


def test_rank_auc_equals_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    from benchmark.metrics.classification import binary_auc

    rng = np.random.default_rng(0)
    for _ in range(50):
        scores = np.round(rng.random(40), 1)  # many ties
        positive = rng.random(40) < 0.4
        assert binary_auc(scores, positive) == pytest.approx(roc_auc_score(positive, scores))
