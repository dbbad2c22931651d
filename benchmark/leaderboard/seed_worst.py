"""A board row's ranking figure over its recipe's seeds (:mod:`benchmark.leaderboard.seeds`):
the balanced worst case at the board's eps of every seed's run of the same suite, images and
attacks as the row's, or beside a corruption-protocol row the corruption balanced accuracy of
every seed's conformant run on the same corrupted images. A board still ranks checkpoints;
these figures say how much of a gap between two rows training noise could make.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass

from benchmark.leaderboard.corruption_board import (
    corrupted_images_key,
    corruption_balanced_accuracy,
)
from benchmark.leaderboard.rows import Board
from benchmark.leaderboard.runs import Entry, Run
from benchmark.leaderboard.seeds import seed_groups
from benchmark.leaderboard.statuses import collapse_reason, run_problems, unreliable_reason
from benchmark.results.conformance import corruption_protocol_problems
from benchmark.results.protocols import PROTOCOLS


@dataclass(frozen=True)
class SeedWorstCase:
    """A board row's ranking figure over its recipe's seeds: the balanced worst case at the
    board's eps of every seed's run that :func:`seed_worst_case` pairs with the row's.

    Attributes:
        suite: the suite of the runs.
        n: images each run scored.
        values: (seed, balanced worst case in [0, 1], note) per seed, ascending; the note
            says why that seed's run would not be ranked (``collapsed``; ``unreliable`` beside
            a protocol row), else it is empty.
        mean, sd: over the seeds (sample standard deviation).
    """

    suite: str
    n: int
    values: tuple[tuple[int, float, str], ...]
    mean: float
    sd: float

    @property
    def seeds(self) -> int:
        return len(self.values)


def _balanced_worst(run: Run, eps: float) -> float | None:
    """The run's lowest balanced worst case at L-inf ``eps`` under its default threat model,
    the one its board row's key takes (None: no worst case at ``eps``, or one without the
    balanced figure)."""
    found = [w.robust_balanced_accuracy for w in run.worst_cases() if w.at_linf(eps)]
    if not found or any(v is None for v in found):
        return None
    return float(min(found))


def _seed_note(run: Run, protocol: bool) -> str:
    """Why a seed's run would not be ranked: collapsed; beside a protocol row also unreliable
    (a screening run lacks convergence evidence by design, and its row is exploratory)."""
    if collapse_reason(run):
        return "collapsed"
    return "unreliable" if protocol and unreliable_reason(run) else ""


def _attack_cells(run: Run) -> frozenset[tuple[str, ...]]:
    """The run's attack cells, sanity cells left out: each cell's attack, norm, eps, resolved
    parameters and threat model (a suite run with another attack list or budget differs)."""
    return frozenset(
        (
            a.attack,
            a.norm,
            repr(round(a.eps, 10)) if a.bounded else "",
            json.dumps(a.params, sort_keys=True, default=str),
            a.threat_model.value,
        )
        for a in run.attacks
        if not a.sanity_only
    )


def seed_worst_case(
    entry: Entry,
    entries: list[Entry],
    eps: float,
    source: Run,
    protocol_row: bool = False,
) -> SeedWorstCase | None:
    """The balanced worst case at ``eps`` over the seeds of ``entry``'s recipe: ``source`` (the
    run the entry's board row comes from) and, per other seed, the newest run that
    :func:`seed_groups` pairs with it and that holds the same attack cells (attack, budget,
    parameters, threat model). Where the source is a protocol run, the other seeds' runs must
    be conformant runs of its protocol. A seed whose run is collapsed is marked, and beside a
    ranked protocol row (``protocol_row``) one that is unreliable. None:
    fewer than two seeds, or a run without a balanced worst case at ``eps``."""
    cells = _attack_cells(source)
    record = source.doc.get("protocol") or {}
    conform = PROTOCOLS.get(record["id"]) if record.get("id") in PROTOCOLS.list() else None

    def accept(run: Run) -> bool:
        if _attack_cells(run) != cells:
            return False  # a worst case over other attacks (another budget) is not comparable
        return conform is None or not run_problems(run, conform)

    for run, found in seed_groups(entry, entries, accept):
        if run is not source:
            continue
        values = []
        for seed, r in found.items():
            value = _balanced_worst(r, eps)
            if value is None:
                return None
            note = "" if r is source else _seed_note(r, protocol_row)
            values.append((seed, value, note))
        figures = [v for _, v, _ in values]
        return SeedWorstCase(
            run.suite, run.n, tuple(values), statistics.fmean(figures), statistics.stdev(figures)
        )
    return None


def seed_corruption_figure(entry: Entry, entries: list[Entry], source: Run) -> SeedWorstCase | None:
    """The mean corruption balanced accuracy over the seeds of ``entry``'s recipe, beside a
    corruption-protocol row: ``source`` (the row's run) and, per other seed, the newest
    conformant run of the current corruption protocol on the same corrupted images
    (:func:`~benchmark.leaderboard.corruption_board.corrupted_images_key`). A seed whose run is
    collapsed is marked. None: fewer than two seeds."""
    key = corrupted_images_key(source)

    def accept(run: Run) -> bool:
        return not corruption_protocol_problems(run.doc) and corrupted_images_key(run) == key

    for run, found in seed_groups(entry, entries, accept):
        if run is not source:
            continue
        values = []
        for seed, r in found.items():
            value = corruption_balanced_accuracy(r.severity)
            if value is None:
                return None
            note = "collapsed" if r is not source and collapse_reason(r) else ""
            values.append((seed, value, note))
        figures = [v for _, v, _ in values]
        return SeedWorstCase(
            run.suite, run.n, tuple(values), statistics.fmean(figures), statistics.stdev(figures)
        )
    return None


def attach_seed_worst_cases(boards: list[Board], entries: list[Entry]) -> None:
    """Give every L-inf board row whose recipe's other seeds ran the row's suite on the same
    images with the same attacks ``row.details["seed_worst"]`` (:class:`SeedWorstCase` at the
    board's eps), and every corruption-protocol row of a corruption board its recipe's
    figure over the seeds that ran the protocol on the same corrupted images
    (:func:`seed_corruption_figure`)."""
    for board in boards:
        if board.kind == "corruptions":
            for row in board.rows:
                if row.protocol and row.source is not None:
                    found = seed_corruption_figure(row.entry, entries, row.source)
                    if found is not None:
                        row.details["seed_worst"] = found
                        board.has_seed_worst = True
            continue
        if board.kind != "linf" or board.eps is None:
            continue
        for row in board.rows:
            if row.source is None:
                continue
            # Seeds are marked unreliable only beside a ranked protocol row (a screening row
            # is exploratory, and every screening run lacks convergence evidence by design).
            found = seed_worst_case(
                row.entry, entries, board.eps, row.source, protocol_row=bool(row.protocol)
            )
            if found is not None:
                row.details["seed_worst"] = found
                board.has_seed_worst = True


__all__ = [
    "SeedWorstCase",
    "attach_seed_worst_cases",
    "seed_corruption_figure",
    "seed_worst_case",
]
