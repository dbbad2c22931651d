"""RayS (hard-label, L-inf): block schedule, binary search against an analytic boundary,
success/failure around the boundary, query accounting, no gradients, determinism."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor, nn

from benchmark.attacks import ATTACKS, build_attack
from benchmark.attacks.rays import HardLabelOracle, block_schedule, search_boundary
from benchmark.errors import ConfigError
from benchmark.models import build_model

D = 16  # the linear model's images are 1 x 4 x 4


class LinearModel(nn.Module):
    """Logits ``[s, -s]`` with ``s = w . (x - 0.5)``: class 0 iff ``s > 0`` (a tie is class 0).

    Queries must come without gradients; every forwarded row is counted.
    """

    num_classes = 2
    multi_label = False

    def __init__(self, w: Tensor) -> None:
        super().__init__()
        self.w = w
        self.rows = 0

    def forward(self, x: Tensor) -> Tensor:
        assert not torch.is_grad_enabled() and not x.requires_grad
        self.rows += len(x)
        s = ((x - 0.5).flatten(1) * self.w).sum(dim=1)
        return torch.stack([s, -s], dim=1)


class HardLabelProbe(nn.Module):
    """Wraps a model: asserts gradient-free queries and counts forwarded rows."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.num_classes = model.num_classes
        self.multi_label = False
        self.rows = 0

    def forward(self, x: Tensor) -> Tensor:
        assert not torch.is_grad_enabled() and not x.requires_grad
        self.rows += len(x)
        return self.model(x)


def linear_problem(deltas: list[float]) -> tuple[LinearModel, Tensor, Tensor, Tensor]:
    """Images ``0.5 + delta * sign(w)``: margin ``delta * ||w||_1``, so the L-inf distance to
    the boundary is exactly ``delta``, reached along ``d = -sign(w)`` (no clipping below 0.3)."""
    w = torch.randn(D, generator=torch.Generator().manual_seed(0))
    delta = torch.tensor(deltas)
    x = (0.5 + delta[:, None] * w.sign()[None]).view(len(deltas), 1, 4, 4)
    y = torch.zeros(len(deltas), dtype=torch.long)
    return LinearModel(w), x, y, delta


def test_block_schedule_halves_the_block_size_each_stage():
    blocks = list(itertools.islice(block_schedule(10), 16))
    assert blocks[:7] == [(0, 10), (0, 5), (5, 10), (0, 3), (3, 6), (6, 9), (9, 10)]
    assert blocks[7:12] == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    assert blocks[12:] == [(0, 1), (1, 2), (2, 3), (3, 4)]  # single coordinates from here on


def test_binary_search_finds_the_analytic_boundary():
    model, x, y, delta = linear_problem([0.05, 0.05])
    xf = x.flatten(1)
    w = model.w
    mixed = -w.sign()
    mixed[:4] *= -1  # four coordinates pointing the wrong way: a longer ray
    direction = torch.stack([-w.sign(), mixed])
    margin = delta * w.abs().sum()
    expected = margin / -(direction * w).sum(dim=1)  # s(x + r d) = margin + r w.d = 0
    assert expected[0] == pytest.approx(0.05) and 0.05 < expected[1] < 0.3  # no clipping
    oracle = HardLabelOracle(lambda z: model(z).argmax(1), y, (1, 4, 4))
    tol = 1e-4
    rows = torch.arange(2)
    with torch.no_grad():
        r = search_boundary(
            oracle, rows, xf, direction, torch.full((2,), math.inf), query_limit=100, tol=tol
        )
    assert torch.all(r >= expected - 1e-6) and torch.all(r <= expected + tol + 1e-6)
    # One fast check at radius 1, then bisection of [0, 1] down to tol.
    assert oracle.queries.tolist() == [1 + math.ceil(math.log2(1 / tol))] * 2

    # Fast check: a direction whose boundary lies beyond r_best costs one query and returns inf.
    oracle = HardLabelOracle(lambda z: model(z).argmax(1), y, (1, 4, 4))
    with torch.no_grad():
        r = search_boundary(oracle, rows, xf, direction, expected - 0.01, query_limit=100, tol=tol)
    assert torch.isinf(r).all() and oracle.queries.tolist() == [1, 1]


def test_attack_succeeds_above_the_boundary_distance_and_returns_x_below_it():
    model, x, y, delta = linear_problem([0.01, 0.03, 0.05, 0.2])
    eps = 0.04
    attack = build_attack("rays", model, eps=eps, query_limit=2000)
    x_adv = attack(x, y)
    success = delta < eps
    assert attack.last_success.tolist() == success.tolist()
    with torch.no_grad():
        pred = model(x_adv).argmax(1)
    assert torch.all(pred[success] != y[success])
    assert torch.all((x_adv - x).flatten(1).abs().amax(1)[success] <= eps + 1e-6)
    assert torch.equal(x_adv[~success], x[~success])  # a failed attack returns the clean image
    assert int(attack.last_queries.max()) <= 2000
    # Early stopping: the successes stop long before the budget, the failures spend it all.
    assert torch.all(attack.last_queries[success] < 2000)
    assert torch.all(attack.last_queries[~success] == 2000)


