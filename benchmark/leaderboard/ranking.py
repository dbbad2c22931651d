"""The leaderboards: entries listed per dataset and board, each row with a status.

A **board** is a dataset and a threat model: L-inf at one eps, or corruptions.

* The L-inf boards of the current protocol
  (:data:`~benchmark.results.protocols.CURRENT_PROTOCOL`, ``mrb_linf_v2``: 2/255 and 8/255)
  rank only the rows whose status is ``ranked`` (:mod:`benchmark.leaderboard.statuses`):
  conformant protocol runs (undefended models and training-time defenses under
  ``mrb_linf_v2``, preprocessing, wrapper and randomized defenses under its adaptive-track
  partner ``mrb_linf_adaptive_v2``, see
  :func:`~benchmark.results.protocols.track_protocol`), all on the same images, ranked by their
  balanced worst-case
  accuracy with paired tests and shared ranks
  (:func:`~benchmark.metrics.ranks.rank_board`, ``metric="balanced"``), recomputed from the
  per-image outcomes of the results files. Every other row is listed without a rank, with
  its status and the reason; an exploratory row shows the older screening figures (the lowest
  balanced worst case over the entry's runs, under the strongest threat model each run has).
* Other L-inf budgets (4/255) are screening boards: every row exploratory (or collapsed).
* On every L-inf board a collapsed model (as on the corruption boards) is marked collapsed
  and listed last, whatever its figures: a constant answer is robust by construction.
* The corruption boards (:mod:`benchmark.leaderboard.corruption_board`) rank conformant runs
  of the corruption protocol (``mrb_corruption_v1``) by their mean corruption balanced
  accuracy, with paired tests on the per-image outcomes; every other corruption run is listed
  unranked; a collapsed model is marked collapsed and listed last.
"""

from __future__ import annotations

from typing import Any

from benchmark.leaderboard.corruption_board import corruption_board
from benchmark.leaderboard.rows import Board, Row, row_order
from benchmark.leaderboard.runs import Entry, Run, entry_facts
from benchmark.leaderboard.statuses import (
    COLLAPSED,
    EXPLORATORY,
    RANKED,
    UNRELIABLE,
    adaptive_weaker_reason,
    collapse_reason,
    protocol_run,
    unreliable_reason,
)
from benchmark.metrics.balanced import balanced_accuracy, stratified_bootstrap_balanced
from benchmark.metrics.base import wilson_interval
from benchmark.metrics.ranks import rank_board
from benchmark.results.blocks import AttackView
from benchmark.results.naming import ThreatModel, eps_label
from benchmark.results.protocols import CURRENT_PROTOCOL, Protocol, track_protocol

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


def _screening_row(entry: Entry, eps: float) -> Row | None:
    """The entry's screening figures at ``eps`` (None without a worst case at ``eps``), as an
    exploratory row: the key is the lowest balanced worst case over the entry's runs (each
    under its strongest threat model), the plain worst case of the same block beside it."""
    use = _use(entry)
    # Per run at this eps: (balanced or None, plain, run, threat model, worst case).
    found: list[tuple[float | None, float, Run, ThreatModel, Any]] = []
    blocks: list[AttackView] = []
    for run in use:
        tm = run.strongest_threat_model()
        for w in run.worst_cases():
            if w.at_linf(eps):
                found.append((w.robust_balanced_accuracy, w.robust_accuracy.value, run, tm, w))
        blocks += [a for a in _counted_blocks(run, eps) if a.bounded]
    cells = _lowest_per_cell(blocks)  # lowest accuracy of a cell over the runs
    if not found:
        return None
    missing = [f for f in found if f[0] is None]
    if missing:
        # A run without the balanced figure might hold the lowest one: no key; the lowest
        # plain worst case is shown.
        key = None
        _, plain, run, tm, w = min(missing, key=lambda f: f[1])
        plain = min(f[1] for f in found)
    else:
        # The key and the plain figure beside it come from the same run's block.
        key, plain, run, tm, w = min(found, key=lambda f: (f[0], f[1]))
    fooling = [a.fooling_ratio.value for r in use for a in _counted_blocks(r, eps)]
    details = {
        **entry_facts(entry),
        "fooling_ratio": max(fooling) if fooling else None,
        "accuracy": plain,
        "screening_note": None,
    }
    # What already kept the row out of the older screening ranks (shown beside the status).
    if tm is ThreatModel.OBLIVIOUS:
        details["screening_note"] = "evaluated only obliviously"
    elif missing:
        details["screening_note"] = f"the {run.suite} run predates the balanced worst case"
    metric = w.robust_accuracy
    return Row(
        entry,
        key,
        n=metric.n,
        accuracy=plain,
        accuracy_ci95=metric.ci95 if metric.value == plain else None,
        cells=cells,
        threat_model=tm.value,
        source=run,
        details=details,
    )


