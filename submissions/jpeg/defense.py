"""JPEG compression of the input, Das et al. 2017 / Guo et al. ICLR 2018 Sec. 3, with a
differentiable JPEG approximation for BPDA after Shin and Song 2017."""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from benchmark.defenses import Defense, DefenseMeta, SubmissionError

# The example quantisation tables of the JPEG standard (ITU-T T.81, Annex K, Tables K.1 and
# K.2), which the IJG library (behind PIL) scales for the quality setting.
_LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
_CHROMA_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
    *((99,) * 8,) * 4,
)
# JFIF's full-range RGB -> YCbCr matrix. Cb and Cr are used without their offset of 128,
# which is the level shift JPEG subtracts before the DCT anyway.
_RGB_TO_YCBCR = (
    (0.299, 0.587, 0.114),
    (-0.168736, -0.331264, 0.5),
    (0.5, -0.418688, -0.081312),
)


def quantisation_table(base: tuple[tuple[int, ...], ...], quality: int) -> torch.Tensor:
    """An 8 x 8 base table scaled for ``quality`` as the IJG library does (``jcparam.c``):
    scale = 5000 / q below 50, 200 - 2 q from 50 on; entries (base * scale + 50) // 100,
    clipped to [1, 255] (baseline JPEG)."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    table = (torch.tensor(base, dtype=torch.int64) * scale + 50) // 100
    return table.clamp(1, 255).to(torch.float32)


def _dct_matrix(device: torch.device) -> torch.Tensor:
    """The orthonormal 8-point DCT-II matrix; ``D @ B @ D.T`` is JPEG's 2-D FDCT of a block."""
    k = torch.arange(8, dtype=torch.float64)
    d = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return d.to(device=device, dtype=torch.float32)


def soft_round(x: torch.Tensor) -> torch.Tensor:
    """Shin and Song's differentiable rounding: ``round(x) + (x - round(x))**3``.

    Its value is within 1/8 of ``round(x)``; its derivative ``3 (x - round(x))**2`` is zero at
    the integers and largest (3/4) half-way between them.
    """
    r = torch.round(x)
    return r + (x - r) ** 3


def _jpeg_plane(plane: torch.Tensor, table: torch.Tensor, dct: torch.Tensor) -> torch.Tensor:
    """Level-shifted (N, 1, H, W) plane on the 0-255 scale -> its JPEG-quantised version.

    Pads to a multiple of 8 by edge replication (as the encoder does), takes the 8 x 8 block
    DCT, divides by the table, soft-rounds, multiplies back, inverts, and crops.
    """
    n, _, h, w = plane.shape
    ph, pw = -h % 8, -w % 8
    if ph or pw:
        plane = F.pad(plane, (0, pw, 0, ph), mode="replicate")
    hb, wb = (h + ph) // 8, (w + pw) // 8
    blocks = plane.reshape(n, hb, 8, wb, 8).permute(0, 1, 3, 2, 4)  # (N, hb, wb, 8, 8)
    coef = dct @ blocks @ dct.T
    coef = soft_round(coef / table) * table
    blocks = dct.T @ coef @ dct
    plane = blocks.permute(0, 1, 3, 2, 4).reshape(n, 1, hb * 8, wb * 8)
    return plane[..., :h, :w]


def _jpeg_chroma(plane: torch.Tensor, table: torch.Tensor, dct: torch.Tensor) -> torch.Tensor:
    """A chroma plane through 4:2:0 subsampling: 2 x 2 box average (edge-replicated to even
    sides), JPEG quantisation at half resolution, then bilinear upsampling with half-pixel
    centres, which is libjpeg's "fancy" h2v2 upsampling (weights 9/16, 3/16, 3/16, 1/16)."""
    h, w = plane.shape[-2:]
    ph, pw = h % 2, w % 2
    if ph or pw:
        plane = F.pad(plane, (0, pw, 0, ph), mode="replicate")
    small = _jpeg_plane(F.avg_pool2d(plane, 2), table, dct)
    up = F.interpolate(small, size=(h + ph, w + pw), mode="bilinear", align_corners=False)
    return up[..., :h, :w]


