"""What keeps an entry off a ranked board (docs/protocol.md, "Statuses").

Every row of a protocol board has one status, checked in this order:

* ``exploratory``: the entry has no conformant run of the protocol of its track
  (:func:`~benchmark.results.protocols.track_protocol`: ``mrb_linf_v2`` for undefended models
  and training-time defenses, ``mrb_linf_adaptive_v2`` for the others;
  :func:`~benchmark.results.conformance.protocol_problems` gives the reason, its first
  problem). Exploratory rows show the older screening figures, unranked.
* ``collapsed``: the protocol run's clean balanced accuracy has a 95 % interval (stratified
  bootstrap, :func:`~benchmark.metrics.balanced.stratified_bootstrap_balanced`) that contains
  1/K (K classes present), or one class gets at least :data:`CONSTANT_SHARE` of the clean
  predictions (column sums of the clean confusion matrix). A constant answer is robust to
  every attack by construction, so it must not win a robustness board.
* ``unreliable``: a failed sanity check (a check with a flag, or any run flag; on the adaptive
  track not the oblivious-vs-adaptive gap, which its worst case over both passes answers; the
  large-eps check is also recomputed from the sanity blocks' per-image outcomes), no
  convergence evidence (a ``convergence`` block with ``"reliable": true``; the reason names
  the first budget where the stronger APGD broke more than one still-robust image), or, on
  the adaptive track, adaptive attacks that left more images robust than the oblivious ones
  (:func:`adaptive_weaker_reason`).
* ``ranked``: everything else.

Pure Python and numpy (no torch).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmark.errors import ResultsError
from benchmark.metrics.balanced import (
    balanced_accuracy,
    contains_chance,
    stratified_bootstrap_balanced,
)
from benchmark.results.conformance import protocol_problems
from benchmark.results.naming import eps_label
from benchmark.results.outcomes import read_outcomes
from benchmark.results.protocols import (
    CONVERGENCE_MAX_CHANGED,
    LARGE_EPS_MAX_ACCURACY,
    PROTOCOLS,
    Protocol,
)
from benchmark.results.view import RunView

RANKED = "ranked"
COLLAPSED = "collapsed"
UNRELIABLE = "unreliable"
EXPLORATORY = "exploratory"
#: Statuses in the order a board lists its rows: a collapsed model last, since a constant
#: answer is robust by construction and would otherwise head a board of unranked rows.
STATUSES = (RANKED, UNRELIABLE, EXPLORATORY, COLLAPSED)
#: Share of the clean predictions one class may get before the model counts as collapsed.
CONSTANT_SHARE = 0.95


def run_problems(run: RunView, protocol: Protocol) -> list[str]:
    """Why ``run`` is not a conformant run of ``protocol`` (empty: it is)."""
    problems = protocol_problems(run.doc)
    record = run.doc.get("protocol") or {}
    if not problems and (record.get("id"), record.get("version")) != (
        protocol.id,
        protocol.version,
    ):
        problems = [f"a run of {record.get('id')} {record.get('version')}, not {protocol.id}"]
    return problems


def protocol_run(runs: list[Any], protocol: Protocol) -> tuple[Any | None, str | None]:
    """The newest conformant run of ``protocol`` among ``runs``, or None and the first problem
    of the most relevant other run (the newest that records a protocol, else the newest)."""
    ok = [r for r in runs if not run_problems(r, protocol)]
    if ok:
        return max(ok, key=lambda r: (r.created_at, r.path)), None
    if not runs:
        return None, "no run"
    recording = [r for r in runs if r.doc.get("protocol")]
    pick = max(recording or runs, key=lambda r: (r.created_at, r.path))
    return None, run_problems(pick, protocol)[0]


def clean_balanced(run: RunView) -> tuple[float, tuple[float, float], int] | None:
    """The clean balanced accuracy, its 95 % stratified bootstrap interval and the number of
    classes present; None when neither outcomes nor per-class accuracies are recorded (or the
    task is multi-label).

    A schema-1 file has no per-image outcomes, but the bootstrap depends only on each class's
    size and correct count, which its per-class accuracies give."""
    outcomes, labels = run.clean_outcomes(), run.labels
    if outcomes is None or labels is None:
        per_class = (run.clean.get("per_class_accuracy") or {}).get("per_class") or {}
        counts = [
            (int(c["n"]), round(c["value"] * c["n"]))
            for c in per_class.values()
            if c.get("n") and c.get("value") is not None
        ]
        if not counts:
            return None
        labels = np.concatenate([np.full(n, i) for i, (n, _) in enumerate(counts)])
        outcomes = np.concatenate([np.arange(n) < k for n, k in counts])
    if labels.ndim != 1 or labels.size == 0:
        return None
    value = balanced_accuracy(outcomes, labels)
    ci = stratified_bootstrap_balanced(outcomes, labels)
    return value, ci, int(np.unique(labels).size)


def collapse_reason(run: RunView) -> str | None:
    """Why the run's model counts as collapsed (None: it does not)."""
    bal = clean_balanced(run)
    if bal is not None:
        value, (low, high), k = bal
        if contains_chance((low, high), k):
            return (
                f"clean balanced accuracy {100 * value:.1f} % [{100 * low:.1f}, "
                f"{100 * high:.1f}] contains chance (1/{k} = {100 / k:.1f} %)"
            )
    cm = run.clean.get("confusion_matrix")
    if isinstance(cm, dict) and cm.get("matrix"):
        predicted = np.asarray(cm["matrix"], dtype=np.int64).sum(axis=0)
        total = int(predicted.sum())
        if total and predicted.max() >= CONSTANT_SHARE * total:
            top = int(predicted.argmax())
            names = cm.get("labels") or list(range(predicted.size))
            return (
                f"predicts class {names[top]} for {100 * predicted[top] / total:.1f} % of the "
                f"clean images (at least {100 * CONSTANT_SHARE:.0f} %)"
            )
    return None


