"""The published protocol runs, one row each (block ``protocolruns``): what each run found and
what it cost, so the protocol page states them from the results files, not from memory.

Per run: the entry (model, defense), the images, the clean balanced accuracy, the balanced
worst case at each of the protocol's budgets with its 95 % class-stratified bootstrap interval
(recomputed from the per-image outcomes, as the boards do), what the boards made of the run
(ranked, or the status and reason that kept it off: collapse, a failed check recomputed from
the cells, unconverged attacks, other images; given by the caller, who composes this with the
leaderboard), the sanity checks as the run recorded them, the convergence check (still-robust
images the stronger APGD broke), the device, and the wall time of the AutoAttack cells per
budget, of the sanity cells and of the convergence check. Ranks are the boards'.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from benchmark.metrics.balanced import balanced_accuracy, stratified_bootstrap_balanced
from benchmark.reports.base import Docs, table_head, table_row
from benchmark.results.cost import device_text
from benchmark.results.naming import eps_label
from benchmark.results.protocols import PROTOCOLS
from benchmark.results.view import RunView


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f}" if seconds >= 60 else f"{seconds / 60:.1f}"


def _balanced(correct: Any, labels: Any) -> str:
    value = balanced_accuracy(correct, labels)
    low, high = stratified_bootstrap_balanced(correct, labels)
    return f"{100 * value:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (a ``|`` escaped, no line break)."""
    return text.replace("|", "\\|").replace("\n", " ")


def _entry(run: RunView) -> str:
    return f"`{run.model_id}`" + (f" + {run.defense_label}" if run.defended else "")


def _sanity(run: RunView) -> str:
    flagged = [c["name"] for c in run.sanity_checks if c.get("flag")]
    return "**flagged: " + ", ".join(flagged) + "**" if flagged else "pass"


def _convergence(run: RunView) -> str:
    budgets = (run.doc.get("convergence") or {}).get("budgets") or []
    if not budgets:
        return "-"
    return "; ".join(
        f"no robust image at {b['eps_label']}"
        if b.get("robust_before") == 0
        else f"{b.get('broken', '?')} of {b.get('robust_before', '?')} at {b['eps_label']}"
        for b in budgets
    )


def _part(seconds: float | None, cached: int, cells: int, resumed: bool) -> str:
    """Minutes of a part of the run: ``cached`` where all its ``cells`` came from the cache
    (the run that made them paid), ``(k cached)`` where some did, ``?`` where a cell records
    no time or resumed batches of unknown cost, ``(resumed)`` where an interrupted run's
    batches are in it (their time included, as the run recorded it)."""
    if cells and cached == cells:
        return "cached"
    if seconds is None:
        return "?"
    notes = ([f"{cached} cached"] if cached else []) + (["resumed"] if resumed else [])
    return _minutes(seconds) + (f" ({', '.join(notes)})" if notes else "")


def _time(run: RunView, labels: list[str]) -> str:
    """AutoAttack minutes per budget / sanity cells / convergence check."""
    parts: dict[str, list[Any]] = {}  # part -> [seconds or None, cached, cells, resumed]
    for a in run.doc.get("attacks", []):
        timing = a.get("timing") or {}
        name = "sanity" if a.get("sanity_only") else str(a.get("eps_label", "?"))
        part = parts.setdefault(name, [0.0, 0, 0, False])
        seconds = timing.get("seconds")
        part[0] = None if part[0] is None or seconds is None else part[0] + float(seconds)
        part[1] += bool(timing.get("cached"))
        part[2] += 1
        part[3] = part[3] or bool(timing.get("resumed_batches"))
        if timing.get("resumed_batches_without_cost"):  # part of its time is not known
            part[0] = None
    convergence: list[Any] = [0.0, 0, 0, False]
    for b in (run.doc.get("convergence") or {}).get("budgets") or []:
        seconds, total = b.get("seconds"), convergence[0]
        convergence[0] = None if total is None or seconds is None else total + float(seconds)
        convergence[3] = convergence[3] or bool(b.get("resumed_batches"))
    cells = [_part(*parts[e]) if e in parts else "-" for e in labels]
    sanity = _part(*parts["sanity"]) if "sanity" in parts else "-"
    return " / ".join([*cells, sanity, _part(*convergence)])


def render_protocol_runs(docs: Docs, statuses: Mapping[str, str] | None = None) -> str:
    """One row per run of an L-inf protocol among ``docs`` (others, corruption-protocol runs
    included, are left out), by dataset then date. ``statuses``: source name -> what the
    boards made of the run (:func:`benchmark.leaderboard.markdown_boards.protocol_run_statuses`);
    a run absent from it is no board row (its entry has a newer run)."""
    runs = [
        RunView(doc, src) for src, doc in docs if (doc.get("protocol") or {}).get("id") in PROTOCOLS
    ]
    runs.sort(key=lambda r: (r.dataset, r.created_at))
    budgets: dict[str, float] = {}
    for run in runs:
        for eps in PROTOCOLS.get(run.doc["protocol"]["id"]).budgets:
            budgets.setdefault(eps_label(eps), eps)
    labels = list(budgets)
    head = [
        "dataset",
        "entry",
        "protocol",
        "n",
        "clean balanced %",
        *(f"balanced worst case % at {e} [95 % CI]" for e in labels),
        *(["on the boards"] if statuses is not None else []),
        "sanity checks (as recorded)",
        "convergence: broken of still robust",
        "device",
        "minutes: AutoAttack " + " / ".join(labels) + " / sanity / convergence",
        "run (created)",
    ]
    lines = table_head(head)
    for run in runs:
        protocol = PROTOCOLS.get(run.doc["protocol"]["id"])
        labels_of_run = run.labels
        clean = run.clean_outcomes()
        figures = []
        for e in labels:
            eps = budgets[e]
            inside = any(abs(b - eps) < 1e-9 for b in protocol.budgets)
            robust = run.worst_case_outcomes(protocol.norm, eps) if inside else None
            figures.append(
                "-" if robust is None or labels_of_run is None else _balanced(robust, labels_of_run)
            )
        env = run.doc.get("environment") or {}
        lines.append(
            table_row(
                [
                    run.dataset,
                    _entry(run),
                    f"{protocol.id} {protocol.version}",
                    str(run.n),
                    "-"
                    if clean is None or labels_of_run is None
                    else _balanced(clean, labels_of_run),
                    *figures,
                    *(
                        [_cell(statuses.get(run.path, "not a row: its entry has a newer run"))]
                        if statuses is not None
                        else []
                    ),
                    _sanity(run),
                    _convergence(run),
                    device_text(env),
                    _time(run, labels),
                    f"`{run.path}` ({run.created_at[:10]})",
                ]
            )
        )
    return "\n".join(lines) + "\n"
