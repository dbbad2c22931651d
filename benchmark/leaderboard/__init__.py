"""The static leaderboard: published results grouped into entries and boards, rendered into a
self-contained site (:mod:`benchmark.leaderboard.build`)."""

from benchmark.leaderboard.build import BuildReport, build_site
from benchmark.leaderboard.collect import Board, Entry, Run, boards, group_entries, load_runs

__all__ = [
    "Board",
    "BuildReport",
    "Entry",
    "Run",
    "boards",
    "build_site",
    "group_entries",
    "load_runs",
]