#: A sanity check whose failure the adaptive track answers instead of being undermined by: an
#: adaptive attack far stronger than the oblivious one shows robustness from obfuscation,
#: and the adaptive protocol's worst case (over both passes) already counts the stronger one.
ANSWERED_BY_ADAPTIVE = "oblivious_vs_adaptive"


def unreliable_reason(run: RunView) -> str | None:
    """Why the run's robust figures are not reliable (None: they are)."""
    adaptive = _is_adaptive_run(run)
    failed = [
        c
        for c in run.sanity_checks
        if c.get("flag") and not (adaptive and c.get("name") == ANSWERED_BY_ADAPTIVE)
    ]
    if failed:
        return f"sanity check {failed[0].get('name')} failed: {failed[0]['flag']}"
    recomputed = _large_eps_recomputed(run)
    if recomputed:
        return recomputed
    answered = {c.get("flag") for c in run.sanity_checks if c.get("name") == ANSWERED_BY_ADAPTIVE}
    flags = [f for f in run.flags if not (adaptive and f in answered)]
    if flags:
        return f"flagged: {', '.join(flags)}"
    convergence = run.doc.get("convergence")
    if not isinstance(convergence, dict):
        return "convergence evidence not recorded"
    budgets = convergence.get("budgets") or []
    claimed = convergence.get("reliable") is True
    missing = _missing_budget(run, budgets) if claimed else None
    if missing:  # a claim of convergence without a check at every budget comes first
        return missing
    elsewhere = _other_images_checked(run, budgets)
    if elsewhere:
        return elsewhere
    changed = [b for b in budgets if int(b.get("broken") or 0) > CONVERGENCE_MAX_CHANGED]
    if changed:
        return _changed_reason(changed[0], claimed=claimed)
    if not claimed:
        return "convergence not shown (more iterations or restarts changed the result)"
    return None


def _large_eps_recomputed(run: RunView) -> str | None:
    """The large-eps check recomputed from the run's sanity blocks (checked, not trusted): per
    image the worst case over the sanity attacks of the pass the check is made for (the
    adaptive one when the run has it); a reason when they leave more than
    :data:`~benchmark.results.protocols.LARGE_EPS_MAX_ACCURACY` correct."""
    blocks = [b for b in run.doc.get("attacks") or [] if b.get("sanity_only")]
    adaptive = [b for b in blocks if b.get("threat_model") == "adaptive"]
    blocks = adaptive or blocks
    n = int((run.doc.get("data") or {}).get("n") or 0)
    correct = None
    for b in blocks:
        outcomes = read_outcomes(b.get("outcomes"), n)
        if outcomes is None:
            return f"sanity block {b.get('cell_id')} has no per-image outcomes to check"
        correct = outcomes if correct is None else correct & outcomes
    if correct is None:
        return None  # no sanity block: the conformance check names it
    accuracy = float(correct.mean()) if correct.size else 0.0
    if accuracy > LARGE_EPS_MAX_ACCURACY:
        return (
            f"sanity check large_eps_pgd failed: its attacks leave {accuracy:.1%} at 64/255 "
            f"(recomputed from the run's sanity blocks; at most {LARGE_EPS_MAX_ACCURACY:.0%})"
        )
    return None


