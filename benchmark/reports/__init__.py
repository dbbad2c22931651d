"""Reports: Markdown pages and terminal text rendered from results files and model cards.

One module per family: :mod:`~benchmark.reports.attacks`, :mod:`~benchmark.reports.corruptions`,
:mod:`~benchmark.reports.defenses`, :mod:`~benchmark.reports.paper_tables` (tables laid out
as in a paper), :mod:`~benchmark.reports.zoo` (the model zoo page),
:mod:`~benchmark.reports.terminal` (what the CLI prints) and :mod:`~benchmark.reports.blocks`
(the generated blocks of Markdown pages, whose kinds are the :data:`REPORTS` registry).

This package sits above the components and results: it may import them, and only the CLI
imports it.
"""

from benchmark.reports.attacks import (
    render_attack_report,
    render_attack_tables,
    render_summary_table,
)
from benchmark.reports.base import REPORTS, ReportMeta
from benchmark.reports.blocks import latest_results, update_generated_blocks
from benchmark.reports.corruptions import render_corruption_tables, render_fp_summary
from benchmark.reports.defenses import (
    render_defense_matrix,
    render_defense_summary,
    render_defense_tables,
)
from benchmark.reports.paper_tables import TABLE5_ROWS, render_table5
from benchmark.reports.terminal import (
    render_evaluation,
    render_train_card,
    render_zoo_list,
)
from benchmark.reports.zoo import render_zoo_markdown

__all__ = [
    "REPORTS",
    "TABLE5_ROWS",
    "ReportMeta",
    "latest_results",
    "render_attack_report",
    "render_attack_tables",
    "render_corruption_tables",
    "render_defense_matrix",
    "render_defense_summary",
    "render_defense_tables",
    "render_evaluation",
    "render_fp_summary",
    "render_summary_table",
    "render_table5",
    "render_train_card",
    "render_zoo_list",
    "render_zoo_markdown",
    "update_generated_blocks",
]