def _lowest_per_cell(blocks: list[AttackView]) -> dict[str, float]:
    """Each attack column's figure: the lowest accuracy of the blocks of that name (an
    adaptive-track run has one per pass under the same name; the column shows the stronger,
    as the worst case does)."""
    cells: dict[str, float] = {}
    for a in blocks:
        acc = a.robust_accuracy.value
        cells[a.name] = min(acc, cells.get(a.name, acc))
    return cells


def _protocol_row(entry: Entry, run: Run, eps: float, protocol: Protocol) -> Row | None:
    """The row of a conformant protocol run at ``eps``, its figures recomputed from the
    per-image outcomes, with its status (None: the run has no single-label outcomes)."""
    labels = run.labels
    # The protocol's own budget: the board's eps is rounded, and the worst case takes the
    # attacks at that budget or below.
    budget = next(b for b in protocol.budgets if abs(b - eps) < 1e-9)
    robust = run.worst_case_outcomes(protocol.norm, budget)
    if robust is None or labels is None or labels.ndim != 1:
        return None
    k, n = int(robust.sum()), int(robust.size)
    blocks = [a for a in run.attack_cells() if a.at_linf(eps) and a.bounded]
    details = {
        **entry_facts(entry),
        "clean": run.clean_accuracy.value,
        "fooling_ratio": max((a.fooling_ratio.value for a in blocks), default=None),
        "accuracy": k / n,
    }
    row = Row(
        entry,
        balanced_accuracy(robust, labels),
        ci95=stratified_bootstrap_balanced(robust, labels),
        n=n,
        accuracy=k / n,
        accuracy_ci95=wilson_interval(k, n),
        protocol=f"{protocol.id} {protocol.version}",
        cells=_lowest_per_cell(blocks),
        threat_model=run.strongest_threat_model().value,
        source=run,
        details=details,
        outcomes=robust,
    )
    collapsed = collapse_reason(run)
    unreliable = None
    if not collapsed:
        unreliable = unreliable_reason(run) or (
            adaptive_weaker_reason(run, protocol.norm, budget) if protocol.adaptive else None
        )
    if collapsed:
        row.status, row.reason = COLLAPSED, collapsed
    elif unreliable:
        row.status, row.reason = UNRELIABLE, unreliable
    else:
        row.status = RANKED
    return row


def _linf_row(entry: Entry, eps: float, protocol: Protocol | None) -> Row | None:
    """The entry's row on the L-inf ``eps`` board of ``protocol`` (None: a screening board)."""
    screening = _screening_row(entry, eps)
    collapsed = collapse_reason(screening.source) if screening is not None else None
    if screening is not None and collapsed:
        # A constant answer is robust by construction: marked on every board, whether or not
        # a protocol ranks it, and listed last.
        screening.status, screening.reason = COLLAPSED, collapsed
    if protocol is None:
        if screening is not None and not collapsed:
            screening.reason = (
                f"L-inf {eps_label(eps)} is a screening board: no protocol ranks this budget"
            )
        return screening
    protocol = track_protocol(protocol, entry.defense_block().get("kind"))
    run, reason = protocol_run(entry.runs, protocol)
    if run is not None:
        row = _protocol_row(entry, run, eps, protocol)
        if row is not None:
            return row
        reason = "the protocol run has no single-label per-image outcomes"
    if screening is not None and not collapsed:
        screening.reason = reason
    return screening


