"""Small fake datasets in the real on-disk layouts, for fast unit tests of loaders.

``medmnist`` asserts the official sample count in ``len()``; the benchmark's loader reads the
arrays directly, so these fakes can be small. They never match the official MD5, so load them
with ``verify=False``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_fake_medmnist(
    root: str | Path,
    flag: str,
    *,
    n: dict[str, int] | None = None,
    size: int = 28,
    seed: int = 0,
) -> Path:
    """Write ``<root>/<flag>[_size].npz`` with random images and labels in MedMNIST's layout.

    Args:
        root: folder to write into (created if needed).
        flag: a MedMNIST flag ("pneumoniamnist"); channels, classes and task come from INFO.
        n: samples per split (default 8/4/4).
        size: image side.
        seed: NumPy seed.

    Returns:
        The path written.
    """
    from medmnist import INFO

    info = INFO[flag]
    rng = np.random.default_rng(seed)
    counts = n or {"train": 8, "val": 4, "test": 4}
    channels = int(info["n_channels"])
    n_labels = len(info["label"])
    arrays = {}
    for split, k in counts.items():
        shape = (k, size, size) if channels == 1 else (k, size, size, channels)
        arrays[f"{split}_images"] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        if info["task"].startswith("multi-label"):
            arrays[f"{split}_labels"] = rng.integers(0, 2, size=(k, n_labels), dtype=np.uint8)
        else:
            arrays[f"{split}_labels"] = rng.integers(0, n_labels, size=(k, 1), dtype=np.uint8)
    path = Path(root) / f"{flag}{'' if size == 28 else f'_{size}'}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path
