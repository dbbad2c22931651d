"""Convergence evidence of protocol runs (:mod:`benchmark.evaluation.convergence`).

The stronger APGD (``autoattack_ref`` version ``convergence``) is configured per class count;
on a tiny CNN trained on real BreastMNIST, with a few iterations, it attacks only the images
still robust under the worst case, its ``broken`` count matches a recomputation, ``reliable``
follows the at-most-one rule, the block validates against the results schema, and the
leaderboard's ``unreliable`` rule reads it.
"""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest
import torch

from benchmark.attacks import build_attack
from benchmark.attacks.presets import AttackCell
from benchmark.attacks.reference_autoattack import ReferenceAutoAttack
from benchmark.datasets import load_split
from benchmark.evaluation.adversarial import CellRun
from benchmark.evaluation.convergence import (
    budget_check,
    convergence_block,
    protocol_convergence,
    protocol_steps,
)
from benchmark.evaluation.document import still_robust, worst_cases
from benchmark.leaderboard.statuses import unreliable_reason
from benchmark.metrics.base import Predictions
from benchmark.models import build_model
from benchmark.results.protocols import CONVERGENCE_RULE, MRB_LINF_V2, Protocol, ProtocolAttack
from benchmark.results.schema import load_schema

EPS = 8 / 255


def _model(classes: int):
    torch.manual_seed(0)
    return build_model("tiny_cnn", in_channels=1, num_classes=classes, image_size=28).eval()


@pytest.mark.parametrize(
    ("classes", "attacks", "loss"),
    [(2, ["apgd-ce", "apgd-dlr"], "cw_margin"), (3, ["apgd-ce", "apgd-dlr"], "dlr")],
)
def test_convergence_version_untargeted(classes, attacks, loss):
    cfg = build_attack(
        "autoattack_ref", _model(classes), eps=EPS, version="convergence", steps=200
    ).config()
    ref = cfg["reference"]
    assert ref["version"] == "custom" and ref["attacks_to_run"] == attacks
    apgd = {"n_iter": 200, "n_restarts": 3, "rho": 0.75, "eot_iter": 1}
    assert ref["subattacks"]["apgd-ce"] == {"loss": "ce", **apgd}
    assert ref["subattacks"]["apgd-dlr"] == {"loss": loss, **apgd}
    assert cfg["params"]["restarts"] == 3 and "eot_iter" not in cfg["params"]
    assert ref["substitution"].startswith("convergence check")


def test_convergence_version_targeted_and_standard_unchanged():
    model = _model(5)
    ref = build_attack("autoattack_ref", model, eps=EPS, version="convergence", steps=200).config()[
        "reference"
    ]
    assert ref["attacks_to_run"] == ["apgd-ce", "apgd-t"]
    assert ref["subattacks"]["apgd-ce"]["n_restarts"] == 3
    assert ref["subattacks"]["apgd-t"] == {
        "loss": "dlr-targeted",
        "n_iter": 200,
        "n_restarts": 1,
        "n_target_classes": 4,
    }
    # The existing versions' configurations (and so their cache keys) do not gain 'restarts'.
    for version in ("standard", "rand"):
        cfg = build_attack("autoattack_ref", model, eps=EPS, version=version).config()
        assert "restarts" not in cfg["params"]
    assert protocol_steps(MRB_LINF_V2) == 200


@pytest.fixture(scope="module")
def breast(shared_data):
    x, y = next(load_split("breastmnist", "test", data_dir=shared_data).batches(40))
    return x, y


def _pred(model, x, y) -> Predictions:
    with torch.no_grad():
        probs = torch.softmax(model(x), 1).numpy()
    return Predictions(probs, y.numpy(), ("malignant", "benign"))


