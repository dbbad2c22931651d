"""The balanced accuracy a model card records per split, and the zoo page's collapse mark."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.metrics.balanced import collapsed_splits, contains_chance
from benchmark.metrics.base import Predictions
from benchmark.metrics.classification import balanced_accuracy_metric
from benchmark.reports.zoo import _balanced_cell


def _pred(labels: list[int], predicted: list[int], k: int = 2) -> Predictions:
    probs = np.eye(k)[np.asarray(predicted)] * 0.9 + 0.1 / k
    return Predictions(probs, np.asarray(labels), tuple(str(c) for c in range(k)))


def test_a_constant_answer_is_at_chance_and_its_interval_contains_it():
    # 73 % of one class, as on BreastMNIST: a constant answer scores 73 % ACC and 50 % balanced.
    labels = [1] * 73 + [0] * 27
    b = balanced_accuracy_metric(_pred(labels, [1] * 100))
    assert b["value"] == pytest.approx(0.5) and b["classes"] == 2 and b["n"] == 100
    assert b["ci_method"] == "stratified bootstrap"
    assert contains_chance(b["ci95"], b["classes"])


def test_a_real_classifier_excludes_chance_and_the_value_is_the_mean_recall():
    labels = [0] * 40 + [1] * 40 + [2] * 20
    predicted = [0] * 36 + [1] * 4 + [1] * 30 + [2] * 10 + [2] * 18 + [0] * 2
    b = balanced_accuracy_metric(_pred(labels, predicted, k=3))
    assert b["value"] == pytest.approx((36 / 40 + 30 / 40 + 18 / 20) / 3)
    assert b["classes"] == 3
    assert b["ci95"][0] <= b["value"] <= b["ci95"][1]
    assert not contains_chance(b["ci95"], 3)


def test_chance_is_one_over_the_classes_present_and_multilabel_has_none():
    assert contains_chance((0.2, 0.4), 3) and not contains_chance((0.2, 0.3), 3)
    assert not contains_chance((0.0, 1.0), 1)
    labels = np.array([[0, 1], [1, 0]])
    pred = Predictions(np.array([[0.2, 0.9], [0.8, 0.1]]), labels, ("a", "b"), multi_label=True)
    assert balanced_accuracy_metric(pred) is None


def _card(val: list[float] | None, test: list[float] | None) -> dict:
    def metric(ci: list[float] | None) -> dict:
        out = {"acc": {"value": 0.8, "ci95": [0.7, 0.9]}}
        if ci is not None:
            out["balanced_acc"] = {"value": sum(ci) / 2, "ci95": ci, "classes": 2}
        return out

    return {"metrics": {"val": metric(val), "test": metric(test)}}


def test_the_zoo_page_marks_a_split_whose_interval_contains_chance():
    assert collapsed_splits(_card([0.6, 0.8], [0.55, 0.7])) == []
    assert _balanced_cell(_card([0.6, 0.8], [0.55, 0.7])) == "62.5 [55.0, 70.0]"
    assert collapsed_splits(_card([0.45, 0.6], [0.5, 0.58])) == ["val", "test"]
    assert _balanced_cell(_card([0.6, 0.8], [0.49, 0.58])).endswith("**collapsed (test)**")
    # A card written before cards recorded it: nothing to say.
    assert collapsed_splits(_card(None, None)) == [] and _balanced_cell(_card(None, None)) == "-"
    # A committed card is untrusted input: a malformed entry is no verdict, not a crash.
    bad = _card([0.6, 0.8], [0.45, 0.6])
    del bad["metrics"]["test"]["balanced_acc"]["classes"]
    assert collapsed_splits(bad) == []
    bad["metrics"]["val"]["balanced_acc"]["ci95"] = "0.4-0.6"
    assert collapsed_splits(bad) == []
    for broken in ({"value": 0.5}, {"value": "x", "ci95": [0.4, 0.6]}, {"ci95": [0.1, 0.2, 0.3]}):
        card = _card(None, None)
        card["metrics"]["test"]["balanced_acc"] = {"classes": 2, **broken}
        assert _balanced_cell(card) == "malformed"
