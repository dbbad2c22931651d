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
        attacks=[AttackCell.make("fgsm", "8/255")],
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
    assert doc["defense"]["eot_samples"] == 20 and doc["defense"]["kind"] == "wrapper"
