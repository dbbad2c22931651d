"""The registry of report blocks and the formatting shared by every report.

A report block is a function from the runs a Markdown block names to the block's Markdown
body. Each is registered in :data:`REPORTS` under the kind used in the pages' comments
(``<!-- bench:results KIND GLOB... -->``, see :mod:`benchmark.reports.blocks`); the families
(:mod:`~benchmark.reports.attacks`, :mod:`~benchmark.reports.corruptions`,
:mod:`~benchmark.reports.defenses`, :mod:`~benchmark.reports.paper_tables`) register their
kinds when imported, which ``import benchmark.reports`` does.

A renderer receives ``(source, document)`` pairs: ``source`` is the results file's name for
people (its path relative to the results root), ``document`` the validated results JSON.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmark.registry import Registry

Docs = list[tuple[str, dict[str, Any]]]
"""What a block renderer receives: (source name, results document) pairs, in page order."""

BlockRenderer = Callable[[Docs], str]
"""A block renderer: the runs of a block -> its Markdown body."""


@dataclass(frozen=True)
class ReportMeta:
    """Description of a block kind.

    Attributes:
        description: one line for listings (``bench list reports``).
        per_run: True when the block is one section per run, False for one table of all runs.
    """

    description: str
    per_run: bool = False


REPORTS: Registry[BlockRenderer] = Registry("report", meta_type=ReportMeta)
"""Block kind (``summary``, ``defensematrix``, ``table5``...) -> renderer."""


def register_report(
    kind: str, renderer: BlockRenderer, description: str, *, per_run: bool = False
) -> None:
    """Register ``renderer`` as the block kind ``kind``."""
    REPORTS.register(kind, renderer, meta=ReportMeta(description, per_run))


def sections(render_one: Callable[[dict[str, Any], str], str]) -> BlockRenderer:
    """A block renderer of one section per run, from a renderer of one run ``(doc, source)``,
    sections separated by a blank line."""

    def render(docs: Docs) -> str:
        return "\n".join(render_one(doc, src) for src, doc in docs)

    render.__doc__ = render_one.__doc__
    return render


def mean_sd(values: list[float]) -> str:
    """``84.6 ± 0.6``: the mean and sample standard deviation of proportions, in percent (the
    mean alone for one value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{100 * mean:.1f}"
    return f"{100 * mean:.1f} ± {100 * statistics.stdev(values):.1f}"


def pct(metric: dict[str, Any] | None) -> str:
    """``90.0 [85.0, 95.0]``: a metric and its 95 % interval in percent (``n/a`` if absent)."""
    if not metric or metric.get("value") is None:
        return "n/a"
    lo, hi = metric["ci95"]
    return f"{100 * metric['value']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def auc(metric: dict[str, Any] | None) -> str:
    """An AUC with three decimals (``n/a`` if absent or undefined)."""
    if not metric or metric.get("value") is None:
        return "n/a"
    return f"{metric['value']:.3f}"


def source_line(doc: dict[str, Any], source: str) -> str:
    """The provenance line under a run's heading: file, date, commit, data scope, sha256s."""
    data = doc["data"]
    subset = data.get("subset")
    scope = (
        f"seeded random subset of {data['n']} of the {data['n_split']} {data['split']} images "
        f"(seed {subset['seed']})"
        if subset
        else f"all {data['n']} {data['split']} images"
    )
    return (
        f"Source: `{source}` (created {doc['created_at']}, commit "
        f"`{str(doc['git']['commit'])[:10]}`); {scope}; checkpoint sha256 "
        f"`{doc['model']['checkpoint_sha256'][:16]}`, data sha256 `{data['sha256'][:16]}`."
    )


def sanity_lines(doc: dict[str, Any]) -> list[str]:
    """``Sanity checks: name **status** (flag), ...`` after a blank line (none without checks)."""
    if not doc.get("sanity_checks"):
        return []
    checks = ", ".join(
        f"{c['name']} **{c['status']}**" + (f" ({c['flag']})" if c["flag"] else "")
        for c in doc["sanity_checks"]
    )
    return ["", f"Sanity checks: {checks}."]


def table_head(head: list[str]) -> list[str]:
    """A Markdown table's heading and rule lines."""
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]


def table_row(cells: list[str]) -> str:
    """One Markdown table row."""
    return "| " + " | ".join(cells) + " |"
