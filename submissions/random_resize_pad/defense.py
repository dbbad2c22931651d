"""Random resizing and padding, Xie et al., ICLR 2018, Sec. 3 (randomization layers)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmark.defenses import Defense, DefenseMeta, SubmissionError


class RandomResizePad(Defense):
    """Resize to a random side r in [s, S) and zero-pad randomly to S = round(ratio s).

    The paper feeds the S x S image to the network (299 -> 331, ratio 331/299); our models take
    a fixed size, so the padded image is resized back to s (bilinear), which keeps the random
    rescaling and random shift that make the defense work.
    """

    meta = DefenseMeta(
        kind="preprocessing",
        randomized=True,
        differentiable=True,  # interpolation and padding pass gradients: attacked with EOT
        reference="https://arxiv.org/abs/1711.01991 Sec. 3",
        version="1.0",
        license="MIT",
        authors=("MedRobustBench",),
        name="Random resize and pad",
        paper="Xie et al., Mitigating Adversarial Effects Through Randomization, ICLR 2018, Sec. 3",
        threat_models=("oblivious", "adaptive"),
        description="Random resize and random zero padding (Xie et al. 2018)",
    )
    defaults = {"ratio": 331 / 299}

    def setup(self) -> None:
        if float(self.params["ratio"]) <= 1.0:
            raise SubmissionError("ratio must be > 1")

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        n, _, s, _ = x.shape
        big = max(s + 1, round(float(self.params["ratio"]) * s))
        gen = self.generator(x.device)
        out = []
        for i in range(n):  # every image gets its own size and offset, as in the paper
            r = int(torch.randint(s, big, (1,), generator=gen, device=x.device))
            left, top = (
                int(v) for v in torch.randint(0, big - r + 1, (2,), generator=gen, device=x.device)
            )
            img = F.interpolate(x[i : i + 1], size=(r, r), mode="nearest")
            img = F.pad(img, (left, big - r - left, top, big - r - top))
            out.append(F.interpolate(img, size=(s, s), mode="bilinear", align_corners=False))
        return torch.cat(out).clamp(0, 1)
