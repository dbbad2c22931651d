"""The static leaderboard: published results grouped into entries and boards, rendered into a
self-contained site (:mod:`benchmark.leaderboard.build`).

Loading this package imports no torch: it reads results files only.
"""

from benchmark.leaderboard.build import BuildReport, build_site
from benchmark.leaderboard.ranking import Board, Row, boards
from benchmark.leaderboard.runs import Entry, Invalid, Run, group_entries, load_runs

__all__ = [
    "Board",
    "BuildReport",
    "Entry",
    "Invalid",
    "Row",
    "Run",
    "boards",
    "build_site",
    "group_entries",
    "load_runs",
]
