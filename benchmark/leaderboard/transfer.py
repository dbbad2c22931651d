"""The transfer matrix on the site: a table on the dataset page and a column of the board at
the transfer protocol's budget (the file and its checks: :mod:`benchmark.results.transfer`).

Every figure shown is recomputed from the file's per-image outcomes (which
:func:`~benchmark.results.transfer.read_transfer` has checked against the stored accuracies);
the intervals are the stored Wilson intervals of those same outcomes.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.errors import ResultsError
from benchmark.leaderboard.rows import Board
from benchmark.leaderboard.runs import Entry
from benchmark.results.diagnostics import sha256_bytes
from benchmark.results.naming import defense_params_text
from benchmark.results.transfer import TransferMatrix, find_transfer, read_transfer

logger = logging.getLogger(__name__)


@dataclass
class TransferTable:
    """One matrix, laid out for a page: a row per target, a column per source."""

    matrix: TransferMatrix
    raw: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def protocol(self):
        return self.matrix.protocol

    @property
    def doc(self) -> dict[str, Any]:
        return self.matrix.doc


def _figure(cell, accuracy_block: dict[str, Any]) -> dict[str, Any]:
    return {
        "value": cell.accuracy,
        "ci": tuple(accuracy_block["accuracy"]["ci95"]),
        "n": int(cell.correct.size),
        "own": cell.own,
    }


def _source_label(source: dict[str, Any]) -> str:
    defense = source.get("defense")
    if not defense:
        return f"{source['id']} (undefended)"
    params = defense_params_text(defense.get("params"))
    return f"{source['id']} ({defense['id']}{', ' + params if params else ''})"


def transfer_tables(
    results_root: Path, datasets: list[str], entries: list[Entry], out: Path | None = None
) -> dict[str, list[TransferTable]]:
    """The readable transfer matrices of ``datasets``; each file is copied to ``out/raw``
    (when given) so a reader can recompute every figure. An unreadable file is left out with
    a warning."""
    by_key = {e.key: e for e in entries}
    tables: dict[str, list[TransferTable]] = {}
    for ds in datasets:
        shown: set[str] = set()
        # Newest first (a file name is <protocol>_<time>): each protocol's newest readable
        # matrix is shown, the older ones stay published (raw/, ledger) but not on the page.
        for path in sorted(find_transfer(results_root, ds), reverse=True):
            rel = path.relative_to(results_root).as_posix()
            try:
                matrix = read_transfer(path)
                if matrix.dataset != ds:
                    raise ResultsError(f"{rel} is a matrix of {matrix.dataset}, not of {ds}")
                newest = matrix.protocol.id not in shown
                table = _table(matrix, f"raw/{rel}", by_key, results_root) if newest else None
            except ResultsError as exc:
                logger.warning("left out %s: %s", rel, exc)
                continue
            if out is not None:
                target = out / "raw" / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
            if table is not None:
                shown.add(matrix.protocol.id)
                tables.setdefault(ds, []).append(table)
    return tables


def _table(matrix: TransferMatrix, raw: str, by_key: dict[str, Entry], root: Path) -> TransferTable:
    table = TransferTable(matrix, raw)
    table.sources = [
        {"label": _source_label(s), "arch": s.get("arch", ""), **s} for s in matrix.sources
    ]
    cells = {(c.source, c.target): c for c in matrix.cells}
    raw_cells = {(c["source"], c["target"]): c for c in matrix.doc["cells"]}
    for j, t in enumerate(matrix.targets):
        row_cells = []
        for i in range(len(matrix.sources)):
            cell = cells.get((i, j))
            row_cells.append(None if cell is None else _figure(cell, raw_cells[(i, j)]["worst"]))
        worst = matrix.worst_transfer(t["key"])
        entry = by_key.get(t["key"])
        result = t.get("result") or {}
        if result:
            published = root / result["file"]
            if not published.is_file():
                table.notes.append(f"{t['key']}: its results file {result['file']} is gone")
            elif sha256_bytes(published.read_bytes()) != result["sha256"]:
                table.notes.append(
                    f"{t['key']}: its results file {result['file']} changed after the matrix "
                    "was computed (the pipeline it names is the same only if its checkpoint, "
                    "defense and draws are)"
                )
        table.rows.append(
            {
                "key": t["key"],
                "label": t["label"],
                "model_id": t["model_id"],
                "entry": entry,
                "clean": t["clean"]["accuracy"],
                "draws": t.get("draws", 1),
                "cells": row_cells,
                "worst": None
                if worst is None
                else {
                    **_figure(worst[0], raw_cells[(worst[0].source, worst[0].target)]["worst"]),
                    "source": _source_label(worst[1]),
                },
            }
        )
    table.rows.sort(key=lambda r: (-(r["worst"]["value"] if r["worst"] else -1.0), r["key"]))
    return table


def attach_transfer(boards: list[Board], tables: dict[str, list[TransferTable]]) -> None:
    """Give every row of each L-inf board at a transfer protocol's budget its entry's worst
    transfer (``row.details["transfer"]``) and the board the protocol (``board.transfer``)."""
    for board in boards:
        if board.kind != "linf" or board.eps is None:
            continue
        for table in tables.get(board.dataset, []):
            if abs(table.protocol.eps - board.eps) > 1e-9:
                continue
            board.transfer = table
            for row in board.rows:
                match = next((r for r in table.rows if r["key"] == row.entry.key), None)
                if match is not None and match["worst"] is not None:
                    row.details["transfer"] = match["worst"]


__all__ = ["TransferTable", "attach_transfer", "transfer_tables"]
