"""Label co-occurrence of a multi-label model's predictions (Xu et al. 2021, Component 4).

Xu et al. (Fig. 8, chord diagrams on ChestX-ray14) compare how often two findings are
predicted together on clean and on adversarial images: an attack that turns "effusion" on
also drags the labels that co-occur with it. :func:`cooccurrence` counts, for a 0/1 matrix of
predictions (images x labels), how many images have labels ``i`` and ``j`` both on (the
diagonal counts each label); :func:`cooccurrence_shift` is the adversarial minus the clean
matrix. No multi-label set is on disk here, so the tests use a synthetic multi-label
model and data (``tests/unit/test_diagnostics.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmark.diagnostics import images
from benchmark.diagnostics.common import sprite_figure


def cooccurrence(predicted: np.ndarray) -> np.ndarray:
    """K x K counts ``C[i, j]`` = images with labels ``i`` and ``j`` both predicted."""
    p = np.asarray(predicted)
    if p.ndim != 2 or not np.isin(p, (0, 1)).all():
        raise ValueError("predictions must be a 0/1 matrix of images x labels")
    p = p.astype(np.int64)
    return p.T @ p


def cooccurrence_shift(clean: np.ndarray, adversarial: np.ndarray) -> np.ndarray:
    """Adversarial minus clean co-occurrence counts (same images, same labels)."""
    return cooccurrence(adversarial) - cooccurrence(clean)


def cooccurrence_figure(
    clean: np.ndarray, adversarial: np.ndarray, labels: list[str], what: str
) -> dict[str, Any]:
    """Xu et al. Comp. 4 (Fig. 8) as heat maps: the label co-occurrence counts of the clean
    and of the adversarial predictions (0/1, images x labels), and their difference (grey:
    no change, darker fewer, lighter more co-occurrences under attack)."""
    c, a = cooccurrence(clean), cooccurrence(adversarial)
    d = a - c
    peak = max(int(c.max()), int(a.max()), 1)
    span = max(int(np.abs(d).max()), 1)
    tiles = [
        [
            (
                images.heat_tile(c / peak),
                {"alt": "clean co-occurrence counts", "text": "clean", "wrong": False},
            ),
            (
                images.heat_tile(a / peak),
                {"alt": "adversarial co-occurrence counts", "text": "adversarial", "wrong": False},
            ),
            (
                images.image_tile((0.5 + d / (2 * span))[None]),
                {
                    "alt": "adversarial minus clean",
                    "text": f"difference (+-{span})",
                    "wrong": False,
                },
            ),
        ]
    ]
    k = len(labels)
    caption = (
        f"Label co-occurrence (Xu et al. Comp. 4, Fig. 8): C[i, j] counts the images predicted "
        f"with labels i and j both on, for {len(clean)} images, clean and under {what}; rows "
        f"and columns are the {k} labels in order ({', '.join(labels)}). Counts are scaled by "
        f"{peak} (dark 0, pale yellow {peak}); the difference is grey at 0."
    )
    fig = sprite_figure(
        "cooccurrence",
        tiles,
        k,
        title="Label co-occurrence",
        caption=caption,
        alt="Heat maps of label co-occurrence, clean, adversarial and their difference",
        col_labels=["clean", "adversarial", "difference"],
        row_labels=[""],
    )
    fig["matrices"] = {"clean": c.tolist(), "adversarial": a.tolist()}
    return fig


__all__ = ["cooccurrence", "cooccurrence_figure", "cooccurrence_shift"]
