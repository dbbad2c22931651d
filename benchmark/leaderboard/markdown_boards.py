"""The boards as the docs state them: Markdown built from the published results, so no page
states a rank or a status by hand (the ``boards`` and ``protocolruns`` blocks, which
``bench report update`` composes from this module and :mod:`benchmark.reports`).

* :func:`protocol_boards_markdown`: every board that has rows scored under its protocol, those
  rows in the board's order (rank, entry, key with its interval, n, status, reason), with the
  score of a constant answer beside the title;
* :func:`protocol_run_statuses`: per published protocol run, what the L-inf boards made of it
  (ranked, or why not), for the table of protocol runs.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.errors import ResultsError
from benchmark.leaderboard.ranking import boards
from benchmark.leaderboard.rows import Board
from benchmark.leaderboard.runs import Entry, group_entries, load_runs


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (a ``|`` escaped, no line break)."""
    return text.replace("|", "\\|").replace("\n", " ")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _published_entries(root: Path) -> list[Entry]:
    """The entries of the results under ``root``, refusing a root that is not a published
    results tree or holds an invalid file (a page must not silently drop an entry)."""
    if not Path(root).is_dir():
        raise ResultsError(f"results folder {root} does not exist; pass --root")
    runs, invalid = load_runs(Path(root))
    if invalid:
        raise ResultsError(
            f"{len(invalid)} invalid results file(s) under {root} (first: {invalid[0].path}: "
            f"{invalid[0].reason}); fix or remove them, then regenerate the page"
        )
    if not runs:
        raise ResultsError(f"no results file under {root}; pass the published results folder")
    return group_entries(runs)


def _boards_by_dataset(entries: list[Entry], datasets: list[str] | None) -> dict[str, list[Board]]:
    names = sorted({e.dataset for e in entries})
    if datasets and datasets != ["*"]:
        unknown = sorted(set(datasets) - set(names))
        if unknown:
            raise ResultsError(
                f"unknown dataset(s) {', '.join(unknown)}; datasets: {', '.join(names)}"
            )
        names = [d for d in names if d in datasets]
    return {d: boards([e for e in entries if e.dataset == d]) for d in names}


def protocol_boards_markdown(root: Path, datasets: list[str] | None = None) -> str:
    """Markdown of every board (of ``datasets``; None or ``["*"]``: all) with rows scored
    under a protocol: a title line (protocol, key, the score of a constant answer on an L-inf
    board, counts) and those rows in the board's order. Rows without a protocol run are
    counted, not listed (the site and ``bench leaderboard show`` list every row).

    Raises:
        ResultsError: ``root`` is not a results folder, holds an invalid file, or a named
            dataset has no results.
    """
    parts: list[str] = []
    for dataset, found in _boards_by_dataset(_published_entries(root), datasets).items():
        for b in found:
            rows = [r.to_dict() for r in b.rows]
            scored = [r for r in rows if r["protocol"]]
            if not scored:
                continue
            chance = (
                f"; a constant answer scores {_pct(b.chance)} %" if b.chance is not None else ""
            )
            parts += [
                f"**{dataset}, {b.title}** (key: {b.key_name} %{chance}; {b.n_ranked} ranked; "
                f"rows without a protocol run, not listed: {len(rows) - len(scored)})",
                "",
                "| rank | entry | key % [95 % CI] | n | status | protocol | reason |",
                "|---|---|---|---|---|---|---|",
            ]
            for r in scored:
                ci = r["ci95"]
                key = _pct(r["value"]) + (f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else "")
                parts.append(
                    f"| {r['rank'] or '-'} | `{_cell(r['entry'].split('/', 1)[-1])}` | {key} | "
                    f"{'-' if r['n'] is None else r['n']} | {r['status']} | "
                    f"{_cell(r['protocol'])} | {_cell(r['reason'] or '')} |"
                )
            parts.append("")
    return "\n".join(parts) if parts else "No board has a row scored under its protocol yet.\n"


def protocol_run_statuses(root: Path) -> dict[str, str]:
    """Results file (its path under ``root``) -> what the L-inf boards made of that protocol
    run: ``ranked``, or the status and reason that kept it off the ranking (one text per
    distinct outcome over the boards, e.g. ``at 2/255: ranked; at 8/255: unreliable: ...``). A
    run that is no row's source (its entry has a newer run, or it scores no L-inf budget) is
    absent."""
    out: dict[str, list[tuple[str, str]]] = {}
    for found in _boards_by_dataset(_published_entries(root), None).values():
        for b in found:
            if b.kind != "linf":
                continue
            for r in b.rows:
                if r.source is None or not r.protocol:
                    continue
                text = r.status + (f": {r.reason}" if r.reason else "")
                out.setdefault(r.source.path, []).append((b.title.removeprefix("L-inf "), text))
    statuses = {}
    for path, outcomes in out.items():
        texts = list(dict.fromkeys(t for _, t in outcomes))
        if len(texts) == 1:
            statuses[path] = texts[0]
        else:
            statuses[path] = "; ".join(f"at {eps}: {t}" for eps, t in outcomes)
    return statuses


__all__ = ["protocol_boards_markdown", "protocol_run_statuses"]
