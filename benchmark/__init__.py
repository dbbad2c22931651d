"""MedRobustBench: robustness benchmark suite for medical image classifiers.

The public API is re-exported here; everything else is reached through its subpackage
(``benchmark.datasets``, ``benchmark.models``, ``benchmark.evaluation`` ...).
"""

__version__ = "0.1.0"

from benchmark.errors import BenchmarkError
from benchmark.registry import Registry

__all__ = ["BenchmarkError", "Registry", "__version__"]
