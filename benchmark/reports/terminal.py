"""What the CLI prints on a terminal: an evaluation, a trained model's card, the zoo.

Each function returns the text without a trailing newline; the CLI prints it with
``typer.echo(text)``. ``--json`` output is the documents themselves and is not rendered here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.errors import ResultsError
from benchmark.metrics.balanced import balanced_accuracy, stratified_bootstrap_balanced
from benchmark.metrics.base import wilson_interval
from benchmark.results.blocks import AttackView
from benchmark.results.naming import ThreatModel
from benchmark.results.outcomes import read_outcomes
from benchmark.results.view import ANY, RunView

#: How the reports name a norm.
NORM_NAMES = {"linf": "L-inf", "l2": "L2", "l1": "L1"}

if TYPE_CHECKING:  # the zoo loads torch; these renderers only read the cards
    from benchmark.models.zoo import ZooEntry


def format_metric(metric: dict[str, Any]) -> str:
    """``0.8650  95% CI [0.8100, 0.9070]  n=200`` (``n/a (reason)`` when undefined)."""
    if metric.get("value") is None:
        return f"n/a ({metric.get('reason', 'undefined')})"
    lo, hi = metric["ci95"]
    return f"{metric['value']:.4f}  95% CI [{lo:.4f}, {hi:.4f}]  n={metric['n']}"


def _clean_lines(doc: dict[str, Any]) -> list[str]:
    """Clean scores, per-class accuracy, the defense and its cost, the confusion matrix."""
    clean = doc["metrics"]["clean"]
    lines = [f"  accuracy  {format_metric(clean['accuracy'])}"]
    lines.append(f"  AUC       {format_metric(clean['auc'])}")
    if "per_class_accuracy" in clean:
        pca = clean["per_class_accuracy"]
        lines.append(f"  balanced accuracy {pca['balanced_accuracy']:.4f}")
        for name, m in pca["per_class"].items():
            lines.append(f"    {name[:40]:<40} {format_metric(m)}")
    if doc.get("defense"):
        d, base = doc["defense"], doc["metrics"]["undefended_clean"]
        lines.append(
            f"  defense {d['id']} ({d['kind']}, threat models {', '.join(d['threat_models'])}); "
            f"undefended accuracy {format_metric(base['accuracy'])}"
        )
        c = d["cost"]
        lines.append(
            f"  inference {c['defended_ms_per_image']:.2f} ms/image vs {c['base_ms_per_image']:.2f}"
            f" bare (x{c['overhead']:.1f})"
        )
    if "confusion_matrix" in clean:
        lines.append("  confusion matrix (rows: true, columns: predicted)")
        for row in clean["confusion_matrix"]["matrix"]:
            lines.append("    " + " ".join(f"{v:5d}" for v in row))
    return lines


#: Per sanity check (:mod:`benchmark.evaluation.sanity`): what its failure means and what to
#: run next. Printed under every failed check.
SANITY_ADVICE: dict[str, tuple[str, str]] = {
    "eps_monotonicity": (
        "accuracy rose with a larger budget: the attack is not converging (or masked gradients "
        "mislead it), so the figures at the larger eps understate it",
        "rerun the attack with more steps and restarts (e.g. --attacks pgd,apgd_ce)",
    ),
    "iterative_vs_single_step": (
        "a one-step attack beat an iterative one at the same eps: the iterative attack is stuck "
        "(too few steps, a bad step size or masked gradients)",
        "add apgd_ce (step-size free) and raise the steps of the iterative attack",
    ),
    "large_eps_pgd": (
        "an unbounded-looking budget (64/255) leaves images classified correctly: gradients do "
        "not lead the attack anywhere, the signature of gradient masking",
        "run an adaptive evaluation (--threat-model adaptive: BPDA/EOT) and a query attack "
        "(--attacks square)",
    ),
    "whitebox_vs_blackbox": (
        "a query attack that sees no gradient did better than the gradient attacks: the "
        "gradients are masked or obfuscated",
        "rerun with an adaptive threat model (BPDA for non-differentiable steps, EOT for "
        "randomness) before trusting the robust accuracy",
    ),
    "noise_vs_attack": (
        "random noise of the same size hurt the model at least as much as the attack: the "
        "attack is not finding adversarial directions",
        "check the attack's step size and steps, then add apgd_ce and square",
    ),
    "oblivious_vs_adaptive": (
        "the defense holds only against an attacker who ignores it: the adaptive attack breaks "
        "far more images, so the oblivious figure overstates robustness",
        "report the adaptive (or 'any') worst case; rerun adaptive with more EOT samples "
        "(--eot-samples) if the defense is randomized",
    ),
}


def _interval(metric: dict[str, Any] | None) -> str:
    """``0.5312 [0.4500, 0.6100]`` (``n/a`` when absent)."""
    if not metric or metric.get("value") is None:
        return "n/a"
    lo, hi = metric["ci95"]
    return f"{metric['value']:.4f} [{lo:.4f}, {hi:.4f}]"


def _balanced(correct: np.ndarray | None, labels: np.ndarray | None, seed: int) -> str:
    """Balanced accuracy with its stratified bootstrap interval from per-image outcomes (``n/a``
    for a multi-label task or a schema-1 file)."""
    if correct is None or labels is None or labels.ndim != 1 or not len(correct):
        return "n/a"
    value = balanced_accuracy(correct, labels)
    lo, hi = stratified_bootstrap_balanced(correct, labels, seed=seed)
    return f"{value:.4f} [{lo:.4f}, {hi:.4f}]"


def _accuracy(correct: np.ndarray) -> str:
    """Accuracy of per-image outcomes with its Wilson interval."""
    k, n = int(correct.sum()), len(correct)
    lo, hi = wilson_interval(k, n)
    return f"{k / max(n, 1):.4f} [{lo:.4f}, {hi:.4f}]"


def _figures(correct: np.ndarray | None, labels: np.ndarray | None, seed: int) -> str:
    """``balanced 0.50 [..], accuracy 0.53 [..]`` of per-image outcomes."""
    if correct is None:
        return "n/a"
    return f"balanced {_balanced(correct, labels, seed)}, accuracy {_accuracy(correct)}"


def _budget(norm: str, eps_label: str) -> str:
    return f"{NORM_NAMES.get(norm, norm)} {eps_label}"


def _attack_lines(doc: dict[str, Any]) -> list[str]:
    """A line per attack block (with a defense: the defended and undefended figures of the
    same examples), the worst case per threat model (balanced beside plain, undefended beside
    defended) and the sanity checks with what a failure means (none without attacks)."""
    if not doc.get("attacks"):
        return []
    run = RunView(doc)
    seed = int(doc["config"].get("seed", 0))
    labels = run.labels if run.labels is not None and run.labels.ndim == 1 else None
    lines = [
        "  attack                                   robust acc  fooling  "
        "median Linf*255  median L2   time"
    ]
    for a, view in zip(doc["attacks"], run.attacks, strict=True):
        m, p = a["metrics"], a["perturbation"]
        tag = " (sanity)" if a.get("sanity_only") else ""
        if a.get("threat_model"):
            tag += f" [{a['threat_model']}]"
        lines.append(
            f"    {a['cell_id'][:38] + tag:<38} {m['robust_accuracy']['value']:9.4f} "
            f"{m['fooling_ratio']['value']:8.4f} {255 * p['linf_median']:15.2f} "
            f"{p['l2_median']:9.4f} {a['timing']['seconds']:6.1f}s"
            f"{' cached' if a['timing']['cached'] else ''}"
        )
        if run.defended and not a.get("sanity_only"):
            lines.append(
                f"      defended   {_figures(view.outcomes(), labels, seed)}"
                + (f"  n={m['robust_accuracy']['n']}")
            )
            und = a.get("undefended")
            if und is not None:
                bal = und.get("robust_balanced_accuracy")
                lines.append(
                    f"      undefended balanced {_interval(bal)}, accuracy "
                    f"{_interval(und['robust_accuracy'])}  (same examples, no defense)"
                )
    lines += _worst_case_lines(doc, run, labels, seed)
    for c in doc["sanity_checks"]:
        lines.append(
            f"  sanity {c['name']:<26} {c['status']}{'  -> ' + c['flag'] if c['flag'] else ''}"
        )
        if c["status"] == "fail":
            meaning, step = _advice(c)
            lines.append(f"      means: {meaning}")
            lines.append(f"      next:  {step}")
    return lines


#: What a failed large-eps check of PGD-10 alone (a run without a protocol, or version 1) may
#: also mean, and the check to make first.
PGD10_ONLY_ADVICE = (
    "or PGD-10 is too weak here: its fixed steps stall on a flat loss (a model that answers "
    "one class for most images), which APGD's adaptive step size does not",
    "rerun at 64/255 with a step-size-free attack (--attacks apgd_ce --eps 64/255 "
    "--attack-param steps=100, part of the protocols' sanity check from version 2); if "
    "images survive it too, ",
)


def _advice(check: dict[str, Any]) -> tuple[str, str]:
    """What a failed check means and what to run next; a large-eps check that ran PGD-10 only
    first points at the stronger attack the protocols run from version 2."""
    meaning, step = SANITY_ADVICE.get(
        check["name"], (check.get("description", ""), "rerun with stronger attacks")
    )
    details = check.get("details")
    attack = details.get("attack", "PGD-10") if isinstance(details, dict) else "PGD-10"
    if check["name"] == "large_eps_pgd" and "APGD" not in attack:
        more, first = PGD10_ONLY_ADVICE
        return f"{meaning}, {more}", first + step
    return meaning, step


def _undefended_outcomes(run: RunView, members: list[AttackView]) -> np.ndarray | None:
    """Per image, robust on the bare model: correct clean without the defense and under every
    member's examples (their ``undefended`` outcomes); None when a member lacks them."""
    bare = run.bare_clean.get("outcomes")
    if bare is None or not members:
        return None
    robust = read_outcomes(bare, run.n)
    for a in members:
        und = a.raw.get("undefended")
        if und is None or robust is None:
            return None
        robust = robust & read_outcomes(und["outcomes"], run.n)
    return robust


