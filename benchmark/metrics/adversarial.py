"""Adversarial metrics: fooling ratio, attack success rate, and the worst case over attacks.

Fooling ratio follows Xu et al. 2021 (``xu2021_evaluating_robustness.md``, footnote 2): "the
percentage of images on which a trained model changes its prediction label after the images
are perturbed", over all evaluated images (not only the correctly classified ones). For
multi-label models it is the share of label decisions (threshold 0.5) that change, averaged
over labels, as the authors' code computes it; the share of images with any changed label is
reported too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmark.metrics.base import METRICS, MetricMeta, Predictions, scalar, wilson_interval
from benchmark.metrics.classification import compute_clean_metrics

XU_FR = "Xu et al. 2021, footnote 2 (xu2021_evaluating_robustness.md)"


def _changed(clean: Predictions, adv: Predictions) -> np.ndarray:
    return clean.predicted != adv.predicted


@METRICS.register(
    "fooling_ratio",
    meta=MetricMeta(
        description="Share of images whose predicted label changes under attack (Xu et al. fn. 2)",
        higher_is_better=False,
        reference=XU_FR,
        kind="adversarial",
    ),
)
def fooling_ratio(clean: Predictions, adv: Predictions) -> dict[str, Any]:
    """Fooling ratio with a Wilson 95% CI (label-wise mean for multi-label models)."""
    changed = _changed(clean, adv)
    if clean.multi_label:
        value = float(changed.mean())
        out = scalar(value, clean.n, wilson_interval(int(changed.sum()), changed.size), "wilson")
        out["any_label_changed"] = float(changed.any(axis=1).mean())
        return out
    k = int(changed.sum())
    return scalar(k / max(clean.n, 1), clean.n, wilson_interval(k, clean.n), "wilson")


@METRICS.register(
    "attack_success_rate",
    meta=MetricMeta(
        description="Share of the clean-correct images that the attack misclassifies",
        tasks="single-label",
        higher_is_better=False,
        kind="adversarial",
    ),
)
def attack_success_rate(clean: Predictions, adv: Predictions) -> dict[str, Any]:
    """Among images the model classifies correctly, the share it gets wrong under attack."""
    correct = clean.predicted == clean.labels
    n = int(correct.sum())
    k = int((adv.predicted[correct] != adv.labels[correct]).sum())
    return scalar(k / n if n else 0.0, n, wilson_interval(k, n), "wilson")


def compute_adversarial_metrics(clean: Predictions, adv: Predictions) -> dict[str, Any]:
    """Every clean metric on the adversarial predictions (robust accuracy, AUC, per-class
    accuracy, confusion matrix) plus every adversarial metric that applies."""
    task = "multi-label" if clean.multi_label else "single-label"
    out = compute_clean_metrics(adv)
    out["robust_accuracy"] = out.pop("accuracy")
    for name, fn in METRICS.items():
        if fn.meta.kind == "adversarial" and fn.meta.tasks in ("any", task):
            out[name] = fn(clean, adv)
    return out


def correct_mask(pred: Predictions) -> np.ndarray:
    """Per-sample correctness: right class, or every label right for multi-label models."""
    if pred.multi_label:
        return (pred.predicted == pred.labels.astype(np.int64)).all(axis=1)
    return pred.predicted == pred.labels


def worst_case_accuracy(clean: Predictions, advs: list[Predictions]) -> dict[str, Any]:
    """Per-sample worst case: an image counts as robust only if it is classified correctly
    clean and under every attack (AutoAttack-style robust accuracy; the ranking number).
    For multi-label models an image is correct when all its labels are."""
    robust = correct_mask(clean)
    for adv in advs:
        robust = robust & correct_mask(adv)
    k = int(robust.sum())
    return scalar(k / max(clean.n, 1), clean.n, wilson_interval(k, clean.n), "wilson")


def worst_case_balanced_accuracy(clean: Predictions, advs: list[Predictions]) -> float | None:
    """The per-sample worst case averaged per class, then over classes: 1/K for a model that
    answers one class for every attacked image, whatever the class balance. None for
    multi-label models."""
    if clean.multi_label:
        return None
    robust = correct_mask(clean)
    for adv in advs:
        robust = robust & correct_mask(adv)
    labels = clean.labels.astype(np.int64)
    rates = [float(robust[labels == c].mean()) for c in np.unique(labels)]
    return float(np.mean(rates)) if rates else None
