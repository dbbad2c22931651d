"""Corruption metrics: flip probability (Robust-Benchmark) and corruption error (ImageNet-C).

* Flip probability, Xu et al. 2021 Sec. 4.4 eq. 5 (``xu2021_evaluating_robustness.md``):
  ``FP = 1 / (r (n - 1)) * sum_i sum_{j=2..n} I(C(x_j) != C(x_ref(j)))`` over ``r`` sequences of
  ``n`` frames, where the reference frame is the previous one for temporally related types and
  the clean frame for noise types. Eq. 5 as printed always compares with the previous frame;
  the clean-frame reference for noise is ImageNet-P's rule (Hendrycks & Dietterich 2019),
  which the paper's remark "for noise perturbation sequences, which are not temporally
  related, x_1 is clean" points to. For multi-label models a flip is any label decision that
  changes.
  mFP is the mean over types; the relative FP is ``FP_model / FP_reference`` (Table 4's RFP).
* Corruption error, Hendrycks & Dietterich 2019 (ImageNet-C): ``CE_c = sum_s E_{s,c} /
  sum_s E^ref_{s,c}``, mCE the mean over corruptions, relative CE
  ``sum_s (E_{s,c} - E_clean) / sum_s (E^ref_{s,c} - E^ref_clean)``. MedMNIST-C (Di Salvo et
  al. 2024) uses the balanced error ``1 - balanced accuracy`` in the same formulas, because
  medical test sets are imbalanced; both variants are reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from benchmark.metrics.base import METRICS, MetricMeta, bootstrap_ci, scalar

XU_FP = "Xu et al. 2021, Sec. 4.4 eq. 5 (xu2021_evaluating_robustness.md)"
IMAGENET_C = "Hendrycks & Dietterich 2019, ImageNet-C CE/mCE"


def flips(predictions: np.ndarray, compare: str) -> np.ndarray:
    """Per-sequence flip indicators, shape (r, n - 1).

    Args:
        predictions: (r, n) predicted classes, or (r, n, L) 0/1 label decisions, frame 0 clean.
        compare: "previous" (frame j vs j - 1) or "clean" (frame j vs frame 0).
    """
    preds = np.asarray(predictions)
    if preds.ndim < 2 or preds.shape[1] < 2:
        raise ValueError("predictions must have shape (r, n[, L]) with n >= 2 frames")
    if compare == "previous":
        changed = preds[:, 1:] != preds[:, :-1]
    elif compare == "clean":
        changed = preds[:, 1:] != preds[:, :1]
    else:
        raise ValueError(f"compare must be 'previous' or 'clean', got '{compare}'")
    if changed.ndim == 3:  # multi-label: any label flips
        changed = changed.any(axis=2)
    return changed


@METRICS.register(
    "flip_probability",
    meta=MetricMeta(
        description="Share of adjacent (or clean-vs-noisy) frames whose prediction flips",
        higher_is_better=False,
        reference=XU_FP,
        kind="corruption",
    ),
)
def flip_probability(predictions: np.ndarray, compare: str, seed: int = 0) -> dict[str, Any]:
    """FP of eq. 5 with a bootstrap 95% CI over sequences (images)."""
    per_seq = flips(predictions, compare).mean(axis=1)
    value = float(per_seq.mean())
    ci = bootstrap_ci(lambda idx: float(per_seq[idx].mean()), len(per_seq), seed)
    out = scalar(value, len(per_seq), ci, "bootstrap")
    out["sequences_with_a_flip"] = float((per_seq > 0).mean())
    return out


# Below this a reference's error or degradation is 0 up to float round-off: errors are fractions
# over at least one image, so a real non-zero value is far larger.
ZERO_TOL = 1e-9


def relative(value: float, reference: float) -> float | None:
    """``value / reference``; None where the reference is 0 (the ratio is undefined)."""
    return None if abs(reference) < ZERO_TOL else float(value / reference)


def corruption_errors(
    errors: Mapping[str, Sequence[float]],
    clean_error: float,
    ref_errors: Mapping[str, Sequence[float]],
    ref_clean_error: float,
) -> dict[str, Any]:
    """CE and relative CE per corruption, their means (mCE, relative mCE), as fractions.

    Args:
        errors: corruption -> errors of the evaluated model at each severity.
        clean_error: its error on clean images.
        ref_errors: the same for the reference model (same corruptions and severities).
        ref_clean_error: the reference model's clean error.

    A corruption whose reference denominator is 0 (or, for the relative CE, whose reference does
    not degrade) gets ``None`` and is left out of the means.
    """
    ce: dict[str, float | None] = {}
    rel: dict[str, float | None] = {}
    for name, errs in errors.items():
        ref = ref_errors[name]
        if len(ref) != len(errs):
            raise ValueError(f"'{name}': {len(errs)} severities vs {len(ref)} for the reference")
        ce[name] = relative(float(np.sum(errs)), float(np.sum(ref)))
        # Relative CE (Hendrycks & Dietterich 2019) divides by the reference's degradation: a
        # reference that does not degrade (a constant classifier, say) leaves it undefined.
        ref_drop = float(np.sum(np.asarray(ref) - ref_clean_error))
        rel[name] = (
            None
            if ref_drop < ZERO_TOL
            else relative(float(np.sum(np.asarray(errs) - clean_error)), ref_drop)
        )

    def mean(d: dict[str, float | None]) -> float | None:
        vals = [v for v in d.values() if v is not None]
        return float(np.mean(vals)) if vals else None

    return {"ce": ce, "mce": mean(ce), "relative_ce": rel, "relative_mce": mean(rel)}