def _worst_case_lines(
    doc: dict[str, Any], run: RunView, labels: np.ndarray | None, seed: int
) -> list[str]:
    """``worst case, oblivious, L-inf 2/255: balanced ..., accuracy ...`` per threat model and
    budget; with a defense the bare model's worst case under the same budget's oblivious
    attacks beside it (what the defense gains)."""
    by = doc.get("worst_case_by_threat_model")
    groups = by if by else {"white-box": doc["worst_case"]}
    lines = []
    for tm, cases in groups.items():
        name = "any threat model" if tm == ANY else tm
        for w in cases:
            try:
                correct = run.worst_case_outcomes(w["norm"], w["eps"], tm if by else None)
            except ResultsError:
                correct = None
            figures = (
                _figures(correct, labels, seed)
                if correct is not None
                else f"accuracy {_interval(w['robust_accuracy'])}"
            )
            lines.append(
                f"  worst case, {name}, {_budget(w['norm'], w['eps_label'])}: {figures}"
                f"  n={w['robust_accuracy']['n']}"
            )
            if by:
                members = run.worst_case_members(w["norm"], w["eps"], ThreatModel.OBLIVIOUS)
                bare = _undefended_outcomes(run, members)
                if bare is not None:
                    lines.append(
                        f"    undefended (same oblivious attacks, no defense): "
                        f"{_figures(bare, labels, seed)}"
                    )
    return lines


