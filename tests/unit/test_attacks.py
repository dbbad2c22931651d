"""Attack internals: the no-sign step, agreement with torchattacks, checks, class counts."""

from __future__ import annotations

import math

import pytest
import torch
import torchattacks

from benchmark.attacks import AttackError, build_attack, check_adversarial
from benchmark.attacks.base import Attack, AttackMeta
from benchmark.attacks.gradient import iterative_linf, nosign_direction
from benchmark.attacks.presets import PRESETS, AttackCell, eps_label, parse_eps, resolve_attacks
from benchmark.errors import ConfigError, UnknownNameError
from benchmark.models import build_model


def test_nosign_direction_hand_computed():
    g = torch.tensor([[[[3.0, -4.0]]], [[[0.0, 0.0]]]])
    d = nosign_direction(g)
    # ||g||_2 = 5, ||sign g||_2 = sqrt(2): the step is g * sqrt(2) / 5 (eq. 5).
    assert torch.allclose(d[0], g[0] * math.sqrt(2) / 5)
    assert torch.equal(d[1], torch.zeros_like(d[1]))
    assert torch.isclose(d[0].norm(), g[0].sign().norm())


def test_fgnm_step_has_the_l2_length_of_the_fgsm_step():
    torch.manual_seed(0)
    model = build_model("tiny_cnn", in_channels=1, num_classes=2, image_size=28).eval()
    x = torch.full((4, 1, 28, 28), 0.5)  # far from 0 and 1: no range clipping
    y = torch.tensor([0, 1, 0, 1])
    eps = 1 / 255
    fgsm = build_attack("fgsm", model, eps=eps)(x, y)
    # Without the eps clip FGNM's L2 step equals FGSM's; with it, it can only be shorter.
    fgnm = build_attack("fgnm", model, eps=eps)(x, y)
    assert torch.all((fgnm - x).flatten(1).norm(dim=1) <= (fgsm - x).flatten(1).norm(dim=1) + 1e-6)
    assert float((fgnm - x).abs().max()) <= eps + 1e-6


def test_sign_engine_matches_torchattacks_bim():
    torch.manual_seed(0)
    model = build_model("tiny_cnn", in_channels=1, num_classes=3, image_size=28).eval()
    x = torch.rand(6, 1, 28, 28)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    ours = iterative_linf(
        model,
        x,
        y,
        eps=4 / 255,
        alpha=1 / 255,
        steps=5,
        random_start=False,
        step_rule="sign",
        multi_label=False,
    )
    theirs = torchattacks.BIM(model, eps=4 / 255, alpha=1 / 255, steps=5)(x, y)
    assert torch.allclose(ours, theirs, atol=1e-6)


class _BrokenAttack(Attack):
    meta = AttackMeta(description="test double that leaves the eps-ball")
    name = "broken"

    def perturb(self, x, y):
        return (x + 2 * self.eps).clamp(0, 1)


class _NaNAttack(_BrokenAttack):
    def perturb(self, x, y):
        return x * float("nan")


def test_invalid_adversarial_batches_are_errors_not_numbers():
    model = build_model("tiny_cnn", in_channels=1, num_classes=2, image_size=28)
    x, y = torch.full((2, 1, 28, 28), 0.5), torch.tensor([0, 1])
    with pytest.raises(AttackError, match="left the linf eps-ball"):
        _BrokenAttack(model, eps=1 / 255)(x, y)
    with pytest.raises(AttackError, match="non-finite"):
        _NaNAttack(model, eps=1 / 255)(x, y)
    with pytest.raises(AttackError, match="valid range"):
        check_adversarial(x, x + 2, eps=10, norm="linf", bounded=True)
    with pytest.raises(AttackError, match="must lie in"):
        build_attack("fgsm", model, eps=1 / 255)(x * 3, y)


def test_parameters_and_class_counts_are_checked_before_work():
    binary = build_model("tiny_cnn", in_channels=1, num_classes=2, image_size=28)
    with pytest.raises(ConfigError, match="has no parameter"):
        build_attack("pgd", binary, eps=0.1, stepz=3)
    with pytest.raises(AttackError, match="at least 3 classes"):
        build_attack("apgd_dlr", binary, eps=0.1)
    with pytest.raises(UnknownNameError, match="did you mean 'pgd'"):
        build_attack("pgdd", binary, eps=0.1)


@pytest.mark.parametrize(
    ("classes", "expected"),
    [
        (2, ["apgd_ce", "fab", "square"]),
        (3, ["apgd_ce", "apgd_dlr", "fab", "square"]),
        (7, ["apgd_ce", "apgd_t", "fab_t", "square"]),
    ],
)
def test_autoattack_runs_the_defined_subattacks_at_full_budget(classes, expected):
    model = build_model("tiny_cnn", in_channels=1, num_classes=classes, image_size=28)
    cfg = build_attack("autoattack", model, eps=8 / 255).config()
    assert cfg["params"]["subattacks"] == expected
    assert cfg["params"]["steps"] == 100 and cfg["params"]["n_queries"] == 5000
    attack = build_attack("autoattack", model, eps=8 / 255)
    square = dict(attack.subattacks())["square"]
    # at 5000 queries Square's p schedule is the reference standard version's (not rescaled)
    assert square.rescale_schedule is False and cfg["params"]["square_resc_schedule"] is False
    reduced = build_attack("autoattack", model, eps=8 / 255, n_queries=500)
    assert dict(reduced.subattacks())["square"].rescale_schedule is True
    assert "square_resc_schedule" not in reduced.config()["params"]  # earlier cache keys hold


