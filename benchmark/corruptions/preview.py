"""PNG contact sheets of perturbation sequences and severity corruptions (for the docs)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from benchmark.corruptions.base import CORRUPTIONS
from benchmark.corruptions.functions import derive_seed

LABEL_WIDTH = 130


def _tile(image: np.ndarray, scale: int) -> Image.Image:
    """uint8 CHW -> an RGB PIL tile enlarged ``scale`` times with nearest neighbours."""
    hwc = np.transpose(image, (1, 2, 0))
    if hwc.shape[2] == 1:
        hwc = np.repeat(hwc, 3, axis=2)
    tile = Image.fromarray(np.ascontiguousarray(hwc))
    return tile.resize((tile.width * scale, tile.height * scale), Image.Resampling.NEAREST)


def _sheet(rows: list[tuple[str, list[np.ndarray]]], header: list[str], scale: int) -> Image.Image:
    h, w = rows[0][1][0].shape[1:]
    th, tw, pad, top = h * scale, w * scale, 4, 18
    width = LABEL_WIDTH + len(header) * (tw + pad)
    sheet = Image.new("RGB", (width, top + len(rows) * (th + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for j, text in enumerate(header):
        draw.text((LABEL_WIDTH + j * (tw + pad), 2), text, fill="black")
    for i, (label, images) in enumerate(rows):
        y = top + i * (th + pad)
        draw.text((4, y + th // 2 - 6), label, fill="black")
        for j, image in enumerate(images):
            sheet.paste(_tile(image, scale), (LABEL_WIDTH + j * (tw + pad), y))
    return sheet


def sequence_sheet(
    image: np.ndarray,
    ids: Sequence[str],
    *,
    index: int,
    severity: int = 3,
    n_frames: int = 21,
    show: Sequence[int] = (0, 4, 8, 12, 16, 20),
    seed: int = 0,
    scale: int = 3,
) -> Image.Image:
    """One row per sequence type: the frames ``show`` of the sequence of ``image``.

    The frames are the ones an evaluation with the same ``seed`` draws for the image at
    ``index`` of the full split.
    """
    rows = []
    for sid in ids:
        frames = CORRUPTIONS.get(sid).frames(
            image,
            severity=severity,
            n_frames=n_frames,
            seed=derive_seed(seed, sid, severity, index),
        )
        rows.append((sid.removesuffix("_seq"), [frames[j] for j in show if j < n_frames]))
    return _sheet(rows, [f"frame {j}" for j in show if j < n_frames], scale)


def severity_sheet(
    image: np.ndarray,
    ids: Sequence[str],
    *,
    index: int,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    seed: int = 0,
    scale: int = 3,
) -> Image.Image:
    """One row per corruption: the clean image, then each severity."""
    rows = []
    for name in ids:
        corr = CORRUPTIONS.get(name)
        tiles = [image] + [
            corr.apply(image, s, seed=derive_seed(seed, name, s, index)) for s in severities
        ]
        rows.append((name, tiles))
    return _sheet(rows, ["clean"] + [f"severity {s}" for s in severities], scale)


def png_bytes(sheet: Image.Image) -> bytes:
    """PNG bytes with an adaptive 256-colour palette: lossless for grey images, small files
    for colour ones."""
    buf = io.BytesIO()
    sheet.convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(
        buf, format="PNG", optimize=True
    )
    return buf.getvalue()
