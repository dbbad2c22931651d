"""JPEG compression of the input, Das et al. 2017 / Guo et al. ICLR 2018 Sec. 3."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from benchmark.defenses import Defense, DefenseMeta, SubmissionError


class JPEGCompression(Defense):
    """Encode each image as a JPEG of the given quality and decode it (PIL, 4:2:0 chroma)."""

    meta = DefenseMeta(
        kind="preprocessing",
        randomized=False,
        differentiable=False,  # attacked with BPDA (identity on the backward pass)
        reference="https://arxiv.org/abs/1711.00117 Sec. 3 (JPEG compression)",
        version="1.0",
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

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        q = int(self.params["quality"])
        arr = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()
        out = []
        for img in arr.numpy():
            pil = Image.fromarray(img[..., 0] if img.shape[2] == 1 else img)
            buf = io.BytesIO()
            pil.save(buf, format="JPEG", quality=q)
            dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float32) / 255.0
            out.append(dec[..., None] if dec.ndim == 2 else dec)
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous().to(x.device)
