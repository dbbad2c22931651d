"""Our standard models beside MedMNIST v2's Table 3 (the reference 28 px ResNets).

The issue of a trusted zoo is whether our recipes train what the field expects: per dataset and
architecture that the paper reports, the mean and spread of our seeds' test ACC and AUC beside
the paper's, how many of our checkpoints' 95 % intervals hold the paper's value, and whether
the epoch budget bound the run (the epoch kept by validation AUC is the last one trained: the
curve was still rising, so a longer budget might have helped) or not (it levelled off before).
The reference numbers are data (``medmnist_v2.json``, with their source), not prose.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from benchmark.reports.base import mean_sd

TABLE = Path(__file__).with_name("medmnist_v2.json")


@cache
def reference() -> dict[str, Any]:
    """The paper's Table 3 rows (``medmnist_v2.json``)."""
    return json.loads(TABLE.read_text(encoding="utf-8"))


def _inside(metric: dict[str, Any], value: float) -> bool:
    low, high = metric["ci95"]
    return low <= value <= high


def comparison_rows(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per reference (dataset, arch, size) with our standard cards of that recipe.

    ``cards``: model cards of standard (undefended) models. A reference row without any card
    of ours is returned with ``n = 0`` (not trained yet).
    """
    rows = []
    for ref in reference()["rows"]:
        ours = [
            c
            for c in cards
            if c.get("defense") is None
            and (c["dataset"], c["arch"], c["image_size"])
            == (ref["dataset"], ref["arch"], ref["size"])
        ]
        row: dict[str, Any] = {**ref, "n": len(ours), "seeds": sorted(c["seed"] for c in ours)}
        if ours:
            acc = [c["metrics"]["test"]["acc"] for c in ours]
            auc = [c["metrics"]["test"]["auc"] for c in ours]
            row.update(
                acc_ours=[m["value"] for m in acc],
                auc_ours=[m["value"] for m in auc],
                acc_inside=sum(_inside(m, ref["acc"]) for m in acc),
                auc_inside=sum(_inside(m, ref["auc"]) for m in auc),
                epochs=sorted({int(c["epochs"]) for c in ours}),
                budget_bound=sum(int(c["best_epoch"]) >= int(c["epochs"]) for c in ours),
                best_epochs=sorted(int(c["best_epoch"]) for c in ours),
            )
        rows.append(row)
    return rows


def render_comparison(cards: list[dict[str, Any]]) -> list[str]:
    """The Markdown section of ``docs/model_zoo.md`` comparing our recipes with Table 3."""
    ref = reference()
    lines = [
        "",
        "## Against MedMNIST v2 (Table 3)",
        "",
        f"Source: {ref['source']}. {ref['note']} The paper's recipe: {ref['recipe']}; ours is",
        "the same but for its epoch budget (column `epochs`). Test ACC and AUC in percent; ours",
        "is the mean ± sample sd over our seeds; `in CI` counts our checkpoints whose 95 %",
        "interval holds the paper's value; `last epoch kept` counts checkpoints whose kept epoch",
        "(best validation AUC) is the last one trained: their curve was still rising, so the",
        "budget may explain part of a gap; 0 means every run levelled off before its budget ended.",
        "",
        "| dataset | arch | paper ACC | ours ACC | in CI | paper AUC | ours AUC | in CI | "
        "epochs | last epoch kept |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = comparison_rows(cards)
    for row in rows:
        head = f"| {row['dataset']} | {row['arch']} ({row['size']}) | {100 * row['acc']:.1f} | "
        if not row["n"]:
            lines.append(
                head + f"not trained | - | {100 * row['auc']:.1f} | not trained | - | - | - |"
            )
            continue
        n = row["n"]
        lines.append(
            head + f"{mean_sd(row['acc_ours'])} | {row['acc_inside']}/{n} | "
            f"{100 * row['auc']:.1f} | "
            f"{mean_sd(row['auc_ours'])} | {row['auc_inside']}/{n} | "
            f"{', '.join(map(str, row['epochs']))} vs {ref['epochs']} | {row['budget_bound']}/{n} |"
        )
    reading = [reading_line(row) for row in rows if row["n"]]
    if reading:
        lines += ["", "What the table says, per row (generated from the same cards):", ""]
        lines += [f"- {line}" for line in reading]
    return lines


def reading_line(row: dict[str, Any]) -> str:
    """One sentence on a compared row: whether our checkpoints agree with the paper and, where
    they do not, whether the epoch budget can be the reason (only if some run kept its last
    epoch; a run whose validation AUC peaked earlier would not have gained from more epochs of
    the same schedule)."""
    n = row["n"]
    name = f"{row['dataset']} {row['arch']} ({row['size']} px, {n} seed{'s' if n > 1 else ''})"
    missed = [
        f"{metric} ({row[f'{key}_inside']}/{n} intervals hold the paper's value)"
        for metric, key in (("ACC", "acc"), ("AUC", "auc"))
        if row[f"{key}_inside"] < n
    ]
    if not missed:
        return f"{name}: agrees with the paper; every checkpoint's interval holds both values."
    epochs = ", ".join(map(str, row["best_epochs"]))
    budget = max(row["epochs"])
    if row["budget_bound"]:
        why = (
            f"{row['budget_bound']} of {n} runs kept their last epoch (kept epochs {epochs} of "
            f"{budget}), so a longer budget may explain part of the gap"
        )
    else:
        why = (
            f"the epoch budget does not explain it: every run's validation AUC peaked before "
            f"its last epoch (kept epochs {epochs} of {budget})"
        )
    return f"{name}: differs in {' and '.join(missed)}; {why}."


__all__ = ["comparison_rows", "reading_line", "reference", "render_comparison"]
