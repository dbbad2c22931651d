"""Label co-occurrence of a multi-label model's predictions (Xu et al. 2021, Component 4).

Xu et al. (Fig. 8, chord diagrams on ChestX-ray14) compare how often two findings are
predicted together on clean and on adversarial images: an attack that turns "effusion" on
also drags the labels that co-occur with it. :func:`cooccurrence` counts, for a 0/1 matrix of
predictions (images x labels), how many images have labels ``i`` and ``j`` both on (the
diagonal counts each label); :func:`cooccurrence_shift` is the adversarial minus the clean
matrix. No multi-label set is on disk here, so the tests and the site use a synthetic
multi-label model and data (``tests/unit/test_diagnostics.py``).
"""

from __future__ import annotations

import numpy as np


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


__all__ = ["cooccurrence", "cooccurrence_shift"]
