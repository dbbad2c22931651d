"""The static leaderboard: published results grouped into entries and boards, rendered into a
self-contained site (:mod:`benchmark.leaderboard.build`).

Loading this package imports no torch: it reads results files only.
"""

from benchmark.leaderboard.build import BuildReport, build_site
from benchmark.leaderboard.ranking import boards
from benchmark.leaderboard.rows import Board, Row
from benchmark.leaderboard.runs import Entry, Invalid, Run, group_entries, load_runs
from benchmark.leaderboard.show import board_text, show_board

__all__ = [
    "Board",
    "BuildReport",
    "Entry",
    "Invalid",
    "Row",
    "Run",
    "board_text",
    "boards",
    "build_site",
    "group_entries",
    "load_runs",
    "show_board",
]
