"""The corruption boards: common corruptions, ranked under a versioned corruption protocol.

A row is ``ranked`` only from a conformant run of the current corruption protocol
(:data:`~benchmark.results.corruption_protocols.CURRENT_CORRUPTION_PROTOCOL`,
``mrb_corruption_v1``; :func:`~benchmark.results.conformance.corruption_protocol_problems`)
whose model is not collapsed, scored on the same corrupted images as the board's other ranked
rows (same data, split indices, corruption configurations and seed). Its figure, the mean
corruption balanced accuracy, is recomputed from the per-image outcomes of its results file:
per image, how many of the protocol's (corruption, severity) pairs left it correct. Ranked rows
carry n and a 95 % interval (class-stratified percentile bootstrap of the per-image shares) and
are ranked with paired tests on those shares (a stratified sign-flip test, Holm over the
board's pairs, shared ranks; :func:`~benchmark.metrics.ranks.rank_board` with
``metric="balanced_score"``).

Every other run with corruptions is listed unranked (``exploratory``, with the reason, or
``collapsed``), in order of its mean corruption balanced accuracy (the mean corruption
accuracy where a run predates the balanced figure), mean flip probability beside it. An entry
with a conformant protocol run shows that run only.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from benchmark.leaderboard.rows import Board, Row, row_order
from benchmark.leaderboard.runs import Entry, Run, entry_facts
from benchmark.leaderboard.statuses import COLLAPSED, EXPLORATORY, RANKED, collapse_reason
from benchmark.metrics.ranks import rank_board
from benchmark.results import corruption_protocols
from benchmark.results.conformance import corruption_protocol_problems
from benchmark.results.corruption_protocols import CorruptionProtocol
from benchmark.results.outcomes import read_outcomes

#: What a corruption board ranks by.
KEY_NAME = "mean corruption balanced accuracy"


def corruption_balanced_accuracy(severity: dict[str, Any] | None) -> float | None:
    """Mean over the severity corruptions of their balanced accuracy averaged over the
    severities (None when a corruption lacks it: a multi-label task, or an older run)."""
    rows = (severity or {}).get("corruptions") or []
    means = []
    for c in rows:
        values = c.get("balanced_accuracy") or []
        if not values or any(v is None for v in values):
            return None
        means.append(float(np.mean(values)))
    return float(np.mean(means)) if means else None


def severity_counts(run: Run) -> tuple[np.ndarray, int] | None:
    """Per image (in the order of the run's labels), how many (corruption, severity) pairs
    left it correct, and the number of pairs; None without per-image outcomes."""
    rows = (run.severity or {}).get("corruptions") or []
    if not rows or any(not row.get("outcomes") for row in rows):
        return None
    counts = np.zeros(run.n, dtype=np.int64)
    pairs = 0
    for row in rows:
        for block in row["outcomes"]:
            counts += read_outcomes(block, run.n)
            pairs += 1
    return counts, pairs


def corrupted_images_key(run: Run) -> tuple:
    """What makes two runs' corrupted images the same: their images
    (:attr:`~benchmark.results.view.RunView.images_key`) at the same size, and the sha256 of
    every (corruption, severity)'s uint8 images as the run recorded them (schema 2.1), with
    the configurations, severities and seed of the draws for a run without digests."""
    severity = run.severity or {}
    rows = severity.get("corruptions") or []
    digests = [row.get("images_sha256") for row in rows]
    if rows and all(digests):
        made = json.dumps([[row.get("id"), row["images_sha256"]] for row in rows])
    else:
        configs = [(row.get("id"), row.get("config")) for row in rows]
        made = json.dumps(
            [configs, severity.get("severities"), run.corruptions.get("seed")], sort_keys=True
        )
    return (run.images_key, run.config.get("image_size"), made)


def _details(entry: Entry, run: Run) -> dict[str, Any]:
    seq, sev = run.sequences, run.severity
    return {
        **entry_facts(entry),
        "mfp": seq["mfp"] if seq else None,
        "relative_mfp": seq.get("relative_mfp") if seq else None,
        "corruption_accuracy": sev["mean_corruption_accuracy"] if sev else None,
        "corruption_balanced": corruption_balanced_accuracy(sev),
        "suite": run.config.get("corruption_suite"),
    }


def _protocol_row(entry: Entry, run: Run, protocol: CorruptionProtocol) -> Row:
    """The row of a conformant protocol run (ranked unless collapsed; figures filled in by
    :func:`_rank`)."""
    details = _details(entry, run)
    row = Row(
        entry,
        details["corruption_balanced"],
        n=run.n,
        protocol=f"{protocol.id} {protocol.version}",
        source=run,
        details=details,
    )
    counts = severity_counts(run)
    labels = run.labels
    collapsed = collapse_reason(run)
    if collapsed:
        row.status, row.reason = COLLAPSED, collapsed
    elif counts is None or labels is None or labels.ndim != 1:
        row.reason = "the protocol run has no single-label per-image outcomes"
    else:
        row.status = RANKED
        row.outcomes = counts[0]
        row.details["pairs"] = counts[1]
    return row


def _exploratory_row(entry: Entry, run: Run, why: str, balanced: bool) -> Row:
    details = _details(entry, run)
    key = details["corruption_balanced" if balanced else "corruption_accuracy"]
    row = Row(entry, key, n=run.n, source=run, details=details)
    collapsed = collapse_reason(run)
    if collapsed:
        row.status, row.reason = COLLAPSED, collapsed
    elif key is None and run.severity:
        row.reason = "the run predates the balanced figure: nothing to order by"
    elif key is None:
        row.reason = "no severity corruptions in this run: nothing to order by"
    else:
        row.reason = why
    return row


def _rank(rows: list[Row]) -> None:
    """Rank the ``ranked`` rows with paired tests on their per-image counts, after checking
    they were scored on the same corrupted images (the reference: those most of the ranked
    runs used, ties the oldest run's; a run on other images is made exploratory)."""
    candidates = sorted(
        (r for r in rows if r.ranked), key=lambda r: (r.source.created_at, r.source.path)
    )
    if not candidates:
        return
    groups: dict[tuple, list[Row]] = {}
    for r in candidates:
        groups.setdefault(corrupted_images_key(r.source), []).append(r)
    reference = max(groups.values(), key=len)[0].source  # max keeps the oldest group on a tie
    key = corrupted_images_key(reference)
    same = []
    for r in candidates:
        if corrupted_images_key(r.source) == key:
            same.append(r)
        else:
            r.status = EXPLORATORY
            r.reason = f"scored on other corrupted images than {reference.path}"
    by = {r.entry.key: r for r in same}
    total = int(same[0].details["pairs"])
    for b in rank_board(
        {k: r.outcomes for k, r in by.items()},
        reference.labels,
        metric="balanced_score",
        total=total,
    ):
        by[b.name].take_rank(b)


def corruption_board(
    dataset: str, entries: list[Entry], protocol: CorruptionProtocol | str | None = "current"
) -> Board | None:
    """The corruption board of ``dataset`` (None: no run of it has corruptions).

    An entry with a conformant run of ``protocol`` gets one row from its newest such run,
    ranked unless collapsed; every other corruption run of an entry without one is a row of
    its own, exploratory (the reason: the run's first problem against ``protocol``) or
    collapsed. ``protocol``: the current corruption protocol by default (looked up when
    called); with None nothing is ranked.
    """
    if protocol == "current":
        protocol = corruption_protocols.CURRENT_CORRUPTION_PROTOCOL
    found: dict[str, tuple[Entry, list[Run]]] = {}
    for e in entries:
        if e.dataset != dataset:
            continue
        runs = [run for run in e.runs if run.sequences or run.severity]
        if runs:
            found[e.key] = (e, runs)
    if not found:
        return None
    problems = {
        run.path: corruption_protocol_problems(run.doc, protocol) if protocol else ["-"]
        for _, runs in found.values()
        for run in runs
    }
    # The board's figure: balanced where a protocol run is listed (its rows are ranked by it)
    # or every run has it; else plain accuracy for every row, so the column is one figure.
    balanced = any(not p for p in problems.values()) or all(
        corruption_balanced_accuracy(run.severity) is not None
        for _, runs in found.values()
        for run in runs
        if run.severity
    )
    rows: list[Row] = []
    for e, runs in found.values():
        conformant = [run for run in runs if not problems[run.path]]
        if conformant:
            newest = max(conformant, key=lambda r: (r.created_at, r.path))
            rows.append(_protocol_row(e, newest, protocol))
            continue
        for run in runs:
            why = (
                f"not a run of {protocol.id}: {problems[run.path][0]}"
                if protocol
                else "no corruption protocol ranks this board"
            )
            rows.append(_exploratory_row(e, run, why, balanced))
    _rank(rows)
    rows.sort(
        key=lambda r: (
            *row_order(r)[:2],
            -(r.key_value if r.key_value is not None else -1.0),
            r.details["mfp"] if r.details["mfp"] is not None else 2.0,
            r.entry.key,
        )
    )
    name = KEY_NAME if balanced else "mean corruption accuracy"
    board = Board(dataset, "corruptions", None, rows, [], key_name=name)
    board.corruption_protocol = protocol
    return board


__all__ = [
    "KEY_NAME",
    "corrupted_images_key",
    "corruption_balanced_accuracy",
    "corruption_board",
    "severity_counts",
]
