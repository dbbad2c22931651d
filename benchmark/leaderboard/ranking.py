"""The leaderboards: entries ranked per dataset and threat model.

A **leaderboard** is a dataset and a threat model: L-inf at one eps (ranked by the best known
balanced worst-case robust accuracy: the lowest over the entry's runs, under the strongest
threat model each run has, with plain worst-case accuracy beside it), or corruptions (ranked
by mean flip probability, lower first). A defended run evaluated only obliviously is listed
but not ranked: it makes no claim against an attacker who knows the defense.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchmark.leaderboard.runs import Entry, Run, entry_facts
from benchmark.results.blocks import AttackView
from benchmark.results.naming import ThreatModel, eps_label


@dataclass
class Row:
    """One entry's line in one leaderboard."""

    entry: Entry
    key_value: float | None
    ranked: bool
    rank: int | None = None
    cells: dict[str, float] = field(default_factory=dict)
    threat_model: str = ""
    source: Run | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Board:
    """A leaderboard: one dataset and one threat model."""

    dataset: str
    kind: str  # "linf" or "corruptions"
    eps: float | None
    rows: list[Row]
    columns: list[str]
    chance: float | None = None
    """L-inf boards: the balanced score of a constant answer (1/K for K classes in the test
    subset), which is robust to every attack."""

    @property
    def slug(self) -> str:
        if self.kind == "corruptions":
            return f"{self.dataset}--corruptions"
        return f"{self.dataset}--linf-{eps_label(self.eps or 0).replace('/', '-')}"

    @property
    def title(self) -> str:
        if self.kind == "corruptions":
            return "corruptions"
        return f"L-inf {eps_label(self.eps or 0)}"

    @property
    def latest(self) -> str:
        dates = [r.source.created_at for r in self.rows if r.source is not None]
        return max(dates) if dates else ""


LINF_BOARDS = (2 / 255, 4 / 255, 8 / 255)
"""The L-inf budgets that get a leaderboard (other budgets show on the entry pages)."""


def _linf_budgets(entries: list[Entry]) -> dict[str, set[float]]:
    out: dict[str, set[float]] = {}
    for e in entries:
        for run in e.runs:
            for w in run.worst_cases():
                if w.norm == "linf" and any(abs(w.eps - b) < 1e-9 for b in LINF_BOARDS):
                    out.setdefault(e.dataset, set()).add(round(w.eps, 10))
    return out


def _counts(block: AttackView, strongest: ThreatModel) -> bool:
    """Whether an attack block counts for a run evaluated up to ``strongest``: under an
    adaptive evaluation every attack of the defended run (the ``any`` worst case the run is
    ranked by), else the blocks of that threat model's worst case (oblivious: oblivious and
    transfer; white-box: white-box)."""
    if strongest is ThreatModel.ADAPTIVE:
        return block.threat_model is not ThreatModel.WHITE_BOX
    return strongest in block.threat_model.summary_groups


def _counted_blocks(run: Run, eps: float) -> list[AttackView]:
    """The run's non-sanity L-inf attack blocks at ``eps`` that count for its threat model."""
    strongest = run.strongest_threat_model()
    return [a for a in run.attack_cells() if a.at_linf(eps) and _counts(a, strongest)]


def _use(entry: Entry) -> list[Run]:
    """The entry's runs that count: an adaptive evaluation supersedes oblivious-only runs."""
    strongest = {r.strongest_threat_model() for r in entry.runs}
    return [
        r
        for r in entry.runs
        if ThreatModel.ADAPTIVE not in strongest
        or r.defended is False
        or r.strongest_threat_model() is ThreatModel.ADAPTIVE
    ]


def _linf_row(entry: Entry, eps: float) -> Row | None:
    """The entry's row on the L-inf ``eps`` board (None without a worst case at ``eps``)."""
    use = _use(entry)
    # Per run at this eps: (balanced or None, plain, run, threat model).
    found: list[tuple[float | None, float, Run, ThreatModel]] = []
    cells: dict[str, float] = {}
    for run in use:
        tm = run.strongest_threat_model()
        for w in run.worst_cases():
            if w.at_linf(eps):
                found.append((w.robust_balanced_accuracy, w.robust_accuracy.value, run, tm))
        for a in _counted_blocks(run, eps):
            if a.bounded:  # lowest accuracy of a cell over the runs
                acc = a.robust_accuracy.value
                cells[a.name] = min(acc, cells.get(a.name, acc))
    if not found:
        return None
    missing = [f for f in found if f[0] is None]
    if missing:
        # A run without the balanced figure might hold the lowest one: no key; the lowest
        # plain worst case is shown and the row names the run to re-run.
        key = None
        run, tm = missing[0][2], missing[0][3]
        plain = min(f[1] for f in found)
    else:
        # The key and the plain figure beside it come from the same run's block.
        key, plain, run, tm = min(found, key=lambda f: (f[0], f[1]))
    fooling = [a.fooling_ratio.value for r in use for a in _counted_blocks(r, eps)]
    details = {
        **entry_facts(entry),
        "fooling_ratio": max(fooling) if fooling else None,
        "accuracy": plain,
        "unranked_reason": None,
    }
    if tm is ThreatModel.OBLIVIOUS:
        details["unranked_reason"] = "evaluated only obliviously"
    elif missing:
        details["unranked_reason"] = (
            f"the {run.suite} run predates the balanced worst case: re-run it"
        )
    ranked = details["unranked_reason"] is None
    return Row(entry, key, ranked, cells=cells, threat_model=tm.value, source=run, details=details)


