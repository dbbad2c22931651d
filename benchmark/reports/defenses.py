"""Defense reports: the papers' defense matrices, the per-defense summary and a defended run
in full (blocks ``defensematrix``, ``defensebalanced``, ``defenses`` and ``defensefull``).

An attack block shows in one of two columns of a matrix (``ThreatModel.report_slot``):
oblivious (crafted without the defense: white-box on the bare model, oblivious, transfer) or
adaptive (crafted through or querying the defended pipeline: adaptive, black-box).
"""

from __future__ import annotations

from typing import Any

from benchmark.reports.attacks import cell_columns
from benchmark.reports.base import (
    Docs,
    pct,
    register_report,
    sanity_lines,
    sections,
    source_line,
    table_head,
    table_row,
)
from benchmark.results.blocks import AttackView, WorstCaseView
from benchmark.results.naming import ThreatModel, cell_label, defense_label
from benchmark.results.view import ANY, RunView

_OBL, _ADA = ThreatModel.OBLIVIOUS, ThreatModel.ADAPTIVE


def _acc(block: AttackView | None, balanced: bool = False) -> str:
    if block is None:
        return "-"
    value = block.balanced_accuracy if balanced else block.robust_accuracy.value
    return "-" if value is None else f"{100 * value:.1f}"


def _by_slot(run: RunView) -> dict[str, dict[ThreatModel, AttackView]]:
    """Cell id -> {report slot (oblivious | adaptive): block} of the non-sanity blocks."""
    out: dict[str, dict[ThreatModel, AttackView]] = {}
    for a in run.attack_cells():
        out.setdefault(a.cell_id, {})[a.threat_model.report_slot] = a
    return out


def _clean_text(run: RunView) -> str:
    text = f"{100 * run.clean_accuracy.value:.1f}"
    if run.clean_votes:
        text += f" (abstain {100 * run.clean_votes['abstain_rate']:.1f})"
    return text


def _worst_by_tm(run: RunView) -> dict[str, list[WorstCaseView]]:
    """Worst cases per threat model; an undefended run's count as oblivious."""
    return run.worst_cases_by_threat_model or {_OBL.value: run.worst_case}


def _budgets(runs: list[RunView]) -> list[tuple[tuple[str, float], str]]:
    """Sorted ((norm, eps), label) of every worst-case budget of the runs (any threat model);
    the label names the norm when it is not L-inf."""
    found: dict[tuple[str, float], str] = {}
    for run in runs:
        for ws in _worst_by_tm(run).values():
            for w in ws:
                label = w.eps_label if w.norm == "linf" else f"{w.norm} {w.eps_label}"
                found.setdefault(w.budget, label)
    return sorted(found.items())


def _budget_acc(worst: list[WorstCaseView], key: tuple[str, float]) -> str:
    hit = [w for w in worst if w.budget == key]
    return f"{100 * hit[0].robust_accuracy.value:.1f}" if hit else "-"


def _matrix_cells(run: RunView, columns: dict[str, str], balanced: bool) -> list[str]:
    """Oblivious robust accuracy of each cell and, after a slash, the adaptive one."""
    by = _by_slot(run)
    cells = []
    for cid in columns:
        slots = by.get(cid, {})
        text = _acc(slots.get(_OBL), balanced)
        if _ADA in slots:
            text += f" / {_acc(slots[_ADA], balanced)}"
        cells.append(text)
    return cells


def _matrix_worst(run: RunView) -> str:
    wc = _worst_by_tm(run)
    worst = []
    for key, label in _budgets([run]):
        parts = [_budget_acc(wc.get(_OBL.value, []), key)]
        if wc.get(_ADA.value):
            parts.append(_budget_acc(wc[_ADA.value], key))
        worst.append(f"{' / '.join(parts)} @{label}")
    return ", ".join(worst) or "-"


