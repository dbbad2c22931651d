"""Deprecated: the report renderers moved to :mod:`benchmark.reports`.

A thin re-export kept only until the CLI imports :mod:`benchmark.reports` (delete it then).
Names are resolved on first access, so importing this module imports nothing above
``results/``.
"""

from __future__ import annotations

import warnings
from typing import Any

_MOVED = {
    "render_attack_report": "benchmark.reports.attacks",
    "render_attack_tables": "benchmark.reports.attacks",
    "render_summary_table": "benchmark.reports.attacks",
    "render_fp_summary": "benchmark.reports.corruptions",
    "render_corruption_tables": "benchmark.reports.corruptions",
    "render_defense_matrix": "benchmark.reports.defenses",
    "render_defense_summary": "benchmark.reports.defenses",
    "render_defense_tables": "benchmark.reports.defenses",
    "TABLE5_ROWS": "benchmark.reports.paper_tables",
    "render_table5": "benchmark.reports.paper_tables",
    "latest_results": "benchmark.reports.blocks",
    "update_generated_blocks": "benchmark.reports.blocks",
}


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    warnings.warn(
        f"benchmark.results.report.{name} moved to {_MOVED[name]}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(_MOVED[name]), name)