def test_budget_check_attacks_only_the_robust_images(tiny_models, breast, monkeypatch):
    model, (x, y) = tiny_models["breastmnist"], breast
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    perturb = ReferenceAutoAttack.perturb

    def spy(self, xb, yb):
        out = perturb(self, xb, yb)
        seen.append((xb.clone(), out.clone()))
        return out

    monkeypatch.setattr(ReferenceAutoAttack, "perturb", spy)
    clean_ok = _pred(model, x, y).predicted == y.numpy()
    robust = clean_ok.copy()
    robust[::2] = False  # a worst case that already broke every other image
    assert robust.sum() >= 4
    entry, broken = budget_check(
        model, model, x, y, robust, eps=EPS, steps=4, restarts=2, seed=0, batch_size=7
    )
    # Only the still-robust images were attacked, in batches of at most 7.
    assert torch.equal(torch.cat([s[0] for s in seen]), x[torch.as_tensor(robust)])
    assert all(len(s[0]) <= 7 for s in seen)
    assert entry["robust_before"] == int(robust.sum())
    # broken recomputed from the returned examples.
    x_adv = torch.cat([s[1] for s in seen])
    with torch.no_grad():
        wrong = (model(x_adv).argmax(1) != y[torch.as_tensor(robust)]).numpy()
    assert entry["broken"] == int(wrong.sum()) == int(broken.sum())
    assert not broken[~robust].any() and np.array_equal(broken[robust], wrong)
    assert entry["attack"]["params"]["steps"] == 4
    assert entry["attack"]["params"]["restarts"] == 2
    assert entry["eps_label"] == "8/255" and entry["seconds"] >= 0


def test_an_interrupted_check_resumes_at_its_next_batch(tiny_models, breast, monkeypatch, tmp_path):
    """Each finished batch of the stronger attack is kept in the cache: a check interrupted in
    its third batch, run again, attacks only the batches it had not finished and gives the
    uninterrupted check's entry; another target model or robust set is another key."""
    from benchmark.evaluation.cache import AdversarialCache

    model, (x, y) = tiny_models["breastmnist"], breast
    robust = _pred(model, x, y).predicted == y.numpy()
    assert robust.sum() > 14  # at least three batches of 7
    args = dict(eps=EPS, steps=4, restarts=1, seed=0, batch_size=7)
    whole, whole_broken = budget_check(model, model, x, y, robust, **args)
    calls = []
    perturb = ReferenceAutoAttack.perturb

    def interrupted(self, xb, yb):
        calls.append(len(xb))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return perturb(self, xb, yb)

    cache = AdversarialCache(tmp_path / "cache")
    parts = {"data": "d", "split": "test", "indices": "i"}
    monkeypatch.setattr(ReferenceAutoAttack, "perturb", interrupted)
    with pytest.raises(KeyboardInterrupt):
        budget_check(model, model, x, y, robust, **args, cache=cache, key_parts=parts)
    calls.clear()
    monkeypatch.setattr(
        ReferenceAutoAttack,
        "perturb",
        lambda self, xb, yb: (calls.append(len(xb)), perturb(self, xb, yb))[1],
    )
    entry, broken = budget_check(model, model, x, y, robust, **args, cache=cache, key_parts=parts)
    n_batches = -(-int(robust.sum()) // 7)
    assert len(calls) == n_batches - 2  # the two finished batches were not attacked again
    assert entry["broken"] == whole["broken"] and np.array_equal(broken, whole_broken)
    # The cost includes the earlier run's batches: the same passes as the uninterrupted check.
    assert entry["resumed_batches"] == 2 and "resumed_batches" not in whole
    for k in ("forward_images", "gradient_forward_images", "backward_images"):
        assert entry[k] == whole[k], k
    # Another robust set (or model) is another key: everything is attacked.
    calls.clear()
    fewer = robust.copy()
    fewer[np.flatnonzero(robust)[0]] = False
    budget_check(model, model, x, y, fewer, **args, cache=cache, key_parts=parts)
    assert len(calls) == -(-int(fewer.sum()) // 7)


def test_no_robust_image_runs_no_attack(tiny_models, breast, monkeypatch):
    model, (x, y) = tiny_models["breastmnist"], breast

    def fail(self, xb, yb):
        raise AssertionError("attacked with no robust image")

    monkeypatch.setattr(ReferenceAutoAttack, "perturb", fail)
    entry, broken = budget_check(
        model, model, x, y, np.zeros(len(x), bool), eps=EPS, steps=4, restarts=1
    )
    assert (entry["robust_before"], entry["broken"]) == (0, 0) and not broken.any()


def test_reliable_follows_the_at_most_one_rule():
    def b(broken):
        return {"eps": EPS, "eps_label": "8/255", "robust_before": 9, "broken": broken,
                "attack": {}, "seconds": 0.0}  # fmt: skip

    assert convergence_block([b(0), b(1)])["reliable"] is True
    assert convergence_block([b(1), b(2)])["reliable"] is False
    assert convergence_block([])["reliable"] is True
    assert convergence_block([b(0)])["rule"] == CONVERGENCE_RULE


def test_protocol_convergence_uses_the_worst_case_and_validates(tiny_models, breast):
    model, (x, y) = tiny_models["breastmnist"], breast
    clean = _pred(model, x, y)
    runs = []
    for label in ("2/255", "8/255"):  # FGSM cells stand in for the protocol's attack passes
        cell = AttackCell.make("fgsm", label)
        attack = build_attack("fgsm", model, eps=cell.eps)
        runs.append(CellRun(cell, attack, _pred(model, attack(x, y), y), {}, 0.0, False))
    protocol = Protocol(
        id="tiny",
        version="0",
        track="deterministic",
        norm="linf",
        budgets=(2 / 255, 8 / 255),
        attacks=(ProtocolAttack("autoattack_ref", (("steps", 2),)),),
    )
    block = protocol_convergence(
        model=model, scorer=model, x=x, y=y, clean=clean, runs=runs, protocol=protocol, restarts=1
    )
    worst = {w["eps"]: w for w in worst_cases(clean, runs)}
    for entry in block["budgets"]:
        robust = still_robust(clean, runs, "linf", entry["eps"])
        assert entry["robust_before"] == int(robust.sum())
        assert entry["robust_before"] == round(worst[entry["eps"]]["robust_accuracy"]["value"] * 40)
        assert entry["broken"] <= entry["robust_before"]
        assert entry["attack"]["params"]["steps"] == 4  # twice the protocol's
    assert block["reliable"] is all(b["broken"] <= 1 for b in block["budgets"])
    schema = load_schema(2)
    sub = {**schema["properties"]["convergence"], "$defs": schema["$defs"]}
    jsonschema.validate(json.loads(json.dumps(block)), sub)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**block, "budgets": [{"eps": 0.1}]}, sub)