def _row_labels(runs: list[RunView]) -> list[str]:
    """The defense column of each run: its defense label, with the model's architecture and
    seed where another row of the same dataset has the same label on another model (seeds of
    one recipe, or one defense on two architectures), so no two rows read alike."""
    models: dict[tuple[str, str], set[str]] = {}
    for run in runs:
        models.setdefault((run.dataset, run.defense_label), set()).add(run.model_id)
    return [
        f"{run.defense_label} ({run.arch}, seed {run.config.get('seed', 0)})"
        if len(models[(run.dataset, run.defense_label)]) > 1
        else run.defense_label
        for run in runs
    ]


def render_defense_matrix(docs: Docs, *, balanced: bool = False) -> str:
    """Papers' defense tables (MedRDF Table III, MDDA Table 2): one row per run (undefended
    model or defense configuration), one column per attack cell, each entry the oblivious
    robust accuracy % and, after a slash, the adaptive one when the run has it.

    Columns are the union of the runs' (non-sanity) cells in first-seen order; a run without
    a cell shows ``-``. Clean accuracy of a voting defense counts abstentions as errors and
    shows the abstain rate. ``balanced``: the mean of the per-class accuracies instead, which
    exposes a defended model that answers the majority class for every attacked image (the
    worst-case column is then left out: it is computed for accuracy only).
    """
    runs = [RunView(doc, src) for src, doc in docs]
    columns = cell_columns(runs)
    head = ["dataset", "defense", "n", "clean", *columns.values()]
    lines = table_head(head if balanced else [*head, "worst case"])
    for run, label in zip(runs, _row_labels(runs), strict=True):
        row = [run.dataset, label, str(run.n)]
        cells = _matrix_cells(run, columns, balanced)
        if balanced:
            clean = run.clean_balanced_accuracy
            row += ["-" if clean is None else f"{100 * clean:.1f}", *cells]
        else:
            row += [_clean_text(run), *cells, _matrix_worst(run)]
        lines.append(table_row(row))
    return "\n".join(lines) + "\n"


def render_defense_balanced(docs: Docs) -> str:
    """:func:`render_defense_matrix` with balanced accuracy (mean of per-class accuracies)."""
    return render_defense_matrix(docs, balanced=True)


def _summary_worst(run: RunView, budgets: list[tuple[tuple[str, float], str]]) -> list[str]:
    """Per budget: oblivious / adaptive / all worst case (balanced beside), or white-box."""
    wc = run.worst_cases_by_threat_model
    if wc is None:  # an undefended run: one white-box number per budget
        return [f"{_budget_acc(run.worst_case, key)} (white-box)" for key, _ in budgets]
    cols = []
    for key, _ in budgets:
        text = " / ".join(_budget_acc(wc.get(tm, []), key) for tm in (_OBL.value, _ADA.value, ANY))
        every = [w for w in wc.get(ANY, []) if w.budget == key]
        if every and every[0].robust_balanced_accuracy is not None:
            text += f" (bal. {100 * every[0].robust_balanced_accuracy:.1f})"
        cols.append(text)
    return cols


def render_defense_summary(docs: Docs) -> str:
    """One row per defended run: clean accuracy of the bare and the defended model, worst-case
    robust accuracy per budget (oblivious / adaptive, the adaptive one including the
    black-box attacks on the defended pipeline / all attacks of the run together, the
    leaderboard's key, with its balanced accuracy), cost overhead and flags."""
    runs = [RunView(doc, src) for src, doc in docs]
    budgets = _budgets(runs)
    head = ["dataset", "defense", "n", "clean bare", "clean defended"]
    # (an undefended run's row shows its white-box worst case)
    head += [f"worst case {label} obl. / adapt. / all" for _, label in budgets]
    lines = table_head([*head, "ms/img (x bare)", "flags"])
    for run, label in zip(runs, _row_labels(runs), strict=True):
        cost = run.cost
        cost_text = (
            f"{cost['defended_ms_per_image']:.1f} (x{cost['overhead']:.1f})"
            if cost.get("overhead")
            else "-"
        )
        row = [run.dataset, label, str(run.n)]
        row += [f"{100 * run.bare_clean['accuracy']['value']:.1f}", _clean_text(run)]
        row += [*_summary_worst(run, budgets), cost_text, ", ".join(run.flags) or "-"]
        lines.append(table_row(row))
    return "\n".join(lines) + "\n"


