"""Evaluating defenses: oblivious reuse of the undefended attack, adaptive BPDA/EOT, flags."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmark.attacks.presets import AttackCell
from benchmark.defenses import DefendedModel, SubmissionError, read_submission
from benchmark.evaluation import EvaluationConfig, evaluate
from benchmark.evaluation.cache import AdversarialCache
from benchmark.evaluation.defended import EOTModel
from benchmark.evaluation.sanity import oblivious_vs_adaptive

ROOT = Path(__file__).resolve().parents[2]
CELLS = [AttackCell.make("pgd", "8/255", steps=3)]


def _run(tiny_models, shared_data, cache_root, **kw):
    config = EvaluationConfig(
        dataset="breastmnist",
        arch="tiny_cnn",
        attacks=CELLS,
        suite="custom",
        n_examples=24,
        sanity_attack=False,
        **kw,
    )
    return evaluate(
        config, data_dir=shared_data, zoo=tiny_models["zoo"], cache=AdversarialCache(cache_root)
    )


def test_oblivious_reuses_the_undefended_examples_and_adaptive_is_stronger(
    tiny_models, shared_data, tmp_path
):
    undefended, _ = _run(tiny_models, shared_data, tmp_path / "c")
    doc, path = _run(
        tiny_models,
        shared_data,
        tmp_path / "c",
        defense=str(ROOT / "submissions" / "bit_depth_reduction"),
        defense_params={"bits": 2},
        threat_models=["oblivious", "adaptive"],
    )
    assert path.parent.name == "tiny_cnn_breastmnist_28px_s0__bit_depth_reduction__bits=2"
    obl, ada = doc["attacks"]
    assert (obl["threat_model"], ada["threat_model"]) == ("oblivious", "adaptive")
    assert obl["timing"]["cached"]  # the undefended run's examples, not a new attack
    assert obl["perturbation"] == undefended["attacks"][0]["perturbation"]
    assert not ada["timing"]["cached"] and ada["perturbation"] != obl["perturbation"]
    assert doc["defense"]["bpda"] and doc["defense"]["config"]["params"] == {"bits": 2}
    assert doc["config"]["threat_model"] == "oblivious+adaptive"
    assert "undefended_clean" in doc["metrics"]
    assert doc["defense"]["cost"]["defended_ms_per_image"] > 0
    names = [c["name"] for c in doc["sanity_checks"]]
    assert "oblivious_vs_adaptive" in names and doc["worst_case_threat_model"] == "adaptive"
    by_tm = doc["worst_case_by_threat_model"]
    assert set(by_tm) == {"oblivious", "adaptive", "any"}
    obl_acc = by_tm["oblivious"][0]["robust_accuracy"]["value"]
    assert obl_acc == obl["metrics"]["robust_accuracy"]["value"]
    ada_acc = by_tm["adaptive"][0]["robust_accuracy"]["value"]
    # robust to every attack of the run: at most either threat model's figure
    assert by_tm["any"][0]["robust_accuracy"]["value"] <= min(obl_acc, ada_acc)


def test_a_forced_bpda_adaptive_run_is_a_second_run_of_the_same_entry(
    tiny_models, shared_data, tmp_path
):
    """``adaptive_gradient="bpda"`` crafts new adaptive examples (its own cache key), is stored
    under the suite ``custom-bpda`` beside the exact-gradient run, and says so in its record."""
    from benchmark.errors import ConfigError
    from benchmark.leaderboard import group_entries, load_runs

    smoothing = str(ROOT / "submissions" / "gaussian_smoothing")
    common = dict(defense=smoothing, threat_models=["oblivious", "adaptive"])
    exact, exact_path = _run(tiny_models, shared_data, tmp_path / "c", **common)
    doc, path = _run(tiny_models, shared_data, tmp_path / "c", adaptive_gradient="bpda", **common)
    assert exact_path.parts[-3] == "custom" and path.parts[-3] == "custom-bpda"
    assert path.parent.name == exact_path.parent.name
    assert doc["config"]["adaptive_gradient"] == "bpda" and doc["defense"]["bpda"]
    assert not exact["defense"]["bpda"]
    obl, ada = doc["attacks"]
    assert obl["timing"]["cached"] and not ada["timing"]["cached"]
    assert ada["perturbation"] != exact["attacks"][1]["perturbation"]
    runs, invalid = load_runs(path.parents[3])
    assert not invalid
    (entry,) = group_entries(runs)
    assert sorted(r.suite for r in entry.runs) == ["custom", "custom-bpda"]
    with pytest.raises(ConfigError, match="needs --threat-model adaptive"):
        _run(tiny_models, shared_data, tmp_path / "c", defense=smoothing, adaptive_gradient="bpda")
    with pytest.raises(ConfigError, match="applies to a preprocessing defense"):
        _run(tiny_models, shared_data, tmp_path / "c", adaptive_gradient="bpda")
    with pytest.raises(ConfigError, match="must be exact or bpda"):
        _run(tiny_models, shared_data, tmp_path / "c", adaptive_gradient="approx", **common)


def test_query_attacks_on_a_defense_are_black_box_on_the_deployed_pipeline(
    tiny_models, shared_data, tmp_path
):
    """In the adaptive pass Square queries the defended pipeline itself (no EOT, no BPDA)
    and is labelled black_box; in the oblivious pass it runs on the base model."""
    cells = [AttackCell.make("square", "8/255", n_queries=20)]
    config = EvaluationConfig(
        dataset="breastmnist",
        arch="tiny_cnn",
        attacks=cells,
        suite="custom",
        n_examples=12,
        sanity_attack=False,
        defense=str(ROOT / "submissions" / "random_resize_pad"),
        threat_models=["oblivious", "adaptive"],
        eot_samples=3,
    )
    doc, _ = evaluate(
        config,
        data_dir=shared_data,
        zoo=tiny_models["zoo"],
        cache=AdversarialCache(tmp_path / "c"),
    )
    labels = [a["threat_model"] for a in doc["attacks"]]
    assert labels == ["oblivious", "black_box"]
    assert set(doc["worst_case_by_threat_model"]) == {"oblivious", "adaptive", "any"}
    check = {c["name"]: c for c in doc["sanity_checks"]}["whitebox_vs_blackbox"]
    assert check["status"] == "not_applicable"  # no white-box attack in this run


def test_pass_target_routes_each_attack_kind():
    from benchmark.evaluation.passes import pass_target

    base, defended, eot = torch.nn.Identity(), torch.nn.ReLU(), torch.nn.Tanh()
    pgd = AttackCell.make("pgd", "2/255")
    square = AttackCell.make("square", "2/255")
    transfer = AttackCell.make("transfer", "2/255")
    assert pass_target("adaptive", pgd, base, defended, eot) == ("adaptive", eot)
    assert pass_target("adaptive", square, base, defended, eot) == ("black_box", defended)
    assert pass_target("adaptive", transfer, base, defended, eot) == (None, base)
    assert pass_target("oblivious", square, base, defended, eot) == ("oblivious", base)
    assert pass_target("oblivious", transfer, base, defended, eot) == ("transfer", base)
    assert pass_target("white-box", transfer, base, None, None) == ("white-box", base)
    # adaptive-only runs craft the transfer cells in the adaptive pass
    assert pass_target("adaptive", transfer, base, defended, eot, False) == ("transfer", base)


def test_results_folder_names_the_defense_configuration():
    from benchmark.results.naming import params_slug, result_path

    doc = {
        "run_id": "r",
        "config": {
            "model_id": "m",
            "dataset": "d",
            "suite": "s",
            "defense": "medrdf",
            "defense_params": {"noise": "gaussian", "n": 100},
        },
    }
    assert result_path(Path("o"), doc) == Path("o/d/s/m__medrdf__n=100,noise=gaussian/r.json")
    assert params_slug({"k": "a b/c"}).startswith("k=a-b-c,")
    assert params_slug({"k": "a b/c"}) != params_slug({"k": "a/b c"})


def test_invalid_defense_fails_before_any_work(tiny_models, shared_data, tmp_path):
    with pytest.raises(SubmissionError, match="bits must be between 1 and 8"):
        _run(
            tiny_models,
            shared_data,
            tmp_path / "c",
            defense=str(ROOT / "submissions" / "bit_depth_reduction"),
            defense_params={"bits": 0},
        )
    assert not (tmp_path / "c").exists()  # nothing was attacked or cached


def test_eot_averages_probabilities_over_draws():
    sub = read_submission(ROOT / "submissions" / "random_resize_pad")
    defense = sub.build(seed=3)
    base = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    base.multi_label = False
    x = torch.rand(2, 1, 8, 8)
    eot = EOTModel(DefendedModel(base, defense, adaptive=True), samples=4)
    defense.reseed(3)
    out = eot(x)
    defense.reseed(3)
    draws = torch.stack([torch.softmax(base(defense.purify(x)), 1) for _ in range(4)])
    assert torch.allclose(out.exp(), draws.mean(0), atol=1e-6)
    xg = x.clone().requires_grad_(True)
    eot(xg).sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0
    deterministic = read_submission(ROOT / "submissions" / "median_filter").build()
    assert EOTModel(DefendedModel(base, deterministic), samples=20).samples == 1


def test_obfuscation_flag():
    obl = [{"cell_id": "pgd", "accuracy": 0.80}, {"cell_id": "fgsm", "accuracy": 0.7}]
    ok = oblivious_vs_adaptive(obl, [{"cell_id": "pgd", "accuracy": 0.75}])
    assert ok["status"] == "pass" and ok["flag"] == ""
    bad = oblivious_vs_adaptive(obl, [{"cell_id": "pgd", "accuracy": 0.10}])
    assert bad["status"] == "fail" and bad["flag"] == "robustness from obfuscation"
    # A robust model's oblivious cells are transfers from the undefended model: no verdict.
    trained = oblivious_vs_adaptive(obl, [{"cell_id": "pgd", "accuracy": 0.10}], training=True)
    assert trained["status"] == "not_applicable" and not trained["flag"]
    assert trained["details"]["gaps"] == bad["details"]["gaps"]
    assert bad["details"]["cell"] == "pgd" and bad["details"]["largest_gap"] == pytest.approx(0.7)
    assert oblivious_vs_adaptive(obl, [])["status"] == "not_applicable"
    # a black-box cell on the pipeline is a different attack, not the same one made adaptive
    square = [{"cell_id": "pgd", "accuracy": 0.10, "threat_model": "black_box"}]
    assert oblivious_vs_adaptive(obl, square)["status"] == "not_applicable"


def test_autoattack_rand_version_on_randomized_defenses():
    from benchmark.attacks.base import build_attack
    from benchmark.evaluation.passes import adaptive_overrides

    aa = AttackCell.make("autoattack", "2/255")
    rrp = read_submission(ROOT / "submissions" / "random_resize_pad").build()
    med = read_submission(ROOT / "submissions" / "median_filter").build()
    averaging = type("EOT", (), {"averages": True})()
    single = type("EOT", (), {"averages": False})()
    rand = {"version": "rand", "eot_iter": 1}
    assert adaptive_overrides("adaptive", aa, rrp, averaging) == rand
    assert adaptive_overrides("adaptive", aa, rrp, single) == {**rand, "eot_iter": 20}
    assert adaptive_overrides("adaptive", aa, med, averaging) == {}
    assert adaptive_overrides("oblivious", aa, rrp, averaging) == {}
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    model.num_classes = 2
    attack = build_attack("autoattack", model, eps=2 / 255, version="rand", eot_iter=5)
    names = [n for n, _ in attack.subattacks()]
    assert names == ["apgd_ce"]  # APGD-DLR needs three classes
    assert attack.subattacks()[0][1].eot_iter == 5
    model.num_classes = 4
    assert [n for n, _ in attack.subattacks()] == ["apgd_ce", "apgd_dlr"]
    with pytest.raises(Exception, match="version must be standard or rand"):
        build_attack("autoattack", model, eps=2 / 255, version="plus")


class _Logit1(torch.nn.Module):
    """Two logits, (0, sum(w * f(u))): the gradient of the second one is known in closed form."""

    multi_label = False
    num_classes = 2

    def __init__(self, w: torch.Tensor, square: bool = False) -> None:
        super().__init__()
        self.w, self.square = w, square

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        v = u * u if self.square else u
        z = (self.w * v).flatten(1).sum(1)
        return torch.stack([torch.zeros_like(z), z], dim=1)


def test_eot_and_bpda_gradients_match_a_hand_computation():
    from typing import ClassVar

    from benchmark.defenses.base import Defense, DefenseMeta

    class Shift(Defense):
        meta = DefenseMeta(kind="preprocessing", randomized=True, differentiable=True)
        defaults: ClassVar[dict] = {}

        def purify(self, x):
            return x + 0.3 * torch.randn(x.shape, generator=self.generator(x.device))

    class Quantise(Defense):
        meta = DefenseMeta(kind="preprocessing", randomized=False, differentiable=False)
        defaults: ClassVar[dict] = {}

        def purify(self, x):
            return torch.round(4 * x) / 4

    torch.manual_seed(0)
    w = torch.randn(1, 1, 3, 3)
    x = torch.rand(2, 1, 3, 3)
    # EOT: the log of the mean class-1 probability over 5 draws; by hand, with the same draws,
    # d/dx log(mean_i s_i) = mean_i s_i (1 - s_i) w / mean_i s_i, s_i = sigmoid(w . (x + n_i)).
    shift = Shift(seed=7)
    eot = EOTModel(DefendedModel(_Logit1(w), shift, adaptive=True), samples=5)
    xg = x.clone().requires_grad_(True)
    shift.reseed(7)
    eot(xg)[:, 1].sum().backward()
    gen = torch.Generator().manual_seed(7)  # the 5 draws go through as one batch of 5 x N
    noise = 0.3 * torch.randn((5 * len(x), *x.shape[1:]), generator=gen).view(5, *x.shape)
    s = torch.stack([torch.sigmoid((w * (x + n)).flatten(1).sum(1)) for n in noise])  # (5, N)
    hand = ((s * (1 - s)).mean(0) / s.mean(0)).view(-1, 1, 1, 1) * w
    assert torch.allclose(xg.grad, hand, atol=1e-6)
    # BPDA with the identity: the gradient of the base at the purified point, 2 w u, u = q(x)
    # (not 2 w x, the gradient a pipeline without the quantiser would give).
    pipe = DefendedModel(_Logit1(w, square=True), Quantise(), adaptive=True)
    xg = x.clone().requires_grad_(True)
    pipe(xg)[:, 1].sum().backward()
    u = torch.round(4 * x) / 4
    assert torch.allclose(xg.grad, 2 * w * u, atol=1e-6)
    assert not torch.allclose(xg.grad, 2 * w * x, atol=1e-3)


def test_oblivious_blocks_carry_the_undefended_figures_and_the_report_sets_them_side_by_side(
    tiny_models, shared_data, tmp_path, caplog
):
    """The oblivious block's ``undefended`` sub-block is the base model scored on the same
    (cached) examples, i.e. the undefended run's figures; the estimate is logged first; the
    report puts defended beside undefended, names the threat model, shows the balanced figure
    and explains a failed check with a next step."""
    import copy
    import logging

    import numpy as np

    from benchmark.metrics.balanced import balanced_accuracy
    from benchmark.reports.terminal import SANITY_ADVICE, render_evaluation
    from benchmark.results.outcomes import read_labels, read_outcomes
    from benchmark.results.schema import validate_result

    undefended, _ = _run(tiny_models, shared_data, tmp_path / "c")
    with caplog.at_level(logging.INFO, logger="benchmark.evaluation.estimate"):
        caplog.clear()  # only this run's lines (another test may have left INFO enabled)
        doc, path = _run(
            tiny_models,
            shared_data,
            tmp_path / "c",
            defense=str(ROOT / "submissions" / "bit_depth_reduction"),
            defense_params={"bits": 2},
            threat_models=["oblivious", "adaptive"],
        )
    estimate = [r.getMessage() for r in caplog.records if "attack pass(es) to craft" in r.message]
    assert len(estimate) == 1 and "1 found in the cache" in estimate[0]
    assert "Assumes every attack spends its full budget" in estimate[0]

    validate_result(doc)
    n = doc["data"]["n"]
    obl, ada = doc["attacks"]
    assert "undefended" not in ada  # crafted on the pipeline: no bare-model counterpart
    und, bare = obl["undefended"], undefended["attacks"][0]
    assert und["robust_accuracy"] == bare["metrics"]["robust_accuracy"]
    assert und["outcomes"] == bare["outcomes"]
    labels = read_labels(doc["data"]["labels"], n)
    correct = read_outcomes(und["outcomes"], n)
    bal = und["robust_balanced_accuracy"]
    assert bal["value"] == pytest.approx(balanced_accuracy(correct, labels))
    assert bal["ci95"][0] <= bal["value"] <= bal["ci95"][1] and bal["n"] == n

    text = render_evaluation(doc, path)
    assert "      undefended balanced " in text and "      defended   balanced " in text
    defended_line = next(ln for ln in text.splitlines() if ln.startswith("      defended"))
    assert f"accuracy {obl['metrics']['robust_accuracy']['value']:.4f} [" in defended_line
    assert f"accuracy {und['robust_accuracy']['value']:.4f} [" in text
    assert "worst case, oblivious, L-inf 8/255: balanced " in text
    assert "worst case, adaptive, L-inf 8/255: balanced " in text
    bare_wc = np.mean(read_outcomes(doc["metrics"]["undefended_clean"]["outcomes"], n) & correct)
    assert "undefended (same oblivious attacks, no defense): balanced " in text
    assert f"accuracy {bare_wc:.4f} [" in text

    failed = copy.deepcopy(doc)
    check = next(c for c in failed["sanity_checks"] if c["name"] == "oblivious_vs_adaptive")
    check.update(status="fail", flag="defense relies on obscurity")
    text = render_evaluation(failed, path)
    meaning, step = SANITY_ADVICE["oblivious_vs_adaptive"]
    assert f"      means: {meaning}" in text and f"      next:  {step}" in text
