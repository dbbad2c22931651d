"""The charts of an entry page, drawn as inline SVG (:mod:`benchmark.leaderboard.svg`):
robust accuracy per attack, worst-case accuracy against eps per threat model beside the
undefended model's, flip probability per perturbation, and MDDA's accuracy against its number
of blocks N (Fig. 7)."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from benchmark.leaderboard import svg
from benchmark.leaderboard.runs import Entry, Run
from benchmark.results.naming import ThreatModel, eps_label

#: Legend names of the accuracy-vs-eps series (the threat-model keys of the results).
SERIES_NAMES = {
    "any": "any: worst of all",
    "adaptive": "adaptive",
    "oblivious": "oblivious",
    "white-box": "white-box",
}
UNDEFENDED = "undefended model"


def undefended_entry(entry: Entry, entries: list[Entry]) -> Entry | None:
    """The entry of ``entry``'s checkpoint without a defense (None for an undefended entry
    or when the results have none)."""
    if entry.defense is None:
        return None
    return next(
        (
            e
            for e in entries
            if e.defense is None and e.dataset == entry.dataset and e.checkpoint == entry.checkpoint
        ),
        None,
    )


def _linf_worst(entry: Entry) -> dict[str, dict[float, float]]:
    """Lowest L-inf worst-case accuracy per threat model and eps over the entry's runs."""
    series: dict[str, dict[float, float]] = {}
    for run in entry.runs:
        by = run.worst_cases_by_threat_model or {
            run.strongest_threat_model().value: run.worst_cases()
        }
        for tm, ws in by.items():
            for w in ws:
                if w.norm == "linf":
                    old = series.setdefault(tm, {}).get(w.eps)
                    value = w.robust_accuracy.value
                    series[tm][w.eps] = value if old is None else min(old, value)
    return series


def entry_charts(entry: Entry, base: Entry | None = None) -> dict[str, Any]:
    """Charts of an entry page: per-attack bars per run, accuracy vs eps per threat model
    (with the undefended model's white-box line when ``base`` is its entry), FP per
    perturbation type, clean confusion matrix with labelled axes."""
    out: dict[str, Any] = {
        "attacks": [],
        "eps": None,
        "eps_note": "",
        "fp": None,
        "confusion": None,
    }
    for run in entry.runs:
        bars = []
        for a in run.attack_cells():
            label = f"{a.name} {a.eps_label}"
            if a.threat_model is not ThreatModel.WHITE_BOX:
                label += f" [{a.threat_model.value}]"
            bars.append((label, a.robust_accuracy.value))
        if bars:
            title = f"Robust accuracy per attack, {run.suite}"
            out["attacks"].append(Markup(svg.bar_chart(bars, title=title)))
    worst = _linf_worst(entry)
    if worst:
        clean = entry.newest().clean_accuracy.value
        pts = {
            SERIES_NAMES.get(tm, tm): [(0.0, clean), *sorted(v.items())] for tm, v in worst.items()
        }
        if base is not None:
            grid = {e for v in worst.values() for e in v}
            for v in _linf_worst(base).values():  # an undefended entry has one threat model
                bare = base.newest().clean_accuracy.value  # at the defended entry's budgets
                pts[UNDEFENDED] = [(0.0, bare), *sorted(i for i in v.items() if i[0] in grid)]
        ticks = sorted({e for v in pts.values() for e, _ in v} | {0.0})
        out["eps"] = Markup(
            svg.line_chart(
                pts,
                title="Worst-case robust accuracy vs eps (L-inf)",
                x_label="eps",
                x_ticks=[(t, eps_label(t)) for t in ticks],
            )
        )
        out["eps_note"] = (
            "Each line is the lowest accuracy over the entry's runs at each eps: \"any: worst of "
            'all" counts an image as robust only if it survives every attack under every threat '
            "model run (oblivious, adaptive and black-box together), so it lies on or below the "
            "others and hides a line it equals (the wider line underneath shows through)."
            + (
                f' "{UNDEFENDED}" is the same checkpoint without the defense, white-box, at the'
                " same budgets."
                if UNDEFENDED in pts
                else ""
            )
        )
    out["fp"] = _fp_chart(entry)
    cm = entry.newest().clean.get("confusion_matrix")
    if isinstance(cm, dict) and cm.get("matrix"):
        labels = [str(v) for v in cm.get("labels") or range(len(cm["matrix"]))]
        out["confusion"] = Markup(
            svg.confusion_matrix(cm["matrix"], labels, title="Clean confusion matrix")
        )
    return out


def mdda_sensitivity(entry: Entry, entries: list[Entry]) -> Markup | None:
    """MDDA Fig. 7: accuracy against the number of blocks N, from the runs of one suite on the
    same checkpoint with several ``blocks`` settings (None with fewer than two settings)."""
    if entry.defense != "mdda":
        return None
    by_suite: dict[str, dict[int, Run]] = {}
    for e in entries:
        if e.defense == "mdda" and e.dataset == entry.dataset and e.checkpoint == entry.checkpoint:
            for run in e.runs:
                params = (run.defense_block.get("config") or {}).get("params") or {}
                if "blocks" in params:
                    by_suite.setdefault(run.suite, {})[int(params["blocks"])] = run
    suite, runs = max(by_suite.items(), key=lambda kv: (len(kv[1]), kv[0]), default=("", {}))
    if len(runs) < 2:
        return None
    series: dict[str, list[tuple[float, float]]] = {"clean": []}
    for n, run in sorted(runs.items()):
        series["clean"].append((float(n), run.clean_accuracy.value))
        for w in run.worst_cases():
            if w.norm == "linf":
                series.setdefault(f"worst case {w.eps_label}", []).append(
                    (float(n), w.robust_accuracy.value)
                )
    return Markup(
        svg.line_chart(
            series,
            title=f"MDDA: accuracy vs number of blocks N ({suite} runs)",
            x_label="N (blocks)",
            x_ticks=[(float(n), str(n)) for n in sorted(runs)],
        )
    )


def _fp_chart(entry: Entry) -> Markup | None:
    """Flip probability per perturbation type of the entry's first run with sequences."""
    for run in entry.runs:
        if run.sequences:
            bars = [
                (f"{t['type']} s{t['severity']}", t["flip_probability"]["value"])
                for t in run.sequences["types"]
            ]
            return Markup(svg.bar_chart(bars, title="Flip probability per perturbation type"))
    return None


__all__ = ["SERIES_NAMES", "UNDEFENDED", "entry_charts", "mdda_sensitivity", "undefended_entry"]
