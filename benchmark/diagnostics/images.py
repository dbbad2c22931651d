"""Deterministic images of the diagnostic figures: tiles, a grey-readable colour map, sprites.

Every figure is one PNG *sprite*: a grid of equally sized tiles (an image, its adversarial
version, the amplified perturbation, a saliency map...) separated by a white gap, written by
Pillow with no metadata, so the same tensors give the same bytes on every machine. The site
shows each tile as its own ``<img>`` cut out of the sprite (so each has its own alt text and
caption) and reads the grid's geometry from the figure index.

Heat maps use :data:`HEAT`, our own colour map whose luminance rises monotonically from black
to pale yellow: a map printed or viewed in grey keeps its order (tested in
``tests/unit/test_diagnostics.py``).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

#: Anchors of the heat colour map (value, RGB): black, indigo, crimson, orange, pale yellow.
HEAT_ANCHORS: tuple[tuple[float, tuple[int, int, int]], ...] = (
    (0.0, (0, 0, 0)),
    (0.25, (40, 25, 110)),
    (0.5, (175, 45, 80)),
    (0.75, (240, 135, 35)),
    (1.0, (255, 248, 185)),
)
GAP = 2
"""White pixels between the tiles of a sprite."""
DISPLAY = 84
"""About how many pixels wide a tile is shown: small images are enlarged (nearest neighbour,
so every pixel of a 28 px image stays visible) to at least this size."""


def _lut() -> np.ndarray:
    xs = np.array([a for a, _ in HEAT_ANCHORS])
    cols = np.array([c for _, c in HEAT_ANCHORS], dtype=np.float64)
    grid = np.linspace(0.0, 1.0, 256)
    return np.stack([np.interp(grid, xs, cols[:, k]) for k in range(3)], 1).round().astype(np.uint8)


HEAT = _lut()
"""The colour map as a 256 x 3 uint8 table."""


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Relative luminance (Rec. 709 weights) of uint8 RGB values, in [0, 255]."""
    return rgb[..., 0] * 0.2126 + rgb[..., 1] * 0.7152 + rgb[..., 2] * 0.0722


def image_tile(x: np.ndarray) -> np.ndarray:
    """A CHW float image in [0, 1] (1 or 3 channels) as HxWx3 uint8."""
    arr = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    if arr.shape[0] == 1:
        arr = np.repeat(arr, 3, axis=0)
    return (arr.transpose(1, 2, 0) * 255.0).round().astype(np.uint8)


def heat_tile(values: np.ndarray) -> np.ndarray:
    """An HxW map in [0, 1] through :data:`HEAT`, as HxWx3 uint8."""
    idx = (np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0) * 255.0).round()
    return HEAT[idx.astype(np.int64)]


def perturbation_tile(delta: np.ndarray, scale: float) -> np.ndarray:
    """A CHW perturbation shown as grey ``0.5 + delta / (2 scale)``: -scale black, 0 mid grey,
    +scale white (``scale`` is the attack's eps, so the amplification is ``1 / (2 eps)``)."""
    scale = float(scale) if scale and scale > 0 else float(np.abs(delta).max() or 1.0)
    return image_tile(0.5 + np.asarray(delta, dtype=np.float64) / (2.0 * scale))


def zoom(size: int) -> int:
    """The integer enlargement that shows a ``size`` px tile at about :data:`DISPLAY` px."""
    return max(1, -(-DISPLAY // size))


def sprite(tiles: list[list[np.ndarray | None]], factor: int) -> tuple[bytes, dict[str, int]]:
    """One PNG of a grid of HxWx3 uint8 tiles (``None`` leaves a white cell), each enlarged
    ``factor`` times, and the geometry the site needs to cut it (tile size, gap, grid)."""
    rows, cols = len(tiles), max(len(r) for r in tiles)
    first = next(t for r in tiles for t in r if t is not None)
    h, w = first.shape[0] * factor, first.shape[1] * factor
    canvas = np.full((rows * h + (rows - 1) * GAP, cols * w + (cols - 1) * GAP, 3), 255, np.uint8)
    for i, row in enumerate(tiles):
        for j, tile in enumerate(row):
            if tile is None:
                continue
            big = np.repeat(np.repeat(tile, factor, axis=0), factor, axis=1)
            y, x = i * (h + GAP), j * (w + GAP)
            canvas[y : y + h, x : x + w] = big
    geometry = {"rows": rows, "cols": cols, "tile_w": w, "tile_h": h, "gap": GAP}
    return png_bytes(canvas), geometry


def png_bytes(rgb: np.ndarray) -> bytes:
    """PNG bytes of an HxWx3 uint8 array, with no metadata (deterministic)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb), mode="RGB").save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


__all__ = [
    "DISPLAY",
    "GAP",
    "HEAT",
    "heat_tile",
    "image_tile",
    "luminance",
    "perturbation_tile",
    "png_bytes",
    "sprite",
    "zoom",
]
