"""MedRDF (submissions/medrdf): abstain rule, Robust Metric, votes and the evaluation."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from scipy.stats import binomtest

from benchmark.attacks.presets import AttackCell
from benchmark.defenses import read_submission
from benchmark.evaluation import EvaluationConfig, evaluate
from benchmark.evaluation.cache import AdversarialCache

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def medrdf():
    sub = read_submission(ROOT / "submissions" / "medrdf")
    return sub, sys.modules[sub.defense_cls.__module__]


def test_abstain_rule_is_the_two_sided_binomial_test(medrdf):
    _, mod = medrdf
    counts = torch.tensor([[60, 40, 0], [990, 10, 0], [530, 470, 0], [10, 0, 0], [5, 5, 0]])
    got = mod.abstains(counts, alpha=0.001).tolist()
    expected = [
        binomtest(a, a + b, 0.5).pvalue > 0.001
        for a, b in ([60, 40], [990, 10], [530, 470], [10, 0], [5, 5])
    ]
    assert got == expected == [True, False, True, True, True]  # 10-0: p = 0.002 > 0.001
    # with alpha 0.05, 60 vs 40 is still not significant (p = 0.057); 10 vs 0 is (p = 0.002)
    assert mod.abstains(torch.tensor([[60, 40], [10, 0]]), alpha=0.05).tolist() == [True, False]


def test_robust_metric_by_hand(medrdf):
    _, mod = medrdf
    rm = mod.robust_metric(torch.tensor([[6.0, 3.0, 1.0], [10.0, 0.0, 0.0], [4.0, 4.0, 2.0]]))
    assert torch.allclose(rm, torch.tensor([3 * 3 / 10, 3 * 10 / 10, 0.0]))  # K (nA - nB) / n


def test_vote_report_counts_abstentions_as_errors(medrdf):
    sub, _ = medrdf
    defense = sub.build(n=20)
    counts = torch.tensor([[20, 0], [0, 20], [12, 8], [18, 2]])
    labels = torch.tensor([0, 0, 0, 1])
    report = defense.vote_report(counts, labels)
    assert report.pop("abstained_mask").tolist() == [False, False, True, False]  # 12-8: p=0.5
    assert report["abstain_rate"] == 0.25 and report["accuracy_abstain_as_error"] == 0.25
    assert report["accuracy_of_votes"] == 0.5  # 12-8 votes for the right class, abstained
    assert report["c_and_r"] == 0.25  # RM = 2 (20 - 0) / 20 = 2 >= 1
    assert report["not_c_and_r"] == 0.5  # 0-20 (RM 2) and 18-2 (RM 1.6) are wrong but "robust"
    assert sum(report[k] for k in ("c_and_r", "c_not_r", "not_c_and_r", "not_c_not_r")) == 1


@pytest.mark.parametrize("noise", ["gaussian", "salt_pepper", "poisson"])
def test_noise_levels(medrdf, noise):
    _, mod = medrdf
    gen = torch.Generator().manual_seed(0)
    x = torch.full((1, 1, 64, 64), 0.5)
    noisy = mod.add_noise(x, noise, 0.1, gen)
    assert noisy.min() >= 0 and noisy.max() <= 1
    if noise == "salt_pepper":
        changed = (noisy != 0.5).float().mean()
        assert abs(float(changed) - 0.1) < 0.02  # a share sigma of the pixels
    else:  # std sigma (gaussian) or sigma * sqrt(0.5) (poisson, peak 1 / sigma^2)
        target = 0.1 if noise == "gaussian" else 0.1 * 0.5**0.5
        assert abs(float((noisy - x).std()) - target) < 0.01


def test_medrdf_through_the_evaluation(medrdf, tiny_models, shared_data, tmp_path):
    config = EvaluationConfig(
        dataset="breastmnist",
        arch="tiny_cnn",
        attacks=[AttackCell.make("fgsm", "8/255"), AttackCell.make("apgd_vote", "8/255", steps=5)],
        suite="custom",
        n_examples=16,
        sanity_attack=False,
        defense=str(ROOT / "submissions" / "medrdf"),
        defense_params={"n": 50, "attack_copies": 4},
        threat_models=["oblivious", "adaptive"],
    )
    doc, _ = evaluate(
        config, data_dir=shared_data, zoo=tiny_models["zoo"], cache=AdversarialCache(tmp_path)
    )
    votes = doc["metrics"]["clean_votes"]
    assert votes["n_copies"] == 50 and 0 <= votes["abstain_rate"] <= 1
    acc = doc["metrics"]["clean"]["accuracy"]["value"]
    assert acc == pytest.approx(votes["accuracy_abstain_as_error"])
    for block in doc["attacks"]:
        assert block["votes"]["accuracy_abstain_as_error"] == pytest.approx(
            block["metrics"]["robust_accuracy"]["value"]
        )
    # apgd_vote aims at the vote on the adaptive pass and at the base model on the oblivious one
    vote = {
        b["threat_model"]: b["config"]["params"]
        for b in doc["attacks"]
        if b["attack"] == "apgd_vote"
    }
    assert vote["adaptive"]["vote"] == "smoothed" and vote["oblivious"]["vote"] == "single_model"
    assert vote["adaptive"]["abstention_share"] == 0.74  # n = 50, alpha = 0.001: 37 of 50
    assert doc["defense"]["eot_samples"] == 20 and doc["defense"]["kind"] == "wrapper"


# -- the vote surrogate and the abstention-aimed attack (apgd_vote) ----------------------------


def test_abstention_share_is_the_binomial_boundary(medrdf):
    sub, mod = medrdf
    defense = sub.build(n=100, alpha=0.001)
    # by hand: the smallest winning n_A of 100 votes with a two-sided p-value <= alpha
    n_a = min(a for a in range(50, 101) if binomtest(a, 100, 0.5).pvalue <= 0.001)
    assert n_a == 67 and defense.abstention_share(100) == 0.67
    assert mod.abstains(torch.tensor([[67, 33], [66, 34]]), alpha=0.001).tolist() == [False, True]
    assert (
        sub.build(alpha=0.05).abstention_share(200) == 115 / 200
    )  # p(115) = 0.040, p(114) = 0.056
    assert defense.abstention_share(10) == float("inf")  # 10-0 has p = 0.002: all abstain
    assert defense.wrap(torch.nn.Identity()).n_votes == 100


class _Hesitant(torch.nn.Module):
    """A toy base model on 8x8 images, d = mean pixel - 1/2: class 1 when d > 0, with logit gap
    1000 d when it votes class 1 and only 3 d when it votes class 0 (confident when right,
    hesitant when wrong). Under MedRDF's Gaussian copies the mean softmax stays near or above
    3/4 while the hard vote of its copies is a coin toss."""

    num_classes = 2
    multi_label = False

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.full((64,), 1 / 64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x.flatten(1) @ self.w - 0.5
        gap = torch.where(d > 0, 1000 * d, 3 * d)
        return torch.stack([torch.zeros_like(gap), gap], dim=1)


def test_abstention_aimed_attack_beats_cross_entropy_on_a_toy_vote(medrdf):
    """Five class-1 images with a clear clean vote (share > 0.9 of 200); eps = 0.05 moves
    every image's copies to a vote of about 1/2, inside the abstention band (0.38, 0.62) of
    n = 200, alpha = 0.001. APGD-CE on the smoothed classifier (the evaluation's adaptive
    attack) keeps an image's clean version unless the mean softmax's top class changes, which
    it does not here; apgd_vote aims at the vote's margin below the abstention share and keeps
    its best iterate, so every image abstains. (This monotone toy shows the success criterion
    and the returned iterate; the two losses ascend in the same direction on it.)"""
    from benchmark.attacks import build_attack
    from benchmark.defenses import DefendedModel
    from benchmark.evaluation.defended import EOTModel

    sub, _ = medrdf
    gen = torch.Generator().manual_seed(0)
    texture = 0.05 * (2 * torch.rand(5, 1, 8, 8, generator=gen) - 1)
    x = 0.5 + torch.tensor([0.050, 0.051, 0.052, 0.053, 0.054]).view(-1, 1, 1, 1) + texture
    y = torch.ones(5, dtype=torch.long)
    defense = sub.build(
        noise="gaussian", sigma=0.25, denoiser="none", n=200, attack_copies=16, alpha=0.001
    )
    model = _Hesitant()
    scorer = DefendedModel(model, defense)  # votes as the evaluation scores
    attacked = EOTModel(DefendedModel(model, defense, adaptive=True), samples=20)

    def report(images: torch.Tensor) -> dict:
        defense.reseed(101)
        with torch.no_grad():
            scorer(images)
        return defense.vote_report(scorer.inner.take_votes(), y)

    def attack(name: str) -> torch.Tensor:
        defense.reseed(1)  # the same noise draws for both attacks
        return build_attack(name, attacked, eps=0.05, seed=0, steps=100)(x, y)

    clean = report(x)
    ce, vote = report(attack("apgd_ce")), report(attack("apgd_vote"))
    assert defense.abstention_share(200) == 0.62
    assert clean["accuracy_abstain_as_error"] == 1.0 and clean["abstain_rate"] == 0.0
    assert ce["accuracy_abstain_as_error"] == 1.0  # CE leaves all five unbroken
    assert vote["accuracy_abstain_as_error"] == 0.0 and vote["abstain_rate"] == 1.0
    assert vote["accuracy_abstain_as_error"] < ce["accuracy_abstain_as_error"]


def test_soft_is_unchanged_and_soft_votes_approach_the_vote(medrdf):
    """``soft`` equals the formula before the copies were shared with ``soft_votes``; the vote
    surrogate sums to 1 and nears the hard vote share of the same copies as T -> 0."""
    from benchmark.models import build_model

    sub, mod = medrdf
    torch.manual_seed(0)
    base = build_model("tiny_cnn", in_channels=1, num_classes=2, image_size=28).eval()
    defense = sub.build(n=64, attack_copies=8)
    voter = defense.wrap(base)
    x = torch.rand(3, 1, 28, 28)
    p = defense.params

    defense.reseed(5)
    noisy = mod.add_noise(
        x.repeat_interleave(8, dim=0), p["noise"], p["sigma"], defense.generator("cpu")
    )
    logits = base(mod.denoise(noisy, p["denoiser"], p["gs_sigma"]))
    old = torch.softmax(logits, dim=1).view(3, 8, -1).mean(dim=1).clamp_min(1e-12).log()
    defense.reseed(5)
    assert torch.equal(voter.soft(x), old)

    hard = torch.nn.functional.one_hot(logits.argmax(1), 2).view(3, 8, 2).float().mean(1)
    for t in (1.0, 0.1, 1e-3):
        defense.reseed(5)
        shares = voter.soft_votes(x, t)
        assert torch.allclose(shares.sum(1), torch.ones(3))
    gap = (logits[:, 1] - logits[:, 0]).abs().min()
    assert gap > 1e-3 * 20  # so the T = 1e-3 surrogate is within 1e-8 of the hard vote
    assert torch.allclose(shares, hard, atol=1e-6)
    defense.reseed(5)
    x_req = x.clone().requires_grad_(True)
    with voter.tempered_votes(0.1):
        out = voter(x_req)
    defense.reseed(5)
    assert torch.allclose(out, voter.log_soft_votes(x, 0.1))
    assert voter.vote_temperature is None


def test_apgd_vote_refuses_a_vote_without_its_surrogate(medrdf):
    """A voting classifier with only ``soft`` and ``votes`` has no vote surrogate to attack."""
    from benchmark.attacks import AttackError, build_attack
    from benchmark.defenses import VotingClassifier, VotingDefense

    class SoftOnly(VotingClassifier):
        def soft(self, x):
            return torch.log_softmax(self.base(x), dim=1)

    class Plain(VotingDefense):
        meta = medrdf[0].meta

        def wrap(self, model):
            return SoftOnly(self, model)

    base = _Hesitant()
    with pytest.raises(AttackError, match="copy_logits"):
        build_attack("apgd_vote", Plain().wrap(base), eps=0.01)
    assert build_attack("apgd_vote", base, eps=0.01).config()["params"]["abstention_share"] == 0.5