def corruption_lines(block: dict[str, Any] | None) -> list[str]:
    """Flip probabilities of the sequences and accuracy per corruption (none without)."""
    if not block:
        return []
    lines = []
    seq = block.get("sequences")
    if seq:
        lines.append(f"  perturbation sequences ({seq['n_frames']} frames): flip probability")
        for t in seq["types"]:
            rel = t.get("relative_flip_probability")
            lines.append(
                f"    {t['id']:<20} sev {t['severity']}  FP {format_metric(t['flip_probability'])}"
                + (f"  relative {rel:.2f}" if rel is not None else "")
            )
        lines.append(
            f"  mFP {seq['mfp']:.4f}"
            + (f"  relative mFP {seq['relative_mfp']:.2f}" if seq.get("relative_mfp") else "")
        )
    sev = block.get("severity")
    if sev:
        lines.append(f"  corruptions: accuracy at severities {sev['severities']}")
        for r in sev["corruptions"]:
            accs = " ".join(f"{a['value']:.3f}" for a in r["accuracy"])
            lines.append(f"    {r['id']:<20} {accs}  mean {r['mean_accuracy']:.4f}")
        lines.append(f"  mean corruption accuracy {sev['mean_corruption_accuracy']:.4f}")
        ce = sev.get("error_vs_reference")
        if ce and ce["mce"] is not None:
            lines.append(
                f"  mCE {100 * ce['mce']:.1f}  relative mCE {100 * (ce['relative_mce'] or 0):.1f}"
            )
    return lines


