"""Random resizing and padding, Xie et al., ICLR 2018, Sec. 3 (randomization layers)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmark.defenses import Defense, DefenseMeta, SubmissionError


class RandomResizePad(Defense):
    """Resize to a random side r in [k s, S) and zero-pad randomly to S = round(ratio k s).

    The paper resizes a 299 px image to a random side in [299, 331) and pads it at a random
    offset to 331 px (ratio 331/299, about 1.107), and feeds the 331 px image to the network.
    Our models take a fixed size s, so the padded image is resized back to s, which keeps the
    random rescaling and random shift that make the defense work.

    Sub-pixel randomisation (``supersample`` k, version 1.1): the scale range is the paper's
    relative one, r / S in [1/ratio, 1), whatever the image size, but at s = 28 an integer
    side only takes r in {28, 29, 30} with 2 to 4 offsets per axis, 29 transforms in all,
    against 32 sizes and up to 33 x 33 offsets at 299 px. So the image is first upsampled by k
    (bilinear), the random side r in [k s, round(ratio k s)) and the offsets are drawn at
    that resolution, and the padded image is resized back to s. The range of scales stays
    [1/ratio, 1) of the frame, as in the paper; only its resolution becomes 1/k of a pixel:
    at s = 28 and k = 4, 12 sides and 2 to 13 offsets per axis, 818 transforms. The resize back
    uses ``area`` (each output pixel is the mean of the supersampled pixels it covers), so a
    quarter-pixel shift reaches the output as a fractional mix of neighbouring pixels; a
    bilinear resize by 1 / (ratio k) would read only 2 x 2 of the about 4.4 x 4.4
    supersampled pixels under each output pixel and alias. With k = 1 the defense is version
    1.0 exactly (nearest resize, bilinear resize back, the same random draws).

    Every image gets its own side and offsets, drawn in order from ``self.generator``; the
    interpolations are batched over the images that drew the same side.
    """

    meta = DefenseMeta(
        kind="preprocessing",
        randomized=True,
        differentiable=True,  # interpolation and padding pass gradients: attacked with EOT
        reference="https://arxiv.org/abs/1711.01991 Sec. 3",
        version="1.1",
        license="MIT",
        authors=("MedRobustBench",),
        name="Random resize and pad",
        paper="Xie et al., Mitigating Adversarial Effects Through Randomization, ICLR 2018, Sec. 3",
        threat_models=("oblivious", "adaptive"),
        description="Random resize and random zero padding (Xie et al. 2018)",
    )
    defaults = {"ratio": 331 / 299, "supersample": 4}

    def setup(self) -> None:
        if float(self.params["ratio"]) <= 1.0:
            raise SubmissionError("ratio must be > 1")
        k = self.params["supersample"]
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise SubmissionError("supersample must be an integer >= 1")

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        n, _, s, _ = x.shape
        k = int(self.params["supersample"])
        side = k * s
        big = max(side + 1, round(float(self.params["ratio"]) * side))
        gen = self.generator(x.device)
        draws = []
        for _ in range(n):  # per image, in the order of version 1.0: side, then offsets
            r = int(torch.randint(side, big, (1,), generator=gen, device=x.device))
            left, top = (
                int(v) for v in torch.randint(0, big - r + 1, (2,), generator=gen, device=x.device)
            )
            draws.append((r, left, top))
        if k > 1:
            x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
        # k = 1 keeps version 1.0's bilinear; k > 1 averages the supersampled pixels (see above).
        back = {"mode": "bilinear", "align_corners": False} if k == 1 else {"mode": "area"}
        pieces, order = [], []
        for r in sorted({d[0] for d in draws}):  # batch the images that drew the same side
            idx = [i for i, d in enumerate(draws) if d[0] == r]
            img = F.interpolate(x[idx], size=(r, r), mode="nearest")
            padded = [
                F.pad(img[j : j + 1], (left, big - r - left, top, big - r - top))
                for j, (_, left, top) in enumerate(draws[i] for i in idx)
            ]
            pieces.append(F.interpolate(torch.cat(padded), size=(s, s), **back))
            order += idx
        inverse = torch.empty(n, dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(n)
        return torch.cat(pieces)[inverse.to(x.device)].clamp(0, 1)
