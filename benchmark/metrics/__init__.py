"""Metrics: the ``METRICS`` registry (clean metrics here; adversarial ones join it later)."""

from benchmark.metrics import classification  # noqa: F401  (registers entries)
from benchmark.metrics.base import METRICS, MetricMeta, Predictions, wilson_interval
from benchmark.metrics.classification import compute_clean_metrics

__all__ = ["METRICS", "MetricMeta", "Predictions", "compute_clean_metrics", "wilson_interval"]