def linf_board(dataset: str, eps: float, entries: list[Entry]) -> Board:
    """The L-inf ``eps`` leaderboard of ``dataset``. An entry's key is its best known balanced
    worst case: the lowest, over its runs (each under its strongest threat model), of the
    worst-case robust accuracy at ``eps`` averaged per class. The plain worst-case accuracy of
    the same run is shown beside it and breaks ties.

    Balanced, because the test sets are unbalanced (62.5 % pneumonia in PneumoniaMNIST): a
    defended model that answers the majority class for every attacked image keeps a high plain
    accuracy but scores 1/K balanced. An entry with a run at ``eps`` that predates the
    balanced figure is listed without a rank (that run might hold the lowest one), as is a
    defense evaluated only obliviously."""
    rows: list[Row] = []
    columns: list[str] = []
    for e in entries:
        row = _linf_row(e, eps) if e.dataset == dataset else None
        if row is None:
            continue
        columns += [name for name in row.cells if name not in columns]
        rows.append(row)
    _rank(rows, descending=True, tie="accuracy")
    present = {_classes_present(r.source) for r in rows if r.source is not None} - {0}
    chance = 1.0 / max(present) if present else None
    return Board(dataset, "linf", eps, rows, columns, chance)


def _classes_present(run: Run) -> int:
    """How many classes the run's test subset contains (those balanced accuracy averages)."""
    per_class = (run.clean.get("per_class_accuracy") or {}).get("per_class", {})
    return sum(1 for c in per_class.values() if c.get("n", 0) > 0)


def corruption_board(dataset: str, entries: list[Entry]) -> Board | None:
    """The corruption leaderboard of ``dataset``, ranked by mFP (lower first)."""
    rows: list[Row] = []
    for e in entries:
        if e.dataset != dataset:
            continue
        for run in e.runs:
            seq, sev = run.sequences, run.severity
            if not seq and not sev:
                continue
            details = {
                "mfp": seq["mfp"] if seq else None,
                "relative_mfp": seq.get("relative_mfp") if seq else None,
                "corruption_accuracy": sev["mean_corruption_accuracy"] if sev else None,
                "suite": run.config.get("corruption_suite"),
            }
            key = details["mfp"]
            details = {**entry_facts(e), **details}
            rows.append(Row(e, key, key is not None, source=run, details=details))
    if not rows:
        return None
    _rank(rows, descending=False)
    return Board(dataset, "corruptions", None, rows, [])


def _rank(rows: list[Row], *, descending: bool, tie: str | None = None) -> None:
    """Sort ranked rows by key, then by ``details[tie]`` (rows equal on both share a rank),
    then the unranked ones the same way."""

    def value(v: float | None) -> float:
        v = v if v is not None else (-1.0 if descending else 2.0)
        return -v if descending else v

    def order(r: Row) -> tuple:
        second = value(r.details.get(tie)) if tie else 0.0
        return (not r.ranked, value(r.key_value), second, r.entry.key)

    rows.sort(key=order)
    rank, previous = 0, None
    for i, r in enumerate(rows):
        if not r.ranked:
            continue
        current = (r.key_value, r.details.get(tie) if tie else None)
        if current != previous:
            rank, previous = i + 1, current
        r.rank = rank


def boards(entries: list[Entry]) -> list[Board]:
    """Every leaderboard: per dataset, one per L-inf budget and one for corruptions."""
    out: list[Board] = []
    budgets = _linf_budgets(entries)
    for dataset in sorted({e.dataset for e in entries}):
        for eps in sorted(budgets.get(dataset, ())):
            out.append(linf_board(dataset, eps, entries))
        cb = corruption_board(dataset, entries)
        if cb is not None:
            out.append(cb)
    return out
