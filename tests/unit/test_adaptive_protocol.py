"""The adaptive-track protocol end to end on a tiny CNN trained on real BreastMNIST, behind a
randomized defense (random resize-and-pad): both passes, Square on the deployed pipeline in
the adaptive pass only, worst-of-draws scoring, the convergence sweeps, and a results file that
the protocol check accepts. The budgets are shrunk through a test protocol of the same shape
as ``mrb_linf_adaptive_v2``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmark.evaluation import EvaluationConfig, evaluate
from benchmark.evaluation.cache import AdversarialCache
from benchmark.leaderboard.statuses import unreliable_reason
from benchmark.results.conformance import protocol_problems
from benchmark.results.outcomes import unpack_outcomes
from benchmark.results.protocols import PROTOCOLS, Protocol, ProtocolAttack
from benchmark.results.view import RunView

ROOT = Path(__file__).resolve().parents[2]

TINY = Protocol(
    id="tiny_adaptive",
    version="0",
    track="adaptive",
    norm="linf",
    budgets=(2 / 255, 8 / 255),
    attacks=(
        ProtocolAttack("autoattack_ref", (("n_queries", 10), ("steps", 2))),
        ProtocolAttack("square_ref", (("n_queries", 10),), passes=("adaptive",), when="randomized"),
    ),
    threat_models=("oblivious", "adaptive"),
    eot_samples=2,
    draws=3,
    sweep_factor=2,
    # version 2's two sanity attacks, shrunk
    sanity=(ProtocolAttack("pgd", (("steps", 2),)), ProtocolAttack("apgd_ce", (("steps", 2),))),
)


@pytest.fixture
def tiny_protocol(monkeypatch):
    monkeypatch.setitem(PROTOCOLS._entries, TINY.id, TINY)
    return TINY


def test_an_adaptive_protocol_run_of_a_randomized_defense(
    tiny_models, shared_data, tmp_path, tiny_protocol
):
    config = EvaluationConfig.from_options(
        dataset="breastmnist",
        arch="tiny_cnn",
        protocol=TINY.id,
        defense=str(ROOT / "submissions" / "random_resize_pad"),
        eot_samples=2,
        draws=3,
    )
    doc, _ = evaluate(
        config,
        data_dir=shared_data,
        zoo=tiny_models["zoo"],
        out_dir=tmp_path / "results",
        cache=AdversarialCache(tmp_path / "cache"),
        progress=False,
    )
    assert protocol_problems(doc) == []
    n = doc["data"]["n"]
    assert n == doc["data"]["n_split"] == 156
    assert doc["defense"]["draws"] == 3 and doc["defense"]["eot_samples"] == 2
    blocks = [b for b in doc["attacks"] if not b.get("sanity_only")]
    where = sorted((b["attack"], b["threat_model"], b["eps_label"]) for b in blocks)
    assert where == sorted(
        [("autoattack_ref", tm, e) for tm in ("oblivious", "adaptive") for e in ("2/255", "8/255")]
        + [("square_ref", "black_box", e) for e in ("2/255", "8/255")]
    )
    for b in blocks:
        if b["threat_model"] == "adaptive":  # AutoAttack's rand version on the pipeline
            assert b["config"]["reference"]["version"] == "rand"
        # worst of 3 draws: never above the first draw, per image
        draws = b["draws"]
        assert draws["R"] == 3
        worst = unpack_outcomes(b["outcomes"]["correct"], n)
        single = unpack_outcomes(draws["single_draw_outcomes"]["correct"], n)
        assert not np.any(worst & ~single)
        assert min(draws["accuracy_per_draw"]) >= worst.mean()
    assert doc["metrics"]["clean"]["draws"]["R"] == 3
    # Both sanity attacks ran in both passes; the large-eps check of the adaptive pass (the
    # primary one) is, per image, the worst case over its two sanity blocks.
    sanity = [b for b in doc["attacks"] if b.get("sanity_only")]
    assert sorted((b["attack"], b["threat_model"]) for b in sanity) == sorted(
        (a, tm) for a in ("pgd", "apgd_ce") for tm in ("oblivious", "adaptive")
    )
    both = np.ones(n, dtype=bool)
    for b in sanity:
        if b["threat_model"] == "adaptive":
            both &= unpack_outcomes(b["outcomes"]["correct"], n)
    check = next(c for c in doc["sanity_checks"] if c["name"] == "large_eps_pgd")
    assert check["details"]["attack"] == "PGD-2 and APGD-CE-2"
    assert check["details"]["accuracy"] == pytest.approx(both.mean())
    convergence = doc["convergence"]
    assert convergence["reliable"] is all(b["broken"] <= 1 for b in convergence["budgets"])
    for budget in convergence["budgets"]:
        sweeps = {s["sweep"]: s for s in budget["sweeps"]}
        assert sweeps["iterations"]["steps"] == 4 and sweeps["iterations"]["eot_draws"] == 2
        assert sweeps["eot"]["steps"] == 2 and sweeps["eot"]["eot_draws"] == 4
        assert budget["broken"] >= max(s["broken"] for s in sweeps.values())
        assert budget["broken"] <= budget["robust_before"]
        # The sweeps attacked the images the worst case over both passes leaves robust: the
        # figure the board ranks (an oblivious attack can break what the adaptive pass missed).
        robust = RunView(doc).worst_case_outcomes("linf", budget["eps"])
        assert budget["robust_before"] == int(robust.sum())
    reason = unreliable_reason(RunView(doc)) or ""
    assert "the check attacked" not in reason


def test_the_sweeps_of_a_voting_defense_run_at_every_budget(
    tiny_models, shared_data, tmp_path, tiny_protocol
):
    """MedRDF votes over its own smoothing copies: the EOT sweep scales ``attack_copies`` for
    each budget in turn (it crashed at the second budget when the scaling was entered once)
    and puts it back afterwards; a second run resumes every sweep from the cache."""
    config = EvaluationConfig.from_options(
        dataset="breastmnist",
        arch="tiny_cnn",
        protocol=TINY.id,
        defense=str(ROOT / "submissions" / "medrdf"),
        defense_params=["n=4", "attack_copies=2", "denoiser=none"],
        eot_samples=2,
        draws=3,
    )
    run = dict(data_dir=shared_data, zoo=tiny_models["zoo"], progress=False)
    cache = AdversarialCache(tmp_path / "cache")
    doc, _ = evaluate(config, out_dir=tmp_path / "a", cache=cache, **run)
    budgets = doc["convergence"]["budgets"]
    assert [b["eps_label"] for b in budgets] == ["2/255", "8/255"]
    for budget in budgets:
        eot = next(s for s in budget["sweeps"] if s["sweep"] == "eot")
        assert eot["eot_draws"] == 4  # 2 x the defense's 2 attack copies, at each budget
    assert doc["defense"]["config"]["params"]["attack_copies"] == 2  # put back
    again, _ = evaluate(config, out_dir=tmp_path / "b", cache=cache, **run)
    for first, second in zip(budgets, again["convergence"]["budgets"], strict=True):
        assert (second["broken"], second["robust_before"]) == (
            first["broken"],
            first["robust_before"],
        )
        assert [s["broken"] for s in second["sweeps"]] == [s["broken"] for s in first["sweeps"]]
        # every batch of the check came from the first run's cache, and its cost with it
        assert (second.get("resumed_batches") or 0) >= (first["robust_before"] > 0)
        assert second["backward_images"] == first["backward_images"]
