"""The model-pass timer behind the protocol cost figure: it counts and times what ran."""

from __future__ import annotations

import torch

from benchmark.attacks import build_attack
from benchmark.models import build_model
from benchmark.models.pass_timer import PassTimer, PassTimes


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("tiny_cnn", in_channels=1, num_classes=2, image_size=28).eval()


def test_forward_and_backward_passes_are_counted_and_timed():
    model = _model()
    x = torch.rand(5, 1, 28, 28)
    with PassTimer(model) as timer:
        with torch.no_grad():
            model(x)
        xg = x.clone().requires_grad_(True)
        model(xg).sum().backward()
    t = timer.times
    assert (t.forward_images, t.gradient_forward_images, t.backward_images) == (10, 5, 5)
    assert t.forward_seconds > 0 and t.backward_seconds > 0
    # the hooks are gone once the timer is closed: nothing more is counted
    model(x)
    assert t.forward_images == 10
    assert not model._forward_hooks and not model._forward_pre_hooks


def test_a_gradient_attack_costs_one_backward_pass_per_step_and_image():
    model = _model()
    x, y = torch.rand(6, 1, 28, 28), torch.tensor([0, 1] * 3)
    attack = build_attack("pgd", model, eps=8 / 255, steps=4)
    with PassTimer(model) as timer:
        attack(x, y)
    t = timer.times
    assert t.backward_images == 4 * 6
    assert t.gradient_forward_images == 4 * 6
    assert t.forward_images >= t.gradient_forward_images
    assert t.record()["backward_images"] == 24


def test_pass_times_arithmetic_round_trips_through_json():
    """A batch's share (``since``) stored as JSON and added back gives the timer's totals: how
    a resumed convergence check counts the cost of the batches an earlier run attacked."""
    import json

    before = PassTimes(1.0, 2.0, 10, 4, 4)
    after = PassTimes(1.5, 3.25, 18, 9, 9)
    share = json.loads(json.dumps(after.since(before)))
    assert share == {
        "forward_seconds": 0.5,
        "backward_seconds": 1.25,
        "forward_images": 8,
        "gradient_forward_images": 5,
        "backward_images": 5,
    }
    total = before + PassTimes.from_dict({**share, "unknown": 7})
    assert total == after and total is not before and before == PassTimes(1.0, 2.0, 10, 4, 4)
    assert PassTimes.from_dict({}) == PassTimes()
