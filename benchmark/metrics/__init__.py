"""Metrics: the ``METRICS`` registry of clean and adversarial metrics."""

from benchmark.metrics import adversarial, classification, corruption  # noqa: F401 (registers)
from benchmark.metrics.adversarial import compute_adversarial_metrics, worst_case_accuracy
from benchmark.metrics.base import METRICS, MetricMeta, Predictions, wilson_interval
from benchmark.metrics.classification import compute_clean_metrics

__all__ = [
    "METRICS",
    "MetricMeta",
    "Predictions",
    "compute_adversarial_metrics",
    "compute_clean_metrics",
    "wilson_interval",
    "worst_case_accuracy",
]