def render_evaluation(
    doc: dict[str, Any], path: Path | str, *, dataset: str | None = None, split: str | None = None
) -> str:
    """``bench evaluate``'s report of a results document written to ``path``.

    Args:
        doc: the results document.
        path: where it was written (the last line names it).
        dataset: the dataset as the user named it (default: the run's config).
        split: the split as the user named it (default: the run's config).
    """
    cfg = doc["config"]
    lines = [
        f"{cfg['model_id']} on {dataset or cfg['dataset']}/{split or doc['data']['split']} "
        f"(n={doc['data']['n']})"
    ]
    lines += _clean_lines(doc)
    lines += _attack_lines(doc)
    lines += corruption_lines(doc.get("corruptions"))
    lines.append(f"wrote {path}")
    return "\n".join(lines)


def render_train_card(card: dict[str, Any], path: Path | str) -> str:
    """``bench train``'s report of the model card of a trained model stored at ``path``."""
    test = card["metrics"]["test"]
    lines = [
        f"model    {card['model_id']}  ({path})",
        f"epochs   {card['epochs']} (selected epoch {card['best_epoch']}: "
        f"{card['recipe']['selection']}), {card['training_time_seconds'] / 60:.1f} min",
    ]
    if card.get("defense"):
        params = ", ".join(f"{k}={v}" for k, v in card["defense"]["params"].items())
        lines.append(f"defense  {card['defense']['id']} ({params})")
    lines.append(f"test ACC {format_metric(test['acc'])}")
    lines.append(f"test AUC {format_metric(test['auc'])}")
    lines.append(f"sha256   {card['checkpoint']['sha256']}")
    return "\n".join(lines)


def render_zoo_list(entries: list[ZooEntry], root: Path | str) -> str:
    """``bench zoo list``: a line per model with its test scores (a hint when ``root``, the
    zoo's folder, holds none)."""
    if not entries:
        return f"the zoo {root} is empty; train a model with `bench train`"
    lines = []
    for e in entries:
        t = e.card["metrics"]["test"]
        auc = t["auc"]["value"]
        lines.append(
            f"{e.model_id:<44} test ACC {t['acc']['value']:.4f}  AUC "
            f"{'n/a' if auc is None else f'{auc:.4f}'}  epochs {e.card['epochs']}"
        )
    return "\n".join(lines)
