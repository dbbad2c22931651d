"""What a test split's size means for the intervals and paired tests of its boards.

``<!-- bench:results precision D/clean/*/*.json -->`` in a data card: from a run on the whole
test split (its ``n`` and class counts, read from the clean confusion matrix), the 95 % Wilson
interval an accuracy of 50, 80 and 95 % gets at that ``n``; the smallest gaps the boards'
paired exact McNemar test can call at the 0.05 level (every changed image in one direction, or
some both ways), for one pair alone and at the first step of the Holm adjustment a board of R
rows applies; and how far one image moves a balanced accuracy. All of it is computed from
``n`` and the class counts, the same for every model on these images.
"""

from __future__ import annotations

from typing import Any

from benchmark.metrics.base import wilson_interval
from benchmark.metrics.paired import mcnemar_p_value
from benchmark.reports.base import Docs, register_report, table_head, table_row

ALPHA = 0.05


def smallest_split(discordant: int, alpha: float = ALPHA) -> int | None:
    """The fewest images that must go one way, of ``discordant`` changed images, for the exact
    McNemar test to reject equal accuracy at ``alpha`` (None: no split of so few can)."""
    for majority in range((discordant + 1) // 2, discordant + 1):
        if mcnemar_p_value(discordant - majority, majority) <= alpha:
            return majority
    return None


def fewest_one_way(alpha: float = ALPHA) -> int:
    """The fewest changed images, all favouring one entry and none the other, that a paired
    test calls at ``alpha``: the smallest d with ``2 / 2^d <= alpha``. The exact McNemar test
    and the boards' stratified sign-flip test agree here (each changed image is a fair coin
    under the null, whatever its class)."""
    d = 1
    while mcnemar_p_value(0, d) > alpha:
        d += 1
    return d


def class_counts(doc: dict[str, Any]) -> list[int]:
    """Images per class of the run's split (row sums of its clean confusion matrix; empty when
    they do not add up to the run's n, e.g. a defense that abstained on some images)."""
    matrix = ((doc.get("metrics") or {}).get("clean") or {}).get("confusion_matrix") or {}
    counts = [int(sum(row)) for row in matrix.get("matrix") or []]
    return counts if sum(counts) == int(doc["data"]["n"]) else []


#: Board sizes shown (rows ranked together); Holm's first step tests the smallest p-value of
#: the m = R (R - 1) / 2 pairs at alpha / m.
BOARD_ROWS = (2, 6, 12, 24)


def _section(src: str, doc: dict[str, Any]) -> str:
    n = int(doc["data"]["n"])
    counts = [c for c in class_counts(doc) if c > 0]  # absent classes do not count (paired.py)
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
        "One pair of entries on these images, tested alone (exact McNemar test of accuracy, "
        "two-sided, 0.05, no adjustment): with d images answered differently, the fewest that "
        "must favour one entry, and the accuracy gap that makes.",
        "",
        *table_head(["d changed images", "fewest one way", "gap (points)"]),
    ]
    for d in (6, 10, 20, 40):
        if d > n:
            continue
        k = smallest_split(d)
        gap = "-" if k is None else f"{100 * (2 * k - d) / n:.1f}"
        lines.append(table_row([str(d), "none" if k is None else str(k), gap]))
    lines += [
        "",
        "A board tests every pair of its R ranked rows and adjusts the p-values (Holm), so "
        "even its clearest pair needs more: the fewest changed images, all favouring one "
        "entry and none the other, that pass Holm's first step (0.05 / m for m = R (R - 1) / 2 "
        "pairs), and the accuracy gap that makes"
        + (
            "; in balanced accuracy (what the L-inf boards rank, with a stratified sign-flip "
            "test, which agrees here) the gap is largest when they all belong to the smallest "
            "class."
            if counts
            else "."
        ),
        "",
        *table_head(
            [
                "rows R",
                "pairs m",
                "fewest one way",
                "accuracy gap (points)",
                *(["balanced gap, smallest class (points)"] if counts else []),
            ]
        ),
    ]
    k_classes = len(counts)
    for rows in BOARD_ROWS:
        m = rows * (rows - 1) // 2
        d = fewest_one_way(ALPHA / m)
        cells = [str(rows), str(m), str(d), f"{100 * d / n:.1f}" if d <= n else "impossible"]
        if counts:
            small = min(counts)
            cells.append(
                f"{100 * d / (k_classes * small):.1f}" if d <= small else "beyond one class"
            )
        lines.append(table_row(cells))
    if counts:
        lines += [
            "",
            f"Balanced accuracy: {k_classes} classes, the smallest with {min(counts)} test "
            f"images, the largest with {max(counts)}; one image moves a balanced accuracy by "
            f"{100 / (k_classes * min(counts)):.2f} points in the smallest class and "
            f"{100 / (k_classes * max(counts)):.2f} in the largest.",
        ]
    return "\n".join(lines) + "\n"


def render_precision(docs: Docs) -> str:
    """One section per split (the first run of each dataset, split and class counts): interval
    widths and detectable paired gaps at its size."""
    out, seen = [], set()
    for src, doc in docs:
        key = (doc["data"]["dataset"], doc["data"]["split"], int(doc["data"]["n"]))
        if key in seen or key[2] <= 0:
            continue
        seen.add(key)
        out.append(_section(src, doc))
    return "\n".join(out)


register_report(
    "precision",
    render_precision,
    "What the split's size means: Wilson interval widths, detectable paired gaps",
    per_run=True,
)

__all__ = [
    "class_counts",
    "fewest_one_way",
    "render_precision",
    "smallest_split",
]