def test_unreliable_rule_reads_the_block():
    from types import SimpleNamespace

    def run(convergence, robust=30):
        doc = {} if convergence is None else {"convergence": convergence}
        worst = lambda norm, eps: np.arange(40) < robust  # noqa: E731 (the run's worst case)
        return SimpleNamespace(sanity_checks=[], flags=[], doc=doc, worst_case_outcomes=worst)

    entry = {"eps": 8 / 255, "eps_label": "8/255", "robust_before": 30, "broken": 3,
             "attack": {}, "seconds": 1.0}  # fmt: skip
    ok = {"rule": CONVERGENCE_RULE, "reliable": True, "budgets": [{**entry, "broken": 1}]}
    assert unreliable_reason(run(ok)) is None
    assert unreliable_reason(run(None)) == "convergence evidence not recorded"
    bad = {"rule": CONVERGENCE_RULE, "reliable": False, "budgets": [{**entry, "broken": 0}, entry]}
    reason = unreliable_reason(run(bad))
    assert "8/255" in reason and "broke 3 of 30" in reason
    # A check of other images than those the worst case leaves robust shows nothing.
    assert unreliable_reason(run(ok, robust=25)) == (
        "convergence not shown: at 8/255 the check attacked 30 images, but the worst case "
        "leaves 25 robust"
    )


def test_a_sweep_that_does_not_level_off_is_unreliable_and_named():
    from types import SimpleNamespace

    sweeps = [
        {"sweep": "iterations", "steps": 200, "eot_draws": 20, "broken": 1, "seconds": 1.0},
        {"sweep": "eot", "steps": 100, "eot_draws": 40, "broken": 4, "seconds": 1.0},
    ]
    budget = {"eps": 8 / 255, "eps_label": "8/255", "robust_before": 30, "broken": 5,
              "attack": {}, "seconds": 2.0, "sweeps": sweeps}  # fmt: skip
    block = convergence_block([budget])
    assert block["reliable"] is False
    worst = lambda norm, eps: np.ones(30, dtype=bool)  # noqa: E731
    run = SimpleNamespace(
        sanity_checks=[], flags=[], doc={"convergence": block}, worst_case_outcomes=worst
    )
    reason = unreliable_reason(run)
    assert "the sweeps broke 5 of 30" in reason
    assert "eot (100 iterations, 40 EOT draws): 4" in reason
    level = convergence_block([{**budget, "broken": 1, "sweeps": [{**sweeps[0], "broken": 1}]}])
    run = SimpleNamespace(
        sanity_checks=[], flags=[], doc={"convergence": level}, worst_case_outcomes=worst
    )
    assert unreliable_reason(run) is None
