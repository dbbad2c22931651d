"""Robust-Benchmark perturbation sequences (Xu et al. 2021, Sec. 4.4, Fig. 4; after ImageNet-P).

A sequence starts with the clean image (frame 0) and each following frame adds a small step of
one perturbation type. The paper gives the 14 types, four families, five severities, the frame
count of Figure 4 (n = 0..20) and the flip-probability rule (eq. 5), but not the per-frame
parameters, so this module defines them (recorded in every results block):

* Frame ``j`` of ``n`` sits at strength ``t = j / (n - 1)`` along a path that ends at the
  sequence's severity ``s`` (1-5).
* Types built on ``imagecorruptions`` (noise, blur, snow, spatter, brightness) take the path
  ``x + t * (C_s(x) - x)`` from the clean image ``x`` to the library's corruption ``C_s`` at
  severity ``s``. For the blur, weather and brightness types ``C_s`` is drawn once per sequence
  (one motion-blur angle, one snow layer), so consecutive frames differ by a small step; for the
  noise types every frame draws fresh noise (ImageNet-P's noise sequences are not temporally
  related either) and flips are counted against the clean frame.
* Geometric types (rotate, scale, shear, tilt, translate) use torchvision's affine and
  perspective transforms with a parameter growing linearly in ``t`` up to ``s / 5`` of the
  maxima in :data:`GEOMETRY_MAX`; each sequence draws its direction once. Uncovered borders are
  filled with the mean of the image's border pixels so no artificial black frame appears;
  resampling is bilinear (sub-pixel shifts included), so every frame moves a little.

Frames are quantised to uint8, as a stored video would be.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from benchmark.corruptions.base import CORRUPTIONS, CorruptionMeta
from benchmark.corruptions.functions import (
    WORKING_SIZE,
    derive_seed,
    imagecorruption,
    to_uint8,
)

BILINEAR = InterpolationMode.BILINEAR

DEFAULT_FRAMES = 21
"""Frames per sequence, clean frame included (Xu et al. Fig. 4 shows n = 0..20)."""

GEOMETRY_MAX = {
    "rotate": 20.0,  # degrees at severity 5
    "scale": 0.30,  # relative zoom change at severity 5 (in or out, drawn per sequence)
    "shear": 20.0,  # degrees at severity 5
    "tilt": 0.20,  # corner displacement as a fraction of the side at severity 5
    "translate": 0.15,  # shift as a fraction of the side at severity 5
}
"""Parameter at the end of a severity-5 sequence for each geometric type."""


@dataclass
class SequenceType:
    """One perturbation-sequence type.

    Attributes:
        name: the paper's type name (the registry id is ``<name>_seq``; for library-backed
            types also the ``imagecorruptions`` function).
        compare: "clean" (noise types: each frame vs frame 0) or "previous" (each frame vs the
            one before), the two rules of eq. 5.
        source: "imagecorruptions" or "geometry".
        working_size: size for pixel-unit library corruptions on small images (None = native).
        fresh_draw: draw the library corruption anew for every frame (noise types).
    """

    name: str
    compare: str
    source: str
    working_size: int | None = None
    fresh_draw: bool = False

    def frames(
        self,
        image: np.ndarray,
        *,
        severity: int,
        n_frames: int = DEFAULT_FRAMES,
        seed: int,
    ) -> np.ndarray:
        """The sequence of one uint8 CHW image: uint8 (n_frames, C, H, W), frame 0 = image."""
        if not 1 <= severity <= 5:
            raise ValueError(f"severity must be 1-5, got {severity}")
        if n_frames < 2:
            raise ValueError(f"a sequence needs at least 2 frames, got {n_frames}")
        steps = np.arange(n_frames, dtype=np.float32) / (n_frames - 1)
        clean = image.astype(np.float32) / 255.0
        if self.source == "geometry":
            out = self._geometry(clean, steps, severity, seed)
        else:
            out = np.empty((n_frames, *image.shape), dtype=np.float32)
            target = None
            for j, t in enumerate(steps):
                if j == 0:
                    out[0] = clean
                    continue
                if target is None or self.fresh_draw:
                    draw = derive_seed(seed, j) if self.fresh_draw else seed
                    target = imagecorruption(
                        self.name, image, severity, working_size=self.working_size, seed=draw
                    )
                out[j] = clean + t * (target - clean)
        frames = to_uint8(out)
        frames[0] = image  # exact clean frame, no rounding
        return frames

    def _geometry(
        self, clean: np.ndarray, steps: np.ndarray, severity: int, seed: int
    ) -> np.ndarray:
        rng = np.random.default_rng(seed)
        top = GEOMETRY_MAX[self.name] * severity / 5.0
        x = torch.from_numpy(clean)
        _, h, w = x.shape
        border = torch.cat([x[:, 0, :], x[:, -1, :], x[:, :, 0], x[:, :, -1]], dim=1)
        fill = [float(v) for v in border.mean(dim=1)]
        sign = float(rng.choice([-1.0, 1.0]))
        angle = float(rng.uniform(0, 2 * np.pi))
        corners = rng.uniform(-1.0, 1.0, size=(4, 2))
        out = []
        for t in steps:
            p = float(t) * top
            if self.name == "tilt":  # perspective warp, each corner moved in its drawn direction
                start = [[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]]
                end = [
                    [sx + c[0] * p * w, sy + c[1] * p * h]
                    for (sx, sy), c in zip(start, corners, strict=True)
                ]
                y = _with_fill(
                    lambda z, start=start, end=end: TF.perspective(
                        z, startpoints=start, endpoints=end, fill=0.0, interpolation=BILINEAR
                    ),
                    x,
                    fill,
                )
            else:
                affine: dict[str, Any] = {"angle": 0.0, "translate": [0.0, 0.0], "scale": 1.0}
                affine["shear"] = [0.0, 0.0]
                if self.name == "rotate":
                    affine["angle"] = sign * p
                elif self.name == "scale":
                    affine["scale"] = 1.0 + sign * p
                elif self.name == "shear":
                    affine["shear"] = [sign * p, 0.0]
                else:  # translate, sub-pixel, in the drawn direction
                    affine["translate"] = [
                        float(np.cos(angle) * p * w),
                        float(np.sin(angle) * p * h),
                    ]
                y = _with_fill(
                    lambda z, a=affine: TF.affine(z, **a, fill=0.0, interpolation=BILINEAR), x, fill
                )
            out.append(y.clamp(0, 1).numpy())
        return np.stack(out)

    def config(self) -> dict[str, Any]:
        """What defines this type's frames (recorded in results and cache keys)."""
        return {
            "name": self.name,
            "compare": self.compare,
            "source": self.source,
            "working_size": self.working_size,
            "fresh_draw": self.fresh_draw,
            "geometry_max": GEOMETRY_MAX.get(self.name),
            "version": 1,
        }


