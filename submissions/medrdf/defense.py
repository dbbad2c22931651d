"""MedRDF: Robust and Retrain-Less Diagnostic Framework (Xu, Zhang and Zhang, IEEE TMI 2022).

Follows ``medrdf_xu2022.md`` Sec. IV-B and Algorithm 1: ``n`` noisy copies ``x + eta`` of each
image (isotropic Gaussian, salt-and-pepper or Poisson noise at level ``sigma``, eq. 3), an
optional denoiser (none, Gaussian smoothing "GS" or median filter "MF", Sec. IV-B.2), the base
model's label for every copy, and a majority vote. The vote abstains unless the two-sided
binomial test of ``n_A`` against ``Binom(n_A + n_B, 1/2)`` has p <= alpha (eq. 5, alpha =
0.001). The Robust Metric is ``RM = K (n_A - n_B) / n`` (eq. 9).

Choices the paper leaves open (recorded in every result through the parameters):
* Gaussian noise has standard deviation sigma; salt-and-pepper replaces a share sigma of the
  pixels by 0 or 1 (half each, as scikit-image's ``s&p``); Poisson noise draws photon counts
  with peak 1/sigma^2 (noise std sigma * sqrt(x)). Noisy copies are clipped to [0, 1] (the
  base model's input range).
* The GS denoiser has standard deviation ``gs_sigma`` = 1 pixel, the MF denoiser a 3x3 window.
* ``n`` defaults to the paper's 10^4; CPU runs pass a smaller n (Table II: n = 100 is within
  2 points of n = 10^4) and say so.

Under gradient the wrapper returns the smoothed soft classifier, the log of the mean softmax
over ``attack_copies`` noisy copies (the adaptive attack on a voting defense); without gradient
it votes with ``n`` copies and returns the log vote shares, and it records the vote counts so
that the evaluation can apply the abstain rule and report RM. Both smoothed paths share the
copies' logits (``copy_logits``): ``soft`` is the log of their mean softmax, ``soft_votes`` the
mean of their softmax at a small temperature, the surrogate of the vote that ``apgd_vote``
(:mod:`benchmark.attacks.voting`) pushes below ``abstention_share(n)``, eq. 5's boundary as a
share of the top two votes: an abstention is an error, so an image whose vote is merely unclear
is broken.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from scipy.stats import binomtest
from torch import Tensor, nn

from benchmark.defenses import DefenseMeta, SubmissionError, VotingClassifier, VotingDefense
from benchmark.defenses.filters import gaussian_blur, median_filter

NOISES = ("gaussian", "salt_pepper", "poisson")
DENOISERS = ("none", "gaussian", "median")


def add_noise(x: Tensor, kind: str, sigma: float, gen: torch.Generator) -> Tensor:
    """One noisy copy of every image of ``x`` (eq. 3), clipped to [0, 1]."""
    if kind == "gaussian":
        noisy = x + sigma * torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    elif kind == "salt_pepper":
        u = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        salt = (u < sigma / 2).to(x.dtype)
        pepper = (u > 1 - sigma / 2).to(x.dtype)
        keep = 1 - salt - pepper
        noisy = x * keep + salt  # pepper pixels become 0, salt pixels 1
    else:  # poisson, peak 1 / sigma^2; x + (sample - x) keeps a gradient for adaptive attacks
        peak = 1.0 / sigma**2
        counts = torch.poisson((x.detach().clamp(0, 1) * peak), generator=gen)
        noisy = x + (counts / peak - x.detach())
    return noisy.clamp(0, 1)


def denoise(x: Tensor, kind: str, gs_sigma: float = 1.0) -> Tensor:
    """The pre-defined denoiser D (Sec. IV-B.2): none, Gaussian smoothing or a 3x3 median."""
    if kind == "none":
        return x
    return median_filter(x, 3) if kind == "median" else gaussian_blur(x, gs_sigma)


def abstains(counts: Tensor, alpha: float) -> Tensor:
    """Eq. 5: abstain unless the two-sided binomial test of n_A vs Binom(n_A + n_B, 1/2) has
    p-value <= alpha. ``counts``: (N, K) votes; returns a bool (N,) mask."""
    top = (
        counts.topk(2, dim=1).values
        if counts.shape[1] > 1
        else torch.cat([counts, torch.zeros_like(counts)], dim=1)
    )
    out = []
    for n_a, n_b in top.tolist():
        n_a, n_b = int(n_a), int(n_b)
        out.append(binomtest(n_a, n_a + n_b, 0.5).pvalue > alpha if n_a + n_b else True)
    return torch.tensor(out, dtype=torch.bool)


@functools.lru_cache(maxsize=256)
def binomial_boundary(n: int, alpha: float) -> float:
    """The smallest share ``n_A / n`` of ``n = n_A + n_B`` two-class votes that eq. 5 lets
    through (two-sided ``binomtest(n_A, n, 1/2).pvalue <= alpha``, as :func:`abstains`), or
    math.inf when even a unanimous vote abstains. The p-value falls as ``n_A`` grows above
    n/2, so the boundary is found by bisection (cached: the attack asks once per batch)."""
    if n < 1:
        return math.inf

    def passes(n_a: int) -> bool:
        return binomtest(n_a, n, 0.5).pvalue <= alpha

    if not passes(n):
        return math.inf
    lo, hi = n // 2, n  # passes(hi); a vote of n // 2 or fewer is not won
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if passes(mid) else (mid, hi)
    return hi / n


def robust_metric(counts: Tensor) -> Tensor:
    """Eq. 9: RM = K (n_A - n_B) / n for (N, K) vote counts."""
    n = counts.sum(dim=1).clamp_min(1)
    k = counts.shape[1]
    top = counts.topk(min(2, k), dim=1).values
    second = top[:, 1] if k > 1 else torch.zeros_like(top[:, 0])
    return k * (top[:, 0] - second) / n


class MedRDFClassifier(VotingClassifier):
    """The MedRDF classifier g around a base model h (Algorithm 1): ``votes`` is the majority
    vote over ``n`` noisy, denoised copies (lines 2-6), ``soft`` the smoothed classifier the
    adaptive attack differentiates."""

    def _copies(self, x: Tensor, m: int) -> Tensor:
        p = self.defense.params
        gen = self.defense.generator(x.device)
        noisy = add_noise(x.repeat_interleave(m, dim=0), p["noise"], float(p["sigma"]), gen)
        return denoise(noisy, p["denoiser"], float(p["gs_sigma"]))

    @property
    def n_votes(self) -> int:
        """The ``n`` copies of the vote."""
        return int(self.defense.params["n"])

    def copy_logits(self, x: Tensor) -> Tensor:
        """(N, attack_copies, K) base logits of ``attack_copies`` noisy, denoised copies
        (differentiable): ``soft`` is the log of their mean softmax, ``soft_votes`` the mean
        of their tempered softmax (the vote surrogate of the abstention-aimed attack)."""
        m = int(self.defense.params["attack_copies"])
        return self.base(self._copies(x, m)).view(x.shape[0], m, -1)

    @torch.no_grad()
    def votes(self, x: Tensor) -> Tensor:
        """(N, K) vote counts over ``n`` copies, classified ``batch`` copies at a time."""
        p = self.defense.params
        n, chunk = int(p["n"]), max(1, int(p["batch"]) // x.shape[0])
        counts = None
        done = 0
        while done < n:
            m = min(chunk, n - done)
            pred = self.base(self._copies(x, m)).argmax(dim=1).view(x.shape[0], m)
            k = self.base.num_classes
            c = F.one_hot(pred, k).sum(dim=1)
            counts = c if counts is None else counts + c
            done += m
        return counts  # type: ignore[return-value]


class MedRDF(VotingDefense):
    """MedRDF randomized voting with abstention and the Robust Metric (Algorithm 1)."""

    meta = DefenseMeta(
        kind="wrapper",
        randomized=True,
        differentiable=True,  # the smoothed soft classifier is attacked (EOT over the noise)
        forward_passes=10_000,
        reference="medrdf_xu2022.md Sec. IV-B, Algorithm 1, eqs. 3-9",
        version="1.0",
        license="MIT",
        authors=("Xu, Zhang and Zhang (method)", "MedRobustBench (implementation)"),
        name="MedRDF (salt-and-pepper noise, median filter)",
        paper="Xu, Zhang and Zhang, MedRDF, IEEE TMI 2022, Sec. IV-B, Algorithm 1, eqs. 3-9",
        threat_models=("oblivious", "adaptive"),
        description="MedRDF: noisy copies, denoiser, majority vote, abstention, Robust Metric",
    )
    defaults = {
        "noise": "salt_pepper",
        "sigma": 0.1,
        "denoiser": "median",
        "gs_sigma": 1.0,
        "n": 10_000,
        "alpha": 0.001,
        "batch": 4096,
        "attack_copies": 16,
        "rm_threshold": 1.0,
    }

    def setup(self) -> None:
        p = self.params
        if p["noise"] not in NOISES:
            raise SubmissionError(f"noise must be one of {', '.join(NOISES)}")
        if p["denoiser"] not in DENOISERS:
            raise SubmissionError(f"denoiser must be one of {', '.join(DENOISERS)}")
        if not 0 < float(p["sigma"]) <= 1:
            raise SubmissionError("sigma must be in (0, 1]")
        if int(p["n"]) < 1 or int(p["attack_copies"]) < 1 or int(p["batch"]) < 1:
            raise SubmissionError("n, attack_copies and batch must be >= 1")
        if not 0 < float(p["alpha"]) < 1:
            raise SubmissionError("alpha must be in (0, 1)")

    def wrap(self, model: nn.Module) -> MedRDFClassifier:
        return MedRDFClassifier(self, model)

    def abstention_share(self, n: int) -> float:
        """Eq. 5's boundary as a vote share: the smallest ``n_A / n`` with which ``n_A`` of
        ``n = n_A + n_B`` votes passes the binomial test at ``alpha`` (math.inf if none does).
        """
        return binomial_boundary(int(n), float(self.params["alpha"]))

    def vote_report(self, counts: Tensor, labels: Tensor) -> dict:
        """Abstain rate, accuracy with abstentions as errors, RM, and Table IX's breakdown
        (C. = correctly classified, R. = RM >= threshold) for (N, K) votes; the evaluation
        pops ``abstained_mask`` (bool per sample) to count abstentions as errors."""
        abstain = abstains(counts, float(self.params["alpha"]))
        pred = counts.argmax(dim=1)
        correct = (pred == labels.cpu()) & ~abstain
        rm = robust_metric(counts.float())
        robust = rm >= float(self.params["rm_threshold"])
        n = max(len(labels), 1)

        def share(mask: Tensor) -> float:
            return float(mask.sum()) / n

        return {
            "abstained_mask": abstain,
            "n_copies": int(self.params["n"]),
            "abstain_rate": share(abstain),
            "accuracy_abstain_as_error": share(correct),
            "accuracy_of_votes": share(pred == labels.cpu()),
            "rm_median": float(rm.median()),
            "rm_threshold": float(self.params["rm_threshold"]),
            "c_and_r": share(correct & robust),
            "c_not_r": share(correct & ~robust),
            "not_c_and_r": share(~correct & robust),
            "not_c_not_r": share(~correct & ~robust),
        }
