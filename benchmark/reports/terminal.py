"""What the CLI prints on a terminal: an evaluation, a trained model's card, the zoo.

Each function returns the text without a trailing newline; the CLI prints it with
``typer.echo(text)``. ``--json`` output is the documents themselves and is not rendered here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

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


def _attack_lines(doc: dict[str, Any]) -> list[str]:
    """A line per attack block, the worst cases and the sanity checks (none without attacks)."""
    if not doc.get("attacks"):
        return []
    lines = [
        "  attack                                   robust acc  fooling  "
        "median Linf*255  median L2   time"
    ]
    for a in doc["attacks"]:
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
    for w in doc["worst_case"]:
        lines.append(
            f"  worst case {w['norm']} eps {w['eps_label']}: {format_metric(w['robust_accuracy'])}"
        )
    for c in doc["sanity_checks"]:
        lines.append(
            f"  sanity {c['name']:<26} {c['status']}{'  -> ' + c['flag'] if c['flag'] else ''}"
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
