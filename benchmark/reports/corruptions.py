"""Corruption reports: flip probability of the perturbation sequences across runs, and a
run's full corruption section (blocks ``fp`` and ``corruptions``)."""

from __future__ import annotations

from typing import Any

from benchmark.reports.base import (
    Docs,
    pct,
    register_report,
    sections,
    source_line,
    table_head,
    table_row,
)
from benchmark.results.view import RunView


def render_fp_summary(docs: Docs) -> str:
    """One row per run (its model and defense): flip probability (%) of every sequence type,
    mFP and relative mFP."""
    runs = [RunView(d, s) for s, d in docs if d.get("corruptions", {}).get("sequences")]
    columns: dict[tuple[str, int], None] = {}
    for run in runs:
        for t in run.sequences["types"]:  # type: ignore[index]
            columns.setdefault((t["type"], t["severity"]), None)
    multi_sev = len({sev for _, sev in columns}) > 1
    head = [
        "dataset",
        "model",
        "defense",
        "n",
        *(f"{t} s{s}" if multi_sev else t for t, s in columns),
    ]
    lines = table_head([*head, "mFP", "reference", "relative mFP"])
    for run in runs:
        seq: dict[str, Any] = run.sequences  # type: ignore[assignment]
        by = {(t["type"], t["severity"]): t for t in seq["types"]}
        cells = [
            f"{100 * by[c]['flip_probability']['value']:.2f}" if c in by else "-" for c in columns
        ]
        ref = run.corruptions.get("reference_model", {}).get("model_id", "-")
        rel = seq.get("relative_mfp")
        lines.append(
            table_row(
                [
                    run.dataset,
                    run.model_id,
                    run.defense_label,
                    str(run.n),
                    *cells,
                    f"{100 * seq['mfp']:.2f}",
                    f"`{ref}`",
                    f"{rel:.2f}" if rel is not None else "-",
                ]
            )
        )
    return "\n".join(lines) + "\n"


def _sequence_lines(seq: dict[str, Any]) -> list[str]:
    """The perturbation-sequence table of a run and its mFP line."""
    lines = [
        "",
        f"Perturbation sequences, {seq['n_frames']} frames (flip probability %, 95% CI; "
        "accuracy % on the first and last frame):",
        "",
        "| type | family | severity | compare | FP % [95% CI] | reference FP % | relative FP "
        "| acc frame 0 | acc last frame |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in seq["types"]:
        ref_fp = t.get("reference_flip_probability")
        rel = t.get("relative_flip_probability")
        lines.append(
            f"| {t['type']} | {t['family']} | {t['severity']} | {t['compare']} | "
            f"{pct(t['flip_probability'])} | "
            f"{f'{100 * ref_fp:.2f}' if ref_fp is not None else '-'} | "
            f"{f'{rel:.2f}' if rel is not None else '-'} | "
            f"{100 * t['frame_accuracy'][0]:.1f} | {100 * t['frame_accuracy'][-1]:.1f} |"
        )
    fam = ", ".join(f"{k} {100 * v:.2f}" for k, v in seq["mfp_by_family"].items())
    return [*lines, "", f"mFP {100 * seq['mfp']:.2f} % (by family: {fam})."]


def _percent_of(d: dict[str, Any], key: str, name: str) -> str:
    v = (d.get(key) or {}).get(name)
    return f"{100 * v:.1f}" if v is not None else "-"


def _severity_lines(sev: dict[str, Any]) -> list[str]:
    """The accuracy-per-severity table of a run, its summary line and the skipped ones."""
    sevs = sev["severities"]
    lines = [
        "",
        "Corruptions (accuracy % per severity; CE % against the reference model):",
        "",
        "| corruption | family | " + " | ".join(f"s{s}" for s in sevs) + " | mean | CE | "
        "relative CE | balanced CE |",
        "|---|---|" + "---|" * len(sevs) + "---|---|---|---|",
    ]
    ce = sev.get("error_vs_reference") or {}
    bce = sev.get("balanced_error_vs_reference") or {}
    for r in sev["corruptions"]:
        accs = " | ".join(f"{100 * a['value']:.1f}" for a in r["accuracy"])
        lines.append(
            f"| {r['id']} | {r['family']} | {accs} | {100 * r['mean_accuracy']:.1f} | "
            f"{_percent_of(ce, 'ce', r['id'])} | {_percent_of(ce, 'relative_ce', r['id'])} | "
            f"{_percent_of(bce, 'ce', r['id'])} |"
        )
    summary = f"Mean corruption accuracy {100 * sev['mean_corruption_accuracy']:.1f} %"
    if ce.get("mce") is not None:
        summary += f"; mCE {100 * ce['mce']:.1f}, relative mCE "
        summary += f"{100 * ce['relative_mce']:.1f}" if ce.get("relative_mce") else "-"
    if bce.get("mce") is not None:
        summary += f"; balanced mCE {100 * bce['mce']:.1f} (MedMNIST-C)"
    lines += ["", summary + "."]
    if sev.get("skipped"):
        skipped = ", ".join(f"{x['id']} ({x['reason']})" for x in sev["skipped"])
        lines += ["", f"Skipped: {skipped}."]
    return lines


def render_corruption_tables(doc: dict[str, Any], source: str) -> str:
    """One run's corruption section: FP per type with CIs, accuracy per corruption/severity."""
    block = doc.get("corruptions") or {}
    cfg = doc["config"]
    lines = [
        f"### {cfg['dataset']} / {cfg['model_id']} / corruptions `{cfg.get('corruption_suite')}`",
        "",
        source_line(doc, source),
        "",
        f"Clean accuracy {pct(doc['metrics']['clean']['accuracy'])} %.",
    ]
    ref = block.get("reference_model")
    if ref:
        lines += [
            "",
            f"Reference model: `{ref['model_id']}` (sha256 `{ref['checkpoint_sha256'][:16]}`).",
        ]
    if block.get("sequences"):
        lines += _sequence_lines(block["sequences"])
    if block.get("severity"):
        lines += _severity_lines(block["severity"])
    return "\n".join(lines) + "\n"


register_report(
    "fp",
    render_fp_summary,
    "One row per run: flip probability % per perturbation sequence type, mFP, relative mFP",
)
register_report(
    "corruptions",
    sections(render_corruption_tables),
    "One section per run: sequences (FP with CIs) and accuracy per corruption and severity",
    per_run=True,
)
