"""One board as data and as text (``bench leaderboard show <dataset> <board>``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.errors import ResultsError
from benchmark.leaderboard.ranking import boards
from benchmark.leaderboard.runs import group_entries, load_runs


def show_board(root: Path, dataset: str, board: str) -> dict[str, Any]:
    """The board ``board`` (``linf-8-255``, ``corruptions``) of ``dataset`` built from the
    results under ``root``: its protocol, the test its ranks come from, and one dict per row
    (:meth:`~benchmark.leaderboard.rows.Row.to_dict`), in the board's order.

    Raises:
        ResultsError: unknown dataset or board (the message lists the valid ids).
    """
    if not root.is_dir():
        raise ResultsError(f"results folder {root} does not exist; pass --root")
    runs, _ = load_runs(root)
    entries = group_entries(runs)
    datasets = sorted({e.dataset for e in entries})
    if dataset not in datasets:
        raise ResultsError(f"unknown dataset {dataset!r}; datasets: {', '.join(datasets)}")
    found = boards([e for e in entries if e.dataset == dataset])
    ids = [b.board_id for b in found]
    if board not in ids:
        valid = ", ".join(ids) or "none"
        raise ResultsError(f"unknown board {board!r} for {dataset}; boards: {valid}")
    b = found[ids.index(board)]
    return {
        "dataset": dataset,
        "board": board,
        "title": b.title,
        "key": b.key_name,
        "protocol": _protocol_label(b.protocol or b.corruption_protocol),
        "test": b.test,
        "n_rows": len(b.rows),
        "n_ranked": b.n_ranked,
        "rows": [r.to_dict() for r in b.rows],
    }


def _protocol_label(protocol: Any) -> str | None:
    return f"{protocol.id} {protocol.version}" if protocol is not None else None


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def unranked_summary(has_protocol_runs: bool) -> str:
    """Why a protocol board ranks nothing: no protocol run yet, or none that qualifies."""
    if not has_protocol_runs:
        return "no protocol run yet: nothing on this board is ranked"
    return "no ranked row: every protocol run here is collapsed, unreliable or off the images"


def board_text(shown: dict[str, Any]) -> str:
    """``show_board``'s result as a plain text table."""
    head = f"{shown['dataset']} {shown['title']}: {shown['n_ranked']} of {shown['n_rows']} rows"
    head += f" ranked; key: {shown['key']} %"
    if shown["protocol"]:
        head += f"; protocol {shown['protocol']}"
    lines = [head]
    if shown["protocol"] and not shown["n_ranked"]:
        lines.append(unranked_summary(any(r["protocol"] for r in shown["rows"])))
    table = [("rank", "key %", "95 % interval", "n", "status", "entry", "protocol", "reason")]
    for r in shown["rows"]:
        ci = r["ci95"]
        table.append(
            (
                r["rank"] or "-",
                _pct(r["value"]),
                f"[{_pct(ci[0])}, {_pct(ci[1])}]" if ci else "-",
                "-" if r["n"] is None else str(r["n"]),
                r["status"],
                r["entry"],
                r["protocol"] or "-",
                r["reason"] or "",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    for row in table:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


__all__ = ["board_text", "show_board"]
