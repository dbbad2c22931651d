"""Image-level corruption primitives shared by the sequence and severity kinds.

Everything here works on one image at a time: uint8 CHW in, float32 CHW in [0, 1] out (the
tensor contract of the benchmark, before the final uint8 quantisation that the callers do).

``imagecorruptions`` (package ``imagecorruptions-imaug``, Hendrycks & Dietterich 2019) is used
through its per-corruption functions, not ``corrupt()``, because ``corrupt()`` refuses images
under 32 px. Its constants were tuned for 224 px ImageNet images, so each corruption declares a
working size: pointwise corruptions (noise, brightness, contrast) and scale-free ones (zoom blur:
its zoom factors are relative) run at the native size, while corruptions whose constants are in
pixels (blur radii, snow flakes, spatter blobs, frost and fog textures, elastic displacement)
run on the image resized to 224 px (bilinear) and are brought back with area
averaging. Grey images are replicated to RGB for the library (motion blur requires three
channels) and averaged back to one channel. The library draws from NumPy's global generator, so
every call is wrapped in :func:`seeded`.
"""

from __future__ import annotations

import contextlib
import inspect
import warnings
import zlib
from collections.abc import Iterator

import cv2
import numpy as np
from PIL import Image

WORKING_SIZE = 224
"""Size at which pixel-unit corruptions run on smaller images (ImageNet-C's resolution)."""


def derive_seed(*parts: int | str) -> int:
    """A 32-bit seed from integers and strings (strings hashed with CRC32, stable across runs)."""
    ints = [zlib.crc32(p.encode()) if isinstance(p, str) else int(p) for p in parts]
    return int(np.random.SeedSequence(ints).generate_state(1)[0])


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed NumPy's global generator for a block and restore its previous state afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def to_hwc_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 CHW (1 or 3 channels) -> uint8 HWC RGB."""
    hwc = np.ascontiguousarray(np.transpose(image, (1, 2, 0)))
    return np.repeat(hwc, 3, axis=2) if hwc.shape[2] == 1 else hwc


def from_hwc(out: np.ndarray, channels: int) -> np.ndarray:
    """float HWC (or HW) on [0, 255] -> float32 CHW in [0, 1] with ``channels`` channels."""
    out = np.asarray(out, dtype=np.float32)
    if out.ndim == 2:
        out = out[:, :, None]
    out = np.clip(out, 0.0, 255.0) / 255.0
    if channels == 1:
        out = out.mean(axis=2, keepdims=True)
    return np.transpose(out, (2, 0, 1)).astype(np.float32)


def imagecorruption(
    name: str, image: np.ndarray, severity: int, *, working_size: int | None, seed: int
) -> np.ndarray:
    """Apply ``imagecorruptions.corruptions.<name>`` at ``severity`` (1-5) to one image.

    Args:
        name: function name in ``imagecorruptions.corruptions``.
        image: uint8 CHW.
        severity: 1-5, the library's constants.
        working_size: resize to this size first when the image is smaller (None = native).
        seed: seeds NumPy's global generator for the call.

    Returns:
        float32 CHW in [0, 1], same shape as ``image``.
    """
    from imagecorruptions import corruptions as ic

    channels, height, width = image.shape
    rgb = to_hwc_rgb(image)
    resized = working_size is not None and max(height, width) < working_size
    if resized:
        rgb = cv2.resize(rgb, (working_size, working_size), interpolation=cv2.INTER_LINEAR)
    fn = getattr(ic, name)
    arg = Image.fromarray(rgb)  # pixelate, JPEG and spatter (mud) need PIL; the rest accept it
    # Most functions draw from NumPy's global generator; impulse_noise takes its own ``seed``
    # (scikit-image's random_noise does not use the global generator).
    kwargs = {"seed": seed} if "seed" in inspect.signature(fn).parameters else {}
    with seeded(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = np.asarray(fn(arg, severity=severity, **kwargs), dtype=np.float32)
    if out.ndim == 2:
        out = np.repeat(out[:, :, None], 3, axis=2)
    if resized:
        out = cv2.resize(out, (width, height), interpolation=cv2.INTER_AREA)
    return from_hwc(out, channels)


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """float [0, 1] -> uint8 with rounding (how an image file would store the frame)."""
    return np.clip(np.rint(frames * 255.0), 0, 255).astype(np.uint8)
