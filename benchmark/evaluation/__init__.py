"""Evaluation: plans and runs evaluation cells and writes results files."""

from benchmark.evaluation.config import EvaluationConfig
from benchmark.evaluation.passes import AttackPass
from benchmark.evaluation.plan import EvaluationPlan, build_plan
from benchmark.evaluation.runner import evaluate, result_path

__all__ = [
    "AttackPass",
    "EvaluationConfig",
    "EvaluationPlan",
    "build_plan",
    "evaluate",
    "result_path",
]
