"""Results: the JSON schema, atomic IO and provenance of every results file, a typed view of
a run (:class:`RunView`) and a pandas table of many runs (:func:`frame`).

``frame`` is loaded on first use, so that importing this package does not import pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from benchmark.results.blocks import AttackView, Metric, WorstCaseView
from benchmark.results.io import atomic_write_bytes, atomic_write_json
from benchmark.results.schema import (
    SCHEMA_VERSION,
    load_schema,
    read_result,
    validate_result,
    write_result,
)
from benchmark.results.view import RunView

if TYPE_CHECKING:
    from benchmark.results.dataframe import frame

__all__ = [
    "SCHEMA_VERSION",
    "AttackView",
    "Metric",
    "RunView",
    "WorstCaseView",
    "atomic_write_bytes",
    "atomic_write_json",
    "frame",
    "load_schema",
    "read_result",
    "validate_result",
    "write_result",
]


def __getattr__(name: str) -> Any:
    # pandas is imported only by those who ask for a frame. (The module is not called
    # "frame": importing it would bind the module over this function.)
    if name == "frame":
        from benchmark.results.dataframe import frame

        return frame
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