def _changed_reason(b: dict[str, Any], *, claimed: bool) -> str:
    """The reason for a budget whose convergence check broke more than
    :data:`~benchmark.results.protocols.CONVERGENCE_MAX_CHANGED` images; ``claimed``: the run
    recorded itself as reliable all the same (checked, not trusted)."""
    if claimed:
        return (
            f"convergence not shown: at {b.get('eps_label')} the check broke "
            f"{b.get('broken')} images although the run says it converged"
        )
    sweeps = b.get("sweeps") or []
    if sweeps:  # the adaptive track: name what each sweep's last step changed
        steps = ", ".join(
            f"{w.get('sweep')} ({w.get('steps')} iterations, {w.get('eot_draws')} EOT "
            f"draws): {w.get('broken')}"
            for w in sweeps
        )
        return (
            f"convergence not shown: at {b.get('eps_label')} the sweeps broke "
            f"{b.get('broken')} of {b.get('robust_before')} images still robust "
            f"(at most {CONVERGENCE_MAX_CHANGED} may change; {steps})"
        )
    return (
        f"convergence not shown: at {b.get('eps_label')} the stronger APGD broke "
        f"{b.get('broken')} of {b.get('robust_before')} images still robust "
        f"(at most {CONVERGENCE_MAX_CHANGED} may change)"
    )


def _run_protocol(run: RunView) -> Any:
    """The registered protocol the run records (None: none, or an unknown one)."""
    record = run.doc.get("protocol") or {}
    return PROTOCOLS.get(record["id"]) if record.get("id") in PROTOCOLS else None


def _other_images_checked(run: RunView, budgets: list[dict[str, Any]]) -> str | None:
    """The check must have attacked exactly the images the run's worst case leaves robust at
    its budget (``robust_before``, :func:`~benchmark.evaluation.document.still_robust`): a check
    of other, or fewer, images shows nothing about the ranked figure (None: it did)."""
    protocol = _run_protocol(run)
    norm = protocol.norm if protocol is not None else "linf"
    for b in budgets:
        try:
            robust = run.worst_case_outcomes(norm, float(b["eps"]))
        except (KeyError, TypeError, ValueError):
            return "convergence evidence malformed: a check without its budget"
        except ResultsError:
            return f"convergence checked at {b.get('eps_label')}, where the run has no attack"
        if robust is None:
            continue  # no per-image worst case to compare (the run's other checks apply)
        if int(b.get("robust_before") or 0) != int(robust.sum()):
            return (
                f"convergence not shown: at {b.get('eps_label')} the check attacked "
                f"{b.get('robust_before')} images, but the worst case leaves {int(robust.sum())} "
                "robust"
            )
    return None


def _missing_budget(run: RunView, budgets: list[dict[str, Any]]) -> str | None:
    """A convergence block recorded as reliable must have a check at every budget of the
    run's protocol (None: it has)."""
    protocol = _run_protocol(run)
    if protocol is not None:
        for eps in protocol.budgets:
            if not any(abs(float(b.get("eps", -1)) - eps) < 1e-9 for b in budgets):
                return f"convergence not shown: no check at {eps_label(eps)}"
    return None


def _is_adaptive_run(run: RunView) -> bool:
    record = run.doc.get("protocol") or {}
    return record.get("id") in PROTOCOLS and PROTOCOLS.get(record["id"]).adaptive


def adaptive_weaker_reason(run: RunView, norm: str, eps: float) -> str | None:
    """Why an adaptive-track run's adaptive attacks failed (None: they did not): at ``eps``,
    the attacks on the whole pipeline (adaptive and black-box) left more than
    :data:`~benchmark.results.protocols.CONVERGENCE_MAX_CHANGED` images robust that the
    oblivious attacks (the undefended model's examples) broke. Seeing the defense can only
    help an attacker; an adaptive worst case above the oblivious one means the adaptive
    attack did not work (e.g. masked gradients), so the run is not ranked."""
    try:
        oblivious = run.worst_case_outcomes(norm, eps, "oblivious")
        adaptive = run.worst_case_outcomes(norm, eps, "adaptive")
    except ResultsError:  # a run without one of the passes: the conformance check says so
        return None
    if oblivious is None or adaptive is None:
        return None
    gap = int((adaptive & ~oblivious).sum())  # per image, not a difference of totals
    if gap > CONVERGENCE_MAX_CHANGED:
        return (
            f"adaptive attacks weaker than oblivious at {eps_label(eps)}: {gap} images "
            "robust against the attacks on the whole pipeline that the undefended model's "
            f"examples broke ({int(adaptive.sum())} robust against those, "
            f"{int(oblivious.sum())} against these)"
        )
    return None


__all__ = [
    "COLLAPSED",
    "CONSTANT_SHARE",
    "EXPLORATORY",
    "RANKED",
    "STATUSES",
    "UNRELIABLE",
    "adaptive_weaker_reason",
    "clean_balanced",
    "collapse_reason",
    "protocol_run",
    "run_problems",
    "unreliable_reason",
]
