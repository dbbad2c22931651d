"""The random resize-and-pad submission: sub-pixel randomisation (``supersample``) gives many
more distinct transforms at 28 px, and ``supersample=1`` is version 1.0 bit for bit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from benchmark.datasets.base import load_split
from benchmark.defenses import SubmissionError
from benchmark.defenses.submissions import read_submission

ROOT = Path(__file__).resolve().parents[2]
SUB = read_submission(ROOT / "submissions" / "random_resize_pad")


def _version_1_0(x: torch.Tensor, seed: int, ratio: float = 331 / 299) -> torch.Tensor:
    """Version 1.0's purify, frozen: one image at a time, integer sides and offsets."""
    n, _, s, _ = x.shape
    big = max(s + 1, round(ratio * s))
    gen = torch.Generator(device=x.device).manual_seed(seed)
    out = []
    for i in range(n):
        r = int(torch.randint(s, big, (1,), generator=gen, device=x.device))
        left, top = (
            int(v) for v in torch.randint(0, big - r + 1, (2,), generator=gen, device=x.device)
        )
        img = F.interpolate(x[i : i + 1], size=(r, r), mode="nearest")
        img = F.pad(img, (left, big - r - left, top, big - r - top))
        out.append(F.interpolate(img, size=(s, s), mode="bilinear", align_corners=False))
    return torch.cat(out).clamp(0, 1)


@pytest.mark.parametrize("shape", [(64, 1, 28, 28), (7, 3, 32, 32), (5, 1, 8, 8)])
@pytest.mark.parametrize("seed", [0, 3])
def test_supersample_1_is_version_1_0_bit_for_bit(shape, seed):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(seed))
    w = torch.rand(shape, generator=torch.Generator().manual_seed(seed + 1))
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    old = _version_1_0(xa, seed)
    new = SUB.build(seed=seed, supersample=1).purify(xb)
    assert torch.equal(new, old)
    (g_old,) = torch.autograd.grad((old * w).sum(), xa)
    (g_new,) = torch.autograd.grad((new * w).sum(), xb)
    assert torch.equal(g_new, g_old)


def test_supersampling_gives_many_more_distinct_transforms_of_one_image(shared_data):
    img = load_split("pneumoniamnist", "test", size=28, data_dir=shared_data).images[:1]
    batch = (img.float() / 255).expand(64, -1, -1, -1).contiguous()

    def distinct(k: int) -> int:
        with torch.no_grad():
            out = SUB.build(seed=0, supersample=k).purify(batch)
        return torch.unique(out.flatten(1), dim=0).shape[0]

    # 64 draws. k = 1: 3 sides x 2-4 offsets per axis, 29 transforms at most (measured 23);
    # k = 4: 12 sides x 2-13 offsets per axis, 818 transforms (measured 56; the draws are
    # not uniform over transforms, so some repeat).
    plain, fine = distinct(1), distinct(4)
    assert plain <= 29
    assert fine >= 50 and fine >= 2 * plain


@pytest.mark.parametrize("shape", [(6, 1, 28, 28), (3, 3, 32, 32)])
def test_output_shape_range_and_reseeding(shape):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    defense = SUB.build(seed=5)
    assert defense.params["supersample"] == 4
    with torch.no_grad():
        a = defense.purify(x)
        b = defense.purify(x)
        defense.reseed(5)
        again = defense.purify(x)
        defense.reseed(6)
        other = defense.purify(x)
    assert a.shape == x.shape and a.dtype == torch.float32
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(again, a)
    assert not torch.equal(b, a) and not torch.equal(other, a)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "four"])
def test_supersample_must_be_a_positive_integer(bad):
    with pytest.raises(SubmissionError, match="supersample"):
        SUB.build(supersample=bad)
