"""What a test split's size means for the intervals and paired tests of its boards.

``<!-- bench:results precision D/clean/*/*.json -->`` in a data card: from a run on the whole
test split (its ``n`` and class counts, read from the clean confusion matrix), the 95 % Wilson
interval an accuracy of 50, 80 and 95 % gets at that ``n``; the smallest gaps the boards'
paired exact McNemar test can call at the 0.05 level (every changed image in one direction, or
some both ways); and how far one image of the smallest class moves a balanced accuracy. All of
it is computed from ``n`` and the class counts, the same for every model on these images.
"""

from __future__ import annotations

import math
from typing import Any

from benchmark.metrics.base import wilson_interval
from benchmark.reports.base import Docs, register_report, table_head, table_row

ALPHA = 0.05


def mcnemar_p(b01: int, b10: int) -> float:
    """Two-sided exact McNemar p-value (as :func:`benchmark.metrics.paired.mcnemar_exact`)."""
    d = b01 + b10
    if d == 0:
        return 1.0
    tail = sum(math.comb(d, k) for k in range(min(b01, b10) + 1)) / 2**d
    return min(1.0, 2 * tail)


def smallest_split(discordant: int) -> int | None:
    """The fewest images that must go one way, of ``discordant`` changed images, for the exact
    McNemar test to reject equal accuracy at :data:`ALPHA` (None: no split of so few can)."""
    for majority in range((discordant + 1) // 2, discordant + 1):
        if mcnemar_p(discordant - majority, majority) < ALPHA:
            return majority
    return None


def class_counts(doc: dict[str, Any]) -> list[int]:
    """Images per class of the run's split (row sums of its clean confusion matrix)."""
    matrix = ((doc.get("metrics") or {}).get("clean") or {}).get("confusion_matrix") or {}
    return [int(sum(row)) for row in matrix.get("matrix") or []]


def render_precision(docs: Docs) -> str:
    """One section per run: interval widths and detectable paired gaps at its split's size."""
    out = []
    for src, doc in docs:
        n = int(doc["data"]["n"])
        counts = class_counts(doc)
        lines = [
            f"{doc['data']['dataset']}, {doc['data']['split']} split: n = {n} images (from {src}).",
            "",
            *table_head(["accuracy", "95 % Wilson interval", "half-width (points)"]),
        ]
        for p in (0.5, 0.8, 0.95):
            k = round(p * n)
            lo, hi = wilson_interval(k, n)
            lines.append(
                table_row(
                    [
                        f"{k}/{n} ({100 * k / n:.1f} %)",
                        f"[{100 * lo:.1f}, {100 * hi:.1f}]",
                        f"{100 * (hi - lo) / 2:.1f}",
                    ]
                )
            )
        lines += [
            "",
            "Two entries compared on these images (paired exact McNemar test of accuracy, "
            "two-sided, 0.05): with d images answered differently, the fewest that must favour "
            "one entry, and the accuracy gap that makes.",
            "",
            *table_head(["d changed images", "fewest one way", "gap (points)"]),
        ]
        for d in (6, 10, 20, 40):
            if d > n:
                continue
            k = smallest_split(d)
            gap = "-" if k is None else f"{100 * (2 * k - d) / n:.1f}"
            lines.append(table_row([str(d), "none" if k is None else str(k), gap]))
        if counts and min(counts) > 0:
            k, smallest, least = len(counts), min(counts), smallest_split(6)
            lines += [
                "",
                f"Balanced accuracy (what the L-inf boards rank, with a stratified sign-flip "
                f"test): {k} classes, the smallest with {smallest} test images; one image of "
                f"that class moves a balanced accuracy by {100 / (k * smallest):.2f} points, one "
                f"of the largest ({max(counts)} images) by {100 / (k * max(counts)):.2f}. With "
                f"every changed image in one class and favouring one entry, the test calls a "
                f"difference from {least} images on: {100 * least / (k * smallest):.1f} points "
                f"in the smallest class, {100 * least / (k * max(counts)):.1f} in the largest.",
            ]
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


register_report(
    "precision",
    render_precision,
    "What the split's size means: Wilson interval widths, detectable paired gaps",
    per_run=True,
)

__all__ = ["class_counts", "mcnemar_p", "render_precision", "smallest_split"]
