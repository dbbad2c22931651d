"""Which published runs get figures: one run per entry of a dataset's boards.

An entry page shows the figures of the runs that have them; drawing every run of every entry
would repeat the same images. :func:`runs_to_diagnose` picks, per entry on the boards of the
given datasets, the run with the most bounded L-inf attack families (ties: the newest), whose
examples make the richest gallery.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.leaderboard.ranking import boards
from benchmark.leaderboard.runs import Entry, Run, group_entries, load_runs


def families(run: Run) -> set[str]:
    """The bounded L-inf attack families of a run."""
    return {
        a["attack"]
        for a in run.doc.get("attacks") or []
        if a.get("bounded") and a.get("norm") == "linf" and not a.get("sanity_only")
    }


def runs_to_diagnose(root: Path, datasets: list[str] | None = None) -> list[tuple[Entry, Path]]:
    """``(entry, results file)`` for each entry on the boards of ``datasets`` (default all)."""
    runs, _ = load_runs(root)
    entries = group_entries(runs)
    on_boards = {id(r.entry) for b in boards(entries) for r in b.rows}
    out = []
    for entry in entries:
        if id(entry) not in on_boards or (datasets and entry.dataset not in datasets):
            continue
        best = max(entry.runs, key=lambda r: (len(families(r)), r.created_at))
        if families(best):
            out.append((entry, root / best.path))
    return out


__all__ = ["families", "runs_to_diagnose"]
