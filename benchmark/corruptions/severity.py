"""Common corruptions at severities 1-5 (kind "severity"): ImageNet-C and MedMNIST-C style.

* ImageNet-C corruptions (Hendrycks & Dietterich 2019) come from ``imagecorruptions`` at its
  own severity constants, with the working-size rule of :mod:`benchmark.corruptions.functions`.
  Pixelate (a relative down-and-up-sampling factor) and JPEG (8x8 blocks of the stored image)
  run at the native size: at 224 px and back their effect averages away on 28 px images.
  ``glass_blur`` is registered but left out of the presets: at the 224 px working size it takes
  2-6 s per image on a CPU (hours for one test split), and at 28 px its pixel-unit constants
  are meaningless. ``saturate`` is only defined for colour images and is skipped on grey data.
* MedMNIST-C's simple intensity corruptions (Di Salvo et al. 2024): brightness and contrast up
  and down, and gamma correction up and down, with the constants MedMNIST-C lists for
  PneumoniaMNIST / ChestMNIST (the same for both): brightness factors 1.1-1.5 and 0.9-0.5,
  contrast factors 1.1-1.6 and 0.9-0.4, gamma 1.1-1.6 and 0.9-0.4. Brightness multiplies the
  intensities, contrast blends with the image's mean grey level (as PIL's ``ImageEnhance``
  does), gamma maps ``x -> x ** gamma``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmark.corruptions.base import CORRUPTIONS, CorruptionMeta
from benchmark.corruptions.functions import WORKING_SIZE, imagecorruption, to_uint8

SEVERITIES = (1, 2, 3, 4, 5)


@dataclass
class SeverityCorruption:
    """One corruption with five severities.

    Attributes:
        name: registry id.
        source: "imagecorruptions" or "intensity" (MedMNIST-C's closed-form corruptions).
        working_size: size for pixel-unit library corruptions on small images (None = native).
        constants: the five severity parameters of an intensity corruption.
        colour_only: defined for RGB images only.
    """

    name: str
    source: str
    working_size: int | None = None
    constants: tuple[float, ...] = field(default=())
    colour_only: bool = False

    def apply(self, image: np.ndarray, severity: int, *, seed: int) -> np.ndarray:
        """Corrupt one uint8 CHW image at ``severity`` (1-5); returns uint8 CHW."""
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be 1-5, got {severity}")
        if self.source == "imagecorruptions":
            out = imagecorruption(
                self.name, image, severity, working_size=self.working_size, seed=seed
            )
        else:
            out = _INTENSITY[self.name.rsplit("_", 1)[0]](
                image.astype(np.float32) / 255.0, self.constants[severity - 1]
            )
        return to_uint8(out)

    def config(self) -> dict[str, Any]:
        """What defines this corruption (recorded in results and cache keys)."""
        return {
            "name": self.name,
            "source": self.source,
            "working_size": self.working_size,
            "constants": list(self.constants),
            "version": 1,
        }


def _brightness(x: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(x * factor, 0.0, 1.0)


def _contrast(x: np.ndarray, factor: float) -> np.ndarray:
    mean = x.mean(axis=0, keepdims=True).mean()
    return np.clip(mean + factor * (x - mean), 0.0, 1.0)


def _gamma(x: np.ndarray, gamma: float) -> np.ndarray:
    return np.clip(x, 0.0, 1.0) ** gamma


_INTENSITY: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "brightness": _brightness,
    "contrast": _contrast,
    "gamma_corr": _gamma,
}

_IMAGENET_C = {
    # name: (family, working size)
    "gaussian_noise": ("noise", None),
    "shot_noise": ("noise", None),
    "impulse_noise": ("noise", None),
    "speckle_noise": ("noise", None),
    "defocus_blur": ("blur", WORKING_SIZE),
    "glass_blur": ("blur", WORKING_SIZE),
    "motion_blur": ("blur", WORKING_SIZE),
    "zoom_blur": ("blur", None),
    "gaussian_blur": ("blur", WORKING_SIZE),
    "snow": ("weather", WORKING_SIZE),
    "frost": ("weather", WORKING_SIZE),
    "fog": ("weather", WORKING_SIZE),
    "spatter": ("weather", WORKING_SIZE),
    "brightness": ("digital", None),
    "contrast": ("digital", None),
    "saturate": ("digital", None),
    "elastic_transform": ("digital", WORKING_SIZE),
    "pixelate": ("digital", None),  # relative factor: scale-free
    "jpeg_compression": ("digital", None),  # what a JPEG of the stored image would show
}
for _name, (_family, _size) in _IMAGENET_C.items():
    CORRUPTIONS.register(
        _name,
        SeverityCorruption(_name, "imagecorruptions", _size, colour_only=_name == "saturate"),
        meta=CorruptionMeta(
            description=f"imagecorruptions.{_name} at severities 1-5"
            + (f" (run at {_size} px)" if _size else " (native size)"),
            family=_family,
            kind="severity",
            reference="Hendrycks & Dietterich 2019 (ImageNet-C), package imagecorruptions",
        ),
    )

_MEDMNIST_C = {
    "brightness_up": (1.1, 1.2, 1.3, 1.4, 1.5),
    "brightness_down": (0.9, 0.8, 0.7, 0.6, 0.5),
    "contrast_up": (1.1, 1.2, 1.3, 1.4, 1.6),
    "contrast_down": (0.9, 0.8, 0.7, 0.6, 0.4),
    "gamma_corr_up": (1.1, 1.2, 1.3, 1.4, 1.6),
    "gamma_corr_down": (0.9, 0.8, 0.7, 0.6, 0.4),
}
for _name, _constants in _MEDMNIST_C.items():
    CORRUPTIONS.register(
        _name,
        SeverityCorruption(_name, "intensity", None, _constants),
        meta=CorruptionMeta(
            description=f"MedMNIST-C {_name}, parameters {', '.join(map(str, _constants))}",
            family="digital",
            kind="severity",
            reference="Di Salvo et al. 2024 (MedMNIST-C), PneumoniaMNIST constants",
        ),
    )
