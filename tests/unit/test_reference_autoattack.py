"""``autoattack_ref``: AutoAttack run by the reference implementation (pyautoattack).

Registered and listed; the config records the package version, the sub-attacks and budgets and
the class-count substitution; on trained tiny models and real images it is at least as strong
as FGSM, and its per-image records agree with the returned batch. Budgets are small here; the
contract test (tests/contracts) checks the output contract.
"""

from __future__ import annotations

import json

import pyautoattack
import pytest
import torch
from typer.testing import CliRunner

from benchmark.attacks import ATTACKS, build_attack
from benchmark.attacks.reference_autoattack import margin_loss
from benchmark.cli import app
from benchmark.datasets import load_split
from benchmark.errors import ConfigError
from benchmark.models import build_model

EPS = 8 / 255
SMALL = {"steps": 10, "n_queries": 50}


def _model(classes: int):
    torch.manual_seed(0)
    return build_model("tiny_cnn", in_channels=1, num_classes=classes, image_size=28).eval()


def test_registered_and_listed():
    assert "autoattack_ref" in ATTACKS.list("autoattack*")
    out = CliRunner().invoke(app, ["list", "attacks", "autoattack*", "--json"])
    assert out.exit_code == 0, out.output
    assert "autoattack_ref" in json.loads(out.stdout)


@pytest.mark.parametrize(
    ("classes", "version", "attacks", "n_target"),
    [
        (2, "custom", ["apgd-ce", "apgd-dlr", "fab", "square"], None),
        (3, "custom", ["apgd-ce", "apgd-dlr", "fab-t", "square"], 2),
        (5, "standard", ["apgd-ce", "apgd-t", "fab-t", "square"], 4),
        (11, "standard", ["apgd-ce", "apgd-t", "fab-t", "square"], 9),
    ],
)
def test_config_records_version_budget_and_substitution(classes, version, attacks, n_target):
    cfg = build_attack("autoattack_ref", _model(classes), eps=EPS).config()
    ref = cfg["reference"]
    assert cfg["implementation"].startswith("pyautoattack.AutoAttack 0.2.0")
    assert ref["package_version"] == pyautoattack.__version__ == "0.2.0"
    assert ref["version"] == version and ref["attacks_to_run"] == attacks
    subs = ref["subattacks"]
    # The published budget: 100 iterations, 1 restart, Square 5000 queries.
    apgd = {"n_iter": 100, "n_restarts": 1, "rho": 0.75, "eot_iter": 1}
    assert subs["apgd-ce"] == {"loss": "ce", **apgd}
    assert subs["square"]["n_queries"] == 5000 and subs["square"]["n_restarts"] == 1
    fab = subs.get("fab-t", subs.get("fab"))
    assert fab["n_iter"] == 100 and fab["n_restarts"] == 1
    if n_target is not None:
        assert fab["n_target_classes"] == n_target
    if classes == 2:
        assert subs["apgd-dlr"]["loss"] == "cw_margin" and not fab["targeted"]
        assert "CW margin" in ref["substitution"] and "untargeted FAB" in ref["substitution"]
    if classes >= 4:
        assert subs["apgd-t"]["n_target_classes"] == n_target
        assert ref["substitution"].startswith("none")
    assert "eot_iter" not in cfg["params"]


def test_budget_overrides_reach_the_reference_objects():
    attack = build_attack("autoattack_ref", _model(5), eps=EPS, steps=10, n_queries=50)
    aa = attack.build()
    assert aa.apgd.n_iter == aa.apgd_targeted.n_iter == aa.fab.n_iter == 10
    assert aa.apgd.n_iter_2 == 2 and aa.square.n_queries == 50  # checkpoints follow n_iter
    with pytest.raises(ConfigError, match="version"):
        build_attack("autoattack_ref", _model(5), eps=EPS, version="plus")
    rand = build_attack("autoattack_ref", _model(2), eps=EPS, version="rand", eot_iter=3)
    ref = rand.config()["reference"]
    assert ref["attacks_to_run"] == ["apgd-ce", "apgd-dlr"]
    apgd = {"n_iter": 100, "n_restarts": 1, "rho": 0.75, "eot_iter": 3}
    assert ref["subattacks"]["apgd-dlr"] == {"loss": "cw_margin", **apgd}


def test_margin_loss_hand_computed():
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    assert torch.equal(margin_loss(logits, torch.tensor([0, 0])), torch.tensor([-3.0, 2.5]))
    three = torch.tensor([[1.0, 4.0, 2.0]])
    assert torch.equal(margin_loss(three, torch.tensor([1])), torch.tensor([-2.0]))


@pytest.fixture(scope="module")
def images(shared_data):
    out = {}
    for dataset in ("breastmnist", "retinamnist"):
        x, y = next(load_split(dataset, "test", data_dir=shared_data).batches(16))
        out[dataset] = (x, y)
    return out


@pytest.mark.parametrize("dataset", ["breastmnist", "retinamnist"])
def test_at_least_as_strong_as_fgsm_and_records_agree(dataset, tiny_models, images):
    model, (x, y) = tiny_models[dataset], images[dataset]
    attack = build_attack("autoattack_ref", model, eps=EPS, seed=0, **SMALL)
    x_adv = attack(x, y)
    x_fgsm = build_attack("fgsm", model, eps=EPS)(x, y)
    with torch.no_grad():
        correct = model(x_adv).argmax(1) == y
        fgsm_correct = model(x_fgsm).argmax(1) == y
    assert int(correct.sum()) <= int(fgsm_correct.sum())
    record = attack.records[-1]
    assert len(record.broken_by) == len(x)
    assert [b is None for b in record.broken_by] == correct.tolist()
    assert list(record.robust_after.values())[-1] == int(correct.sum())
    assert set(record.broken_by) <= {None, "clean", *attack.config()["reference"]["attacks_to_run"]}


def test_adaptive_pass_runs_the_rand_version_on_randomized_defenses():
    from types import SimpleNamespace

    from benchmark.attacks.presets import AttackCell
    from benchmark.evaluation.passes import adaptive_overrides

    cell = AttackCell.make("autoattack_ref", "2/255")
    randomized = SimpleNamespace(meta=SimpleNamespace(randomized=True))
    averaging = SimpleNamespace(averages=True)
    overrides = adaptive_overrides("adaptive", cell, randomized, averaging)
    assert overrides == {"version": "rand", "eot_iter": 1}
    attack = build_attack("autoattack_ref", _model(5), eps=2 / 255, **overrides)
    assert attack.config()["reference"]["version"] == "rand"


def test_reference_square_is_the_standard_versions_square_as_a_black_box_attack():
    """``square_ref`` runs the reference Square with AutoAttack's standard settings, queries
    only (the evaluation runs it on the deployed pipeline), inside the eps-ball, seeded."""
    from benchmark.attacks import ATTACKS

    model = _model(2)
    assert ATTACKS.get("square_ref").meta.knowledge == "score-based"
    attack = build_attack("square_ref", model, eps=8 / 255, n_queries=50)
    ref = attack.build()
    assert (ref.p_init, ref.loss, ref.rescale_schedule, ref.n_restarts) == (0.8, "margin", False, 1)
    torch.manual_seed(0)
    x, y = torch.rand(8, 1, 28, 28), torch.tensor([0, 1] * 4)
    a, b = attack(x, y, seed=1), attack(x, y, seed=1)
    assert torch.equal(a, b)
    assert float((a - x).abs().max()) <= 8 / 255 + 1e-6
    assert attack.config()["params"]["n_queries"] == 50
