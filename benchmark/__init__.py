"""MedRobustBench: robustness benchmark suite for medical image classifiers.

The public API, for a notebook or a script::

    import benchmark as mrb

    test = mrb.load_dataset("breastmnist", "test")             # test[i]: float32 in [0, 1]
    model = mrb.load_model("breastmnist", "resnet18")          # sha256-verified zoo model
    doc = mrb.evaluate("breastmnist", "resnet18", attacks="pgd", eps="8/255")
    df = mrb.results_frame("leaderboard/results")              # one row per run x cell

Names are imported on first use (PEP 562), so ``import benchmark`` (and any light subpackage
such as ``benchmark.results`` or ``benchmark.leaderboard``) loads no torch. Everything else is
reached through its subpackage (``benchmark.datasets``, ``benchmark.attacks``, ...).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from benchmark.errors import BenchmarkError
from benchmark.registry import Registry

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_LAZY = {
    "load_dataset": "benchmark.api",
    "load_model": "benchmark.api",
    "evaluate": "benchmark.api",
    "results_frame": "benchmark.api",
    "EvaluationConfig": "benchmark.evaluation",
    "ThreatModel": "benchmark.results.naming",
    "RunView": "benchmark.results.view",
    "read_result": "benchmark.results",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this hook
        return value
    raise AttributeError(f"module 'benchmark' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["BenchmarkError", "Registry", "__version__", *_LAZY]
