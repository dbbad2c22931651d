"""Deprecated: moved to :mod:`benchmark.reports.zoo` (delete once the CLI imports it there)."""

from __future__ import annotations

import warnings
from typing import Any


def __getattr__(name: str) -> Any:
    if name != "render_zoo_markdown":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from benchmark.reports.zoo import render_zoo_markdown

    warnings.warn(
        "benchmark.models.zoo_report moved to benchmark.reports.zoo",
        DeprecationWarning,
        stacklevel=2,
    )
    return render_zoo_markdown
