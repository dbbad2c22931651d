"""The shared defense filters: the 3 x 3 median's two paths agree exactly."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from benchmark.defenses.filters import median_filter


def _sorted_median(x: torch.Tensor) -> torch.Tensor:
    windows = F.pad(x, (1, 1, 1, 1), mode="reflect").unfold(2, 3, 1).unfold(3, 3, 1)
    return windows.reshape(*windows.shape[:4], 9).median(dim=-1).values


@pytest.mark.parametrize(
    "x",
    [
        torch.rand(7, 3, 11, 13, generator=torch.Generator().manual_seed(0)),
        # many ties, and salt-and-pepper extremes as MedRDF feeds it
        (torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 4).round() / 4,
        torch.rand(2, 1, 2, 2, generator=torch.Generator().manual_seed(2)),
    ],
)
def test_exchange_network_median_equals_the_sorted_median(x):
    with torch.no_grad():
        assert torch.equal(median_filter(x, 3), _sorted_median(x))


def test_median_gradient_goes_to_the_selected_pixel():
    x = torch.rand(1, 1, 5, 5, generator=torch.Generator().manual_seed(3), requires_grad=True)
    out = median_filter(x, 3)
    assert torch.equal(out.detach(), _sorted_median(x.detach()))
    out[0, 0, 2, 2].backward()
    grad = x.grad[0, 0]
    assert grad.sum() == 1 and (grad > 0).sum() == 1
    assert x[0, 0][grad > 0].item() == out[0, 0, 2, 2].item()