def votes_text(v: dict[str, Any]) -> str:
    """MedRDF's vote report: abstain rate, RM, Table IX's C./R. breakdown (percent)."""
    return (
        f"abstain {100 * v['abstain_rate']:.1f}, RM median {v['rm_median']:.2f}, "
        f"C&R {100 * v['c_and_r']:.1f} / C&!R {100 * v['c_not_r']:.1f} / "
        f"!C&R {100 * v['not_c_and_r']:.1f} / !C&!R {100 * v['not_c_not_r']:.1f}"
    )


def _defense_line(d: dict[str, Any]) -> str:
    """The defense's id, version, sha256, parameters, EOT, BPDA and cost."""
    params = (d.get("config") or {}).get("params", {})
    cost = d.get("cost") or {}
    return (
        f"Defense `{d.get('id')}` v{d.get('version')} (sha256 `{str(d.get('sha256'))[:16]}`), "
        f"parameters {', '.join(f'{k}={v}' for k, v in params.items()) or 'none'}; "
        f"EOT samples {d.get('eot_samples', 1)}, BPDA {'yes' if d.get('bpda') else 'no'}"
        + (
            f"; {cost['defended_ms_per_image']:.1f} ms per image vs "
            f"{cost['base_ms_per_image']:.1f} bare (x{cost['overhead']:.1f})."
            if cost.get("overhead")
            else "."
        )
    )


def render_defense_tables(doc: dict[str, Any], source: str) -> str:
    """One defended run in full: clean scores, the defense's configuration and cost, a row per
    attack cell and threat model (with MedRDF's vote breakdown when present), worst cases per
    threat model and the sanity checks."""
    cfg, metrics = doc["config"], doc["metrics"]
    bare = metrics.get("undefended_clean", metrics["clean"])
    lines = [
        f"### {cfg['dataset']} / {cfg['model_id']} / {defense_label(cfg)} / preset "
        f"`{cfg.get('suite')}`",
        "",
        source_line(doc, source),
        "",
        f"Clean accuracy {pct(bare['accuracy'])} % bare, {pct(metrics['clean']['accuracy'])} % "
        "defended" + (" (abstentions count as errors)" if metrics.get("clean_votes") else "") + ".",
    ]
    if doc.get("defense"):
        lines += ["", _defense_line(doc["defense"])]
    if metrics.get("clean_votes"):
        lines += ["", "Clean votes: " + votes_text(metrics["clean_votes"]) + "."]
    lines += [
        "",
        "| attack | eps | threat model | robust ACC % [95% CI] | fooling ratio % | votes |",
        "|---|---|---|---|---|---|",
    ]
    for a in doc.get("attacks", []):
        name = cell_label(a) + (" (sanity)" if a.get("sanity_only") else "")
        lines.append(
            f"| {name} | {a.get('eps_label', '-')} | {a.get('threat_model', 'white-box')} | "
            f"{pct(a['metrics']['robust_accuracy'])} | "
            f"{100 * a['metrics']['fooling_ratio']['value']:.1f} | "
            f"{votes_text(a['votes']) if a.get('votes') else '-'} |"
        )
    for tm, ws in (doc.get("worst_case_by_threat_model") or {}).items():
        for w in ws:
            lines.append("")
            lines.append(
                f"Worst case {tm}, {w['norm']} eps {w['eps_label']}: "
                f"{pct(w['robust_accuracy'])} % ({len(w['attacks'])} attacks)."
            )
    lines += sanity_lines(doc)
    return "\n".join(lines) + "\n"


register_report(
    "defensematrix",
    render_defense_matrix,
    "Papers' defense tables: robust accuracy % per attack cell, oblivious / adaptive",
)
register_report(
    "defensebalanced",
    render_defense_balanced,
    "The defense matrix with balanced accuracy (mean of the per-class accuracies)",
)
register_report(
    "defenses",
    render_defense_summary,
    "One row per defended run: clean bare / defended, worst cases per threat model, cost",
)
register_report(
    "defensefull",
    sections(render_defense_tables),
    "One section per defended run: configuration, cost, every attack, worst cases, votes",
    per_run=True,
)
