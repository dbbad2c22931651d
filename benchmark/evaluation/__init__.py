"""Evaluation: plans and runs evaluation cells and writes results files."""

from benchmark.evaluation.runner import EvaluationConfig, evaluate, result_path

__all__ = ["EvaluationConfig", "evaluate", "result_path"]
