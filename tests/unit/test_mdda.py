"""MDDA (submissions/mdda): the batched TV solver against scikit-image, and the pipeline."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.restoration import denoise_tv_bregman

from benchmark.defenses import read_submission

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mdda():
    sub = read_submission(ROOT / "submissions" / "mdda")
    return sub, sys.modules[sub.defense_cls.__module__]


def _eq13(u: np.ndarray, f: np.ndarray, gamma: float) -> float:
    tv = np.abs(np.diff(u, axis=0)).sum() + np.abs(np.diff(u, axis=1)).sum()
    return float(tv + gamma / 2 * ((u - f) ** 2).sum())


@pytest.mark.parametrize("weight", [5.0, 10.0, 20.0])
def test_tv_solver_matches_scikit_image(mdda, weight):
    _, mod = mdda
    rng = np.random.default_rng(0)
    f = np.zeros((32, 32))
    f[8:24, 8:24] = 0.8
    f = np.clip(f + rng.normal(0, 0.1, f.shape), 0, 1)
    ref = denoise_tv_bregman(f, weight=weight, isotropic=False, max_num_iter=3000, eps=1e-9)
    ours = mod.tv_denoise(torch.tensor(f)[None, None], weight, iterations=1500)[0, 0].numpy()
    assert np.abs(ours - ref).mean() < 0.01 and np.abs(ours - ref).max() < 0.06
    assert _eq13(ours, f, weight) <= _eq13(ref, f, weight) + 1e-6  # as good a minimiser
    assert _eq13(ours, f, weight) < _eq13(f, f, weight)  # and it does denoise


def test_tv_solver_is_batched_and_differentiable(mdda):
    _, mod = mdda
    x = torch.rand(3, 2, 16, 16, dtype=torch.float64)
    batched = mod.tv_denoise(x, 10.0, iterations=40)
    single = torch.stack([mod.tv_denoise(x[i : i + 1], 10.0, iterations=40)[0] for i in range(3)])
    assert torch.allclose(batched, single)
    xg = x.clone().requires_grad_(True)
    mod.tv_denoise(xg, 10.0, iterations=5).sum().backward()
    assert torch.isfinite(xg.grad).all()
    # tiny case solved by hand: two pixels 0 and 1, gamma 10 -> 0.1 and 0.9
    pair = mod.tv_denoise(torch.tensor([[[[0.0, 1.0]]]], dtype=torch.float64), 10.0, 500)
    assert torch.allclose(pair, torch.tensor([[[[0.1, 0.9]]]], dtype=torch.float64), atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_cpu_solver_equals_the_torch_iteration(mdda, dtype):
    """The numba kernel runs the torch path's iteration: equal to rounding on odd shapes and
    sizes down to one pixel, image by image as in a batch; a gradient keeps the torch path."""
    _, mod = mdda
    if mod.numba is None:
        pytest.skip("numba is not installed")
    gen = torch.Generator().manual_seed(0)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for shape in [(5, 1, 28, 28), (2, 3, 9, 14), (1, 1, 1, 2), (3, 1, 1, 1), (1, 2, 56, 56)]:
        x = torch.rand(shape, generator=gen, dtype=dtype)
        torch_path = mod.tv_denoise(x, 120.0, 10, fused=False)
        fused = mod.tv_denoise(x, 120.0, 10)
        assert fused.dtype == dtype and fused.shape == x.shape
        assert (fused - torch_path).abs().max() < tol, shape
        assert (fused - x).abs().max() > 1e-3 or shape[-2:] == (1, 1)  # it did smooth
    singles = torch.cat([mod.tv_denoise(x[i : i + 1], 120.0, 10) for i in range(len(x))])
    assert torch.equal(singles, mod.tv_denoise(x, 120.0, 10))
    xg = x.clone().requires_grad_(True)
    out = mod.tv_denoise(xg, 120.0, 10)
    assert out.grad_fn is not None  # differentiable: the attack's path is the torch one
    assert (out.detach() - torch_path).abs().max() < tol


def test_pipeline_scales_and_parameters(mdda):
    sub, mod = mdda
    assert mod.SCALES == (0.25, 0.5, 1.0, 2.0)
    x = torch.rand(2, 1, 28, 28)
    out = sub.build(seed=1, blocks=2, tv_iterations=5).purify(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    ramp = torch.linspace(0, 1, 28).view(1, 1, 1, 28).expand(1, 1, 28, 28).contiguous()
    quiet = sub.build(seed=1, sigma2=0.0, gamma=1e6, tv_iterations=5).purify(ramp)
    # without noise and with almost no smoothing only the pyramid's resampling remains
    assert (quiet - ramp).abs().mean() < 0.06  # nearest 1/4 down-sampling shifts a ramp
    assert sub.build(seed=1).params["gamma"] == 120.0


def test_default_solver_budget_reaches_the_minimiser(mdda):
    """10 iterations with lambda = gamma / 4 (the defaults) land within about a grey level of
    the converged eq. 13 solution at the MDDA weight, on a noisy structured image."""
    sub, mod = mdda
    params = sub.build(seed=0).params
    gamma, iters = float(params["gamma"]), int(params["tv_iterations"])
    assert iters == 10
    gen = torch.Generator().manual_seed(0)
    f = torch.zeros(4, 1, 28, 28, dtype=torch.float64)
    f[:, :, 6:20, 8:22] = 0.7
    f = (f + 0.08 * torch.randn(f.shape, generator=gen, dtype=torch.float64)).clamp(0, 1)
    star = mod.tv_denoise(f, gamma, iterations=1000)
    fast = mod.tv_denoise(f, gamma, iterations=iters)
    assert (fast - star).abs().max() < 0.006 and (fast - star).abs().mean() < 5e-4
    assert (mod.tv_denoise(f, gamma, iterations=1) - star).abs().max() > 0.006  # not trivial


def test_the_defended_pipeline_keeps_the_runs_thread_count(mdda):
    """numba's parallel layer resets the OpenMP pool torch shares (MDDA's fused solver left torch
    at numba's thread count); the pipeline restores the count its run started with."""
    from benchmark.defenses.pipeline import DefendedModel

    sub, _ = mdda
    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 2))
    seen: list[int] = []

    class Recording(torch.nn.Module):  # the thread count the base model runs at
        def forward(self, x):
            seen.append(torch.get_num_threads())
            return linear(x)

    base = Recording()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        defended = DefendedModel(base, sub.build(seed=0, tv_iterations=3))
        with torch.no_grad():
            defended(torch.rand(3, 1, 28, 28))
            defended(torch.rand(3, 1, 28, 28))
        assert seen == [1, 1] and torch.get_num_threads() == 1

        class Meddling(torch.nn.Module):
            def forward(self, x):
                torch.set_num_threads(2)
                return linear(x)

        defended.base = Meddling()  # any step of the pipeline, not only the purifier
        with torch.no_grad():
            defended(torch.rand(3, 1, 28, 28))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