class JPEGCompression(Defense):
    """Encode each image as a JPEG of the given quality and decode it (PIL, 4:2:0 chroma).

    Forward (``purify``): the exact PIL/libjpeg round trip. PIL encodes uint8 images, so the
    input is first rounded to the nearest of the 256 grey levels (:meth:`to_uint8`); a change
    of less than half a grey level to an image on that grid is erased before the JPEG sees it.

    Backward (``purify_approx``, used by BPDA under the adaptive threat model): a
    differentiable JPEG in torch after Shin and Song, "JPEG-resistant adversarial images",
    NIPS 2017 MLSec workshop: RGB -> YCbCr (colour images), 4:2:0 chroma subsampling
    (implemented: 2 x 2 average, libjpeg's bilinear upsampling), 8 x 8 block DCT, division by
    the IJG luminance and chrominance tables scaled for ``quality``, the rounding
    ``round(x) + (x - round(x))**3``, and the inverse of each step. Its value is close to the
    exact JPEG (about a grey level on MedMNIST images; see ``tests/unit/test_jpeg_approx.py``).
    It skips the input and output rounding to uint8, so BPDA's gradient passes through both
    as the identity, and it does not model libjpeg's integer DCT and colour conversion.

    Version 1.1 adds ``purify_approx`` (1.0 used the identity on the backward pass, which the
    uint8 and quantisation roundings make a weak attack) and makes the input rounding an
    explicit step; the forward output is unchanged.
    """

    meta = DefenseMeta(
        kind="preprocessing",
        randomized=False,
        differentiable=False,  # attacked with BPDA through purify_approx
        reference="https://arxiv.org/abs/1711.00117 Sec. 3 (JPEG compression); BPDA approximation "
        "after Shin and Song 2017, JPEG-resistant adversarial images (NIPS MLSec workshop)",
        version="1.1",
        license="MIT",
        authors=("MedRobustBench",),
        name="JPEG compression",
        paper="Guo et al., Countering Adversarial Images using Input Transformations, ICLR 2018, "
        "Sec. 3",
        threat_models=("oblivious", "adaptive"),
        description="JPEG compression and decompression of the input",
    )
    defaults = {"quality": 75}

    def setup(self) -> None:
        if not 1 <= int(self.params["quality"]) <= 95:
            raise SubmissionError("quality must be between 1 and 95")

    @staticmethod
    def to_uint8(x: torch.Tensor) -> torch.Tensor:
        """The input as PIL encodes it: clipped to [0, 1] and rounded to 256 grey levels."""
        return (x.detach().clamp(0, 1) * 255).round().to(torch.uint8)

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        q = int(self.params["quality"])
        arr = self.to_uint8(x).permute(0, 2, 3, 1).cpu()
        out = []
        for img in arr.numpy():
            pil = Image.fromarray(img[..., 0] if img.shape[2] == 1 else img)
            buf = io.BytesIO()
            pil.save(buf, format="JPEG", quality=q)
            dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float32) / 255.0
            out.append(dec[..., None] if dec.ndim == 2 else dec)
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous().to(x.device)

    def purify_approx(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable approximation of :meth:`purify` (the class docstring says how).

        Args:
            x: float32 (N, 1, H, W) or (N, 3, H, W) in [0, 1].

        Returns:
            The approximate JPEG round trip, same shape, in [0, 1], differentiable in ``x``.
        """
        c = x.shape[1]
        if c not in (1, 3):
            raise SubmissionError(f"JPEG takes 1 (grey) or 3 (RGB) channels, not {c}")
        q = int(self.params["quality"])
        dev = x.device
        dct = _dct_matrix(dev)
        luma = quantisation_table(_LUMA_TABLE, q).to(dev)
        v = x.clamp(0, 1) * 255
        if c == 1:
            return ((_jpeg_plane(v - 128, luma, dct) + 128) / 255).clamp(0, 1)
        m = torch.tensor(_RGB_TO_YCBCR, device=dev)
        ycc = torch.einsum("ij,njhw->nihw", m, v)  # Y, Cb - 128, Cr - 128
        chroma = quantisation_table(_CHROMA_TABLE, q).to(dev)
        y = _jpeg_plane(ycc[:, :1] - 128, luma, dct) + 128
        cb = _jpeg_chroma(ycc[:, 1:2], chroma, dct)
        cr = _jpeg_chroma(ycc[:, 2:3], chroma, dct)
        rgb = torch.einsum("ij,njhw->nihw", torch.linalg.inv(m), torch.cat([y, cb, cr], 1))
        return (rgb / 255).clamp(0, 1)