def _with_fill(warp: Any, x: torch.Tensor, fill: list[float]) -> torch.Tensor:
    """Apply ``warp`` with a constant exterior ``fill`` blended in by bilinear coverage.

    torchvision blends its fill after interpolating an image that was already zero-padded,
    which darkens the edge of the warped region (a visible line). Warping the image and a
    ones mask with zero padding and adding ``(1 - mask) * fill`` gives the exact bilinear
    interpolation of the image extended by the constant.
    """
    warped = warp(x)
    coverage = warp(torch.ones_like(x[:1]))
    return warped + (1.0 - coverage) * torch.tensor(fill, dtype=x.dtype).view(-1, 1, 1)


def _register(
    name: str, family: str, description: str, *, compare: str = "previous", **kwargs: Any
) -> None:
    source = kwargs.pop("source", "imagecorruptions")
    CORRUPTIONS.register(
        f"{name}_seq",
        SequenceType(name, compare, source, **kwargs),
        meta=CorruptionMeta(
            description=description,
            family=family,
            kind="sequence",
            reference="xu2021_evaluating_robustness.md Sec. 4.4; ImageNet-P (Hendrycks & "
            "Dietterich 2019)",
        ),
    )


_register(
    "gaussian_noise",
    "noise",
    "Gaussian noise, fresh per frame, vs clean",
    compare="clean",
    fresh_draw=True,
)
_register(
    "shot_noise",
    "noise",
    "Poisson (shot) noise, fresh per frame, vs clean",
    compare="clean",
    fresh_draw=True,
)
_register(
    "speckle_noise",
    "noise",
    "Multiplicative speckle noise, fresh per frame, vs clean",
    compare="clean",
    fresh_draw=True,
)
_register("gaussian_blur", "blur", "Gaussian blur fading in", working_size=WORKING_SIZE)
_register(
    "motion_blur",
    "blur",
    "Motion blur (one angle per sequence) fading in",
    working_size=WORKING_SIZE,
)
_register("zoom_blur", "blur", "Zoom blur fading in (scale-free, native size)")
_register("snow", "weather", "One snow layer fading in", working_size=WORKING_SIZE)
_register(
    "spatter", "weather", "One spatter (mud/water) layer fading in", working_size=WORKING_SIZE
)
_register("brightness", "digital", "Brightness rising step by step")
for _name, _desc in (
    ("rotate", "Rotation growing to 20 degrees at severity 5"),
    ("scale", "Zoom in or out growing to 30% at severity 5"),
    ("shear", "Horizontal shear growing to 20 degrees at severity 5"),
    ("tilt", "Perspective tilt, corners moving up to 20% of the side at severity 5"),
    ("translate", "Shift growing to 15% of the side at severity 5"),
):
    _register(_name, "digital", _desc, source="geometry")

SEQUENCE_IDS = tuple(n for n, v in CORRUPTIONS.items("*_seq") if isinstance(v, SequenceType))
"""Registry ids of the 14 Robust-Benchmark types."""