def test_without_early_stop_the_radius_converges_to_the_boundary_distance():
    # On a linear model the block flips are an exact greedy search: after the single-coordinate
    # stage the direction is -sign(w) and the radius the true L-inf distance, within tol.
    model, x, y, delta = linear_problem([0.01, 0.03, 0.2])
    tol = 1e-4
    attack = build_attack("rays", model, eps=0.04, query_limit=3000, early_stop=False, tol=tol)
    attack(x, y)
    radius = attack.last_radius
    assert torch.all(radius >= delta - 1e-6) and torch.all(radius <= delta + tol + 1e-6)
    assert attack.last_queries.tolist() == [3000] * 3


def test_a_search_cut_by_the_budget_keeps_its_last_verified_point():
    # 5 queries: the clean check, the fast check at radius 1 and three bisection steps.
    model, x, y, _ = linear_problem([0.05])
    attack = build_attack("rays", model, eps=1.0, query_limit=5, early_stop=False)
    x_adv = attack(x, y)
    assert attack.last_queries.tolist() == [5]
    radius = float(attack.last_radius[0])
    assert 0 < radius <= 1 and (radius * 8) == int(radius * 8)  # a bisection point of [0, 1]
    with torch.no_grad():
        assert model(x_adv).argmax(1).item() != y.item()


def test_a_misclassified_clean_sample_costs_one_query_and_is_returned_unchanged():
    model, x, _, _ = linear_problem([0.05, 0.05])
    y = torch.tensor([1, 0])  # sample 0 is predicted 0, i.e. already wrong
    attack = build_attack("rays", model, eps=0.04, query_limit=50)
    x_adv = attack(x, y)
    assert attack.last_queries[0] == 1 and attack.last_radius[0] == 0
    assert torch.equal(x_adv, x)  # sample 1 is 0.05 from the boundary: out of reach


@pytest.fixture(scope="module")
def tiny_victim():
    torch.manual_seed(0)
    model = build_model("tiny_cnn", in_channels=1, num_classes=2, image_size=28).eval()
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        # An untrained CNN with global pooling is nearly constant: centre the final bias so
        # the clean margins are small and mixed, and some samples are within reach.
        logits = model(x)
        margins = (logits[:, 0] - logits[:, 1]).sort().values
        model.backbone[-1].bias[0] -= (margins[1] + margins[2]) / 2
        y = model(x).argmax(1)  # every clean sample correct: the attack has work to do
    return model, x, y


def test_tiny_cnn_queries_are_hard_label_counted_and_capped(tiny_victim):
    model, x, y = tiny_victim
    probe = HardLabelProbe(model).eval()  # the attack restores this mode on the inner model
    attack = build_attack("rays", probe, eps=0.1, seed=1, query_limit=60)
    x_adv = attack(x, y)
    queries = attack.last_queries
    assert queries.dtype == torch.int64 and queries.shape == (4,)
    assert int(queries.max()) <= 60 and int(queries.min()) >= 1
    assert int(queries.sum()) == probe.rows  # every forwarded row is counted, no more
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    assert float((x_adv - x).abs().amax()) <= 0.1 + 1e-6
    ok = attack.last_success
    assert ok.any() and not ok.all()  # both branches: adversarial and clean returns
    with torch.no_grad():
        pred = model(x_adv).argmax(1)
    assert torch.all(pred[ok] != y[ok])
    assert torch.equal(x_adv[~ok], x[~ok])


def test_deterministic_under_a_seed(tiny_victim):
    model, x, y = tiny_victim
    runs = [
        build_attack("rays", model, eps=0.3, seed=seed, query_limit=20)(x, y) for seed in (1, 1, 2)
    ]
    assert not torch.equal(runs[0], x)  # some samples were attacked successfully
    assert torch.equal(runs[0], runs[1])
    assert torch.equal(runs[0], runs[2])  # RayS has no randomness: the seed does not matter


def test_metadata_and_parameter_validation(tiny_victim):
    meta = ATTACKS.get("rays").meta
    assert meta.knowledge == "decision-based" and meta.norm == "linf" and meta.bounded
    model = tiny_victim[0]
    assert build_attack("rays", model, eps=0.1).config()["params"] == {
        "early_stop": True,
        "query_limit": 10000,
        "tol": None,
    }
    for bad in ({"query_limit": 0}, {"query_limit": 2.5}, {"tol": 0.0}, {"tol": -1.0}):
        with pytest.raises(ConfigError):
            build_attack("rays", model, eps=0.1, **bad)
