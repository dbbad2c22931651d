"""The published protocol runs, one row each (block ``protocolruns``): what each run found and
what it cost, so the protocol page states them from the results files, not from memory.

Per run: the entry (model, defense), the images, the clean balanced accuracy, the balanced
worst case at each of the protocol's budgets with its 95 % class-stratified bootstrap interval
(recomputed from the per-image outcomes, as the boards do), the sanity checks, the convergence
check (still-robust images the stronger APGD broke), the device, and the wall time of the
AutoAttack cells per budget, of the sanity cells and of the convergence check. Ranks are the
boards' (``bench leaderboard show D BOARD``): they change as entries are added, so no page
states them by hand.
"""

from __future__ import annotations

from typing import Any

from benchmark.metrics.balanced import balanced_accuracy, stratified_bootstrap_balanced
from benchmark.reports.base import Docs, register_report, table_head, table_row
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
        f"{b.get('broken', '?')} of {b.get('robust_before', '?')} at {b['eps_label']}"
        for b in budgets
    )


def _time(run: RunView, labels: list[str]) -> str:
    """AutoAttack minutes per budget / sanity cells / convergence check (``cached`` for a
    budget whose cells came from the cache: their cost is in the run that made them)."""
    per_eps: dict[str, float] = {}
    cached: set[str] = set()
    sanity = 0.0
    for a in run.doc.get("attacks", []):
        timing = a.get("timing") or {}
        if a.get("sanity_only"):
            sanity += timing.get("seconds", 0.0)
            continue
        label = str(a.get("eps_label", "?"))
        per_eps[label] = per_eps.get(label, 0.0) + timing.get("seconds", 0.0)
        if timing.get("cached"):
            cached.add(label)
    convergence = sum(
        b.get("seconds", 0.0) for b in (run.doc.get("convergence") or {}).get("budgets") or []
    )
    parts = [
        ("cached" if e in cached else _minutes(per_eps[e])) if e in per_eps else "-" for e in labels
    ]
    return " / ".join([*parts, _minutes(sanity), _minutes(convergence)])


def render_protocol_runs(docs: Docs) -> str:
    """One row per run of an L-inf protocol among ``docs`` (others, corruption-protocol runs
    included, are left out), by dataset then date."""
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
        "sanity checks",
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
                    _sanity(run),
                    _convergence(run),
                    device_text(env),
                    _time(run, labels),
                    f"`{run.path}` ({run.created_at[:10]})",
                ]
            )
        )
    return "\n".join(lines) + "\n"


register_report(
    "protocolruns",
    render_protocol_runs,
    "One row per protocol run: balanced worst case per budget with CIs, checks, device, cost",
)