def test_multilabel_models_get_bce_sign_attacks():
    torch.manual_seed(0)
    model = build_model(
        "tiny_cnn", in_channels=1, num_classes=14, image_size=28, multi_label=True
    ).eval()
    x = torch.rand(4, 1, 28, 28)
    y = (torch.rand(4, 14) > 0.7).float()
    for name in ("fgsm", "bim", "pgd"):
        attack = (
            build_attack(name, model, eps=4 / 255, steps=2)
            if name != "fgsm"
            else (build_attack(name, model, eps=4 / 255))
        )
        x_adv = attack(x, y)
        assert attack.config()["implementation"].startswith("medrobustbench")
        assert attack.config()["params"]["loss"] == "bce"
        assert float((x_adv - x).abs().max()) <= 4 / 255 + 1e-6
    with pytest.raises(AttackError, match="multi-label"):
        build_attack("cw", model, eps=0)


def test_eps_parsing_and_labels():
    assert parse_eps("8/255") == pytest.approx(8 / 255)
    assert parse_eps("0.03") == 0.03
    with pytest.raises(ConfigError, match="invalid eps"):
        parse_eps("eight")
    assert eps_label(8 / 255) == "8/255" and eps_label(0.5 / 255) == "0.5/255"
    assert eps_label(0.03) == "0.03"
    assert AttackCell.make("pgd", "8/255", steps=20).cell_id == "pgd_eps8-255_steps20"


def test_presets_follow_the_papers():
    medrdf = PRESETS.get("medrdf").cells
    assert sorted(c.param_dict["steps"] for c in medrdf if c.attack == "bim") == [1, 2, 5, 7]
    assert sorted(c.param_dict["steps"] for c in medrdf if c.attack == "pgd") == [7, 20, 100]
    assert all(c.eps == pytest.approx(8 / 255) for c in medrdf if c.attack != "cw")
    xu = PRESETS.get("xu2021").cells
    assert {(round(c.eps * 255), c.param_dict["steps"]) for c in xu if c.attack == "pgd"} == {
        (2, 1),
        (4, 4),
    }
    assert sorted(round(c.eps * 255) for c in xu if c.attack == "gap") == [7, 11]
    nosign = PRESETS.get("nosign").cells
    assert {c.attack for c in nosign} == {"fgsm", "fgnm", "bim", "binm", "pgd", "pgdnm"}
    assert all(c.param_dict["steps"] == 10 for c in nosign if c.attack not in ("fgsm", "fgnm"))
    suite, cells = resolve_attacks("fgsm,pgd", [2 / 255, 8 / 255])
    assert suite == "custom" and len(cells) == 4
    with pytest.raises(ConfigError, match="cannot be combined"):
        resolve_attacks("medrdf", [2 / 255])


def test_every_preset_builds_on_a_five_class_model(tiny_models):
    from benchmark.evaluation.adversarial import build_cells

    for name, preset in PRESETS.items():
        attacks = build_cells(tiny_models["retinamnist"], list(preset.cells), seed=0)
        assert len(attacks) == len(preset.cells), name
    defense = PRESETS.get("defense").cells
    assert {c.attack for c in defense} == {"fgsm", "pgd", "square"}
    assert {eps_label(c.eps) for c in defense} == {"2/255", "8/255"}


class _Recording(torch.nn.Module):
    """A model that records the range of every input it is queried on."""

    multi_label = False

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.low, self.high = inner, 1.0, 0.0
        self.num_classes = inner.num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.low, self.high = min(self.low, float(x.min())), max(self.high, float(x.max()))
        return self.inner(x)


def test_spsa_queries_valid_images_and_keeps_the_first_fooling_iterate():
    """SPSA only queries images in [0, 1] (torchattacks' version queried x +- delta v outside
    it), returns the iterate that first fooled the model (an image fooled mid-run is not lost
    again), spends 1 + nb_iter (2 nb_sample + 1) queries on an image never fooled and is
    reproducible under a seed."""
    torch.manual_seed(0)
    inner = build_model("tiny_cnn", in_channels=1, num_classes=3, image_size=28).eval()
    model = _Recording(inner).eval()
    x = torch.cat([torch.zeros(3, 1, 28, 28), torch.ones(3, 1, 28, 28), torch.rand(6, 1, 28, 28)])
    y = inner(x).argmax(1)  # every image starts correctly classified
    attack = build_attack("spsa", model, eps=16 / 255, nb_iter=6, nb_sample=4, seed=1)
    x_adv = attack(x, y)
    assert model.low >= 0.0 and model.high <= 1.0  # the saturated images stay in range
    fooled = inner(x_adv).argmax(1) != y
    q = attack.last_queries
    full = 1 + 6 * (2 * 4 + 1)
    assert torch.all(q[~fooled] == full)
    assert torch.all(q[fooled] <= full) and torch.all((q[fooled] - 1) % 9 == 0)
    assert torch.equal(attack(x, y), x_adv)
    with pytest.raises(ConfigError, match="spsa"):
        build_attack("spsa", model, eps=8 / 255, nb_iter=0)


def test_seeded_puts_the_generators_back():
    """``seeded`` runs a block from a seed and leaves the caller's random stream as it was
    (the CPU's here; on CUDA the device's too, which fork_rng(devices=[]) did not)."""
    from benchmark.device import seeded

    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    with seeded(11):
        inside = torch.rand(3)
    assert torch.equal(torch.rand(3), expected)  # the outer stream is untouched
    with seeded(11):
        assert torch.equal(torch.rand(3), inside)
