"""Generated Markdown of transfer matrices (``<!-- bench:results transfer D/transfer/*.json -->``).

One table per matrix: a row per target (the entry's defense and model), its clean accuracy,
one column per source checkpoint, and its worst transfer over the sources that are not its
own checkpoint; every figure is recomputed from the matrix's per-image outcomes (the file was
checked by :func:`~benchmark.results.transfer.read_transfer` when it was read).
"""

from __future__ import annotations

import re
from typing import Any

from benchmark.reports.base import Docs, register_report, table_head, table_row
from benchmark.results.naming import eps_label
from benchmark.results.transfer import TransferMatrix


def _eps_labels(text: str) -> str:
    """``eps=0.00784313725490196`` -> ``eps=2/255`` (parameter values as the boards write them)."""
    return re.sub(r"(?<!\w)eps=(\d*\.\d+)", lambda m: f"eps={eps_label(float(m.group(1)))}", text)


def _short(source: dict[str, Any], dataset: str) -> str:
    """A source's model id without the dataset part (``resnet18 28px s0 pgd at steps=3``)."""
    return _eps_labels(str(source["id"]).replace(f"_{dataset}_", " ").replace("_", " "))


def _recipe(model_id: str, dataset: str) -> str:
    """The checkpoint's base recipe and seed (``resnet18 28px s0``): a robust model's defense
    is already in the row's label."""
    m = re.match(r"^(.*?_s\d+)(?:_|$)", model_id)
    return _short({"id": m.group(1) if m else model_id}, dataset)


def render_transfer(docs: Docs) -> str:
    """A table per transfer matrix: accuracy % of each target on each source's examples."""
    out = []
    for src, doc in docs:
        matrix: TransferMatrix = doc["_matrix"]
        p = matrix.protocol
        names = [_short(s, matrix.dataset) for s in matrix.sources]
        lines = [
            f"{matrix.dataset}, `{p.id}` {p.version} (L-inf {eps_label(p.eps)}, "
            f"{', '.join(a for a, _ in p.attacks)}), {matrix.n} test images, computed "
            f"{doc['created_at']} on {doc['cost']['device']} ({src}). Accuracy % (right clean "
            "and under both attacks); * = the target's own checkpoint (not a transfer).",
            "",
            *table_head(["target", "clean", *[f"from {n}" for n in names], "worst transfer"]),
        ]
        for j, t in enumerate(matrix.targets):
            cells = []
            for i in range(len(matrix.sources)):
                c = matrix.cell(i, j)
                cells.append("-" if c is None else f"{100 * c.accuracy:.1f}{'*' if c.own else ''}")
            worst = matrix.worst_transfer(t["key"])
            label = f"{_eps_labels(t['label'])} ({_recipe(t['model_id'], matrix.dataset)})"
            clean = 100 * float(t["clean"]["accuracy"]["value"])
            w = "-" if worst is None else f"{100 * worst[0].accuracy:.1f}"
            lines.append(table_row([label, f"{clean:.1f}", *cells, w]))
        if doc.get("left_out"):
            lines += [
                "",
                "Left out: "
                + "; ".join(f"`{x['key']}` ({x['reason'].split(';')[0]})" for x in doc["left_out"])
                + ".",
            ]
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


register_report(
    "transfer",
    render_transfer,
    "Transfer matrices (bench transfer): target x source accuracy %, worst transfer",
)

__all__ = ["render_transfer"]