def _other_images(reference: Run, run: Run) -> str | None:
    """Why ``run`` was not scored on the images of ``reference`` (None: the same images, by
    :attr:`~benchmark.results.view.RunView.images_key`)."""
    if reference.images_key == run.images_key:
        return None
    if reference.doc["data"].get("sha256") != run.doc["data"].get("sha256"):
        return f"scored on other data than {reference.path} (data sha256 differs)"
    return f"scored on other images than {reference.path} (split or indices differ)"


def _rank_protocol_rows(rows: list[Row]) -> None:
    """Rank the ``ranked`` rows with paired tests, after checking they share their images.

    The reference images are those most of the board's protocol runs were scored on (ties:
    the group holding the oldest run), so one run on other data cannot push every other entry
    off the ranks by being first; a run on other images is made exploratory."""
    candidates = sorted(
        (r for r in rows if r.ranked), key=lambda r: (r.source.created_at, r.source.path)
    )
    if not candidates:
        return
    groups: dict[tuple, list[Row]] = {}
    for r in candidates:
        groups.setdefault(r.source.images_key, []).append(r)
    majority = max(groups.values(), key=len)  # max keeps the first (oldest) group on a tie
    reference = majority[0].source
    same = []
    for r in candidates:
        why = _other_images(reference, r.source)
        if why:
            r.status, r.reason = EXPLORATORY, why
        else:
            same.append(r)
    by = {r.entry.key: r for r in same}
    for b in rank_board(
        {k: r.outcomes for k, r in by.items()}, reference.labels, metric="balanced"
    ):
        by[b.name].take_rank(b)


def linf_board(
    dataset: str, eps: float, entries: list[Entry], protocol: Protocol | None = CURRENT_PROTOCOL
) -> Board:
    """The L-inf ``eps`` board of ``dataset``: every entry with a figure at ``eps`` (or a
    protocol run), with its status; when ``eps`` is a budget of ``protocol``, its ranked rows
    are ranked with paired tests (see the module docstring), else every row is exploratory
    (a collapsed model collapsed, on every board).

    Balanced, because the test sets are unbalanced (62.5 % pneumonia in PneumoniaMNIST): a
    model that answers the majority class for every attacked image keeps a high plain
    accuracy but scores 1/K balanced."""
    if protocol is not None and not any(abs(eps - b) < 1e-9 for b in protocol.budgets):
        protocol = None
    rows: list[Row] = []
    columns: list[str] = []
    for e in entries:
        row = _linf_row(e, eps, protocol) if e.dataset == dataset else None
        if row is None:
            continue
        columns += [name for name in row.cells if name not in columns]
        rows.append(row)
    _rank_protocol_rows(rows)
    rows.sort(key=row_order)
    present = {_classes_present(r.source) for r in rows if r.source is not None} - {0}
    chance = 1.0 / max(present) if present else None
    return Board(dataset, "linf", eps, rows, columns, chance, protocol)


def _classes_present(run: Run) -> int:
    """How many classes the run's test subset contains (those balanced accuracy averages)."""
    per_class = (run.clean.get("per_class_accuracy") or {}).get("per_class", {})
    return sum(1 for c in per_class.values() if c.get("n", 0) > 0)


def boards(entries: list[Entry], protocol: Protocol | None = CURRENT_PROTOCOL) -> list[Board]:
    """Every board: per dataset, one per L-inf budget with figures and one for corruptions."""
    out: list[Board] = []
    budgets = _linf_budgets(entries)
    for dataset in sorted({e.dataset for e in entries}):
        for eps in sorted(budgets.get(dataset, ())):
            out.append(linf_board(dataset, eps, entries, protocol))
        cb = corruption_board(dataset, entries)
        if cb is not None:
            out.append(cb)
    return out
