"""GAP (Xu et al. Sec. 4.2.2) and transfer attacks: pieces on hand-made tensors, and the
runner path that trains on the training split and loads surrogates from the zoo."""

from __future__ import annotations

import pytest
import torch

from benchmark.attacks import AttackError, build_attack
from benchmark.attacks.base import AttackContext
from benchmark.attacks.gap import UNetGenerator, gap_loss, scale_perturbation, unet_depth
from benchmark.attacks.presets import AttackCell
from benchmark.errors import CheckpointError
from benchmark.evaluation import EvaluationConfig, evaluate
from benchmark.evaluation.cache import AdversarialCache


def test_scaling_is_min_one_eps_over_linf_norm():
    u = torch.tensor([[[[0.5, -0.25]]], [[[0.01, 0.02]]]])
    out = scale_perturbation(u, eps=0.1)
    # Image 0: ||u||_inf = 0.5 > eps -> scaled by 0.2; image 1: 0.02 <= eps -> unchanged.
    assert torch.allclose(out[0], u[0] * 0.2)
    assert torch.equal(out[1], u[1])
    assert float(out.abs().amax()) == pytest.approx(0.1)


@pytest.mark.parametrize(("size", "depth"), [(28, 2), (64, 3), (128, 4), (224, 4)])
def test_unet_depth_and_shapes(size, depth):
    assert unet_depth(size) == depth
    gen = UNetGenerator(3, width=4, depth=depth)
    with torch.no_grad():
        out = gen(torch.rand(2, 3, size, size))
    assert out.shape == (2, 3, size, size) and float(out.abs().max()) <= 1.0


def test_eq4_loss_is_the_mean_true_class_log_probability():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 0])
    expected = torch.log_softmax(logits, 1)[torch.arange(2), y].mean()
    assert torch.isclose(gap_loss(logits, y, logits, "true_class", False), expected)
    # The authors' code: CE towards the least-likely clean class (class 1, then class 0).
    ll = gap_loss(logits, y, logits, "least_likely", False)
    assert torch.isclose(ll, torch.nn.functional.cross_entropy(logits, torch.tensor([1, 0])))


def test_gap_without_training_is_refused(tiny_models):
    gap = build_attack("gap", tiny_models["breastmnist"], eps=7 / 255)
    with pytest.raises(AttackError, match="needs a trained generator"):
        gap(torch.rand(2, 1, 28, 28), torch.tensor([0, 1]))
    with pytest.raises(AttackError, match="loss must be"):
        build_attack("gap", tiny_models["breastmnist"], eps=7 / 255, loss="other")


def test_gap_through_the_runner_trains_once_and_is_cached(tiny_models, shared_data, tmp_path):
    cell = AttackCell.make("gap", "11/255", epochs=1, width=8)
    config = EvaluationConfig(
        dataset="breastmnist", arch="tiny_cnn", attacks=[cell], suite="custom", sanity_attack=False
    )
    cache = AdversarialCache(tmp_path / "cache")
    doc, _ = evaluate(config, data_dir=shared_data, zoo=tiny_models["zoo"], cache=cache)
    block = doc["attacks"][0]
    assert block["perturbation"]["linf_max"] <= 11 / 255 + 1e-6
    assert block["metrics"]["robust_accuracy"]["n"] == 156  # the whole test split
    assert len(list((tmp_path / "cache" / "gap").glob("*.pt"))) == 1
    doc2, _ = evaluate(
        config,
        data_dir=shared_data,
        zoo=tiny_models["zoo"],
        cache=AdversarialCache(tmp_path / "cache"),
    )
    assert doc2["attacks"][0]["timing"]["cached"]
    assert doc2["attacks"][0]["metrics"] == block["metrics"]


def test_transfer_equals_the_base_attack_on_the_surrogate(tiny_models, shared_data):
    victim = tiny_models["breastmnist"]
    surrogate, _ = tiny_models["zoo"].load("tiny_cnn_breastmnist_28px_s1")
    x, y = torch.rand(6, 1, 28, 28), torch.tensor([0, 1, 0, 1, 1, 0])
    transfer = build_attack(
        "transfer",
        victim,
        eps=4 / 255,
        surrogate="tiny_cnn",
        surrogate_seed=1,
        base_attack="bim",
        base_params='{"steps": 2}',
    )
    ctx = AttackContext(dataset="breastmnist", size=28, zoo_root=tiny_models["zoo"].root)
    transfer.validate(ctx)
    transfer.prepare(ctx)
    direct = build_attack("bim", surrogate, eps=4 / 255, steps=2)(x, y)
    assert torch.equal(transfer(x, y), direct)
    assert transfer.config()["norm"] == "linf"


def test_missing_surrogate_is_refused_before_any_work(tiny_models):
    transfer = build_attack(
        "transfer", tiny_models["breastmnist"], eps=4 / 255, surrogate="resnet50"
    )
    ctx = AttackContext(dataset="breastmnist", size=28, zoo_root=tiny_models["zoo"].root)
    with pytest.raises(CheckpointError, match=r"resnet50_breastmnist_28px_s0.*not found"):
        transfer.validate(ctx)


def test_gap_batches_per_epoch_caps_each_epoch(tiny_models, shared_data, monkeypatch):
    from benchmark.attacks import gap as gap_module

    calls: list[int] = []
    real = gap_module.gap_loss

    def counting(logits, *args, **kwargs):
        calls.append(logits.shape[0])
        return real(logits, *args, **kwargs)

    monkeypatch.setattr(gap_module, "gap_loss", counting)
    gap = build_attack(
        "gap", tiny_models["breastmnist"], eps=7 / 255, epochs=2, width=8, batches_per_epoch=3
    )
    gap.prepare(AttackContext(dataset="breastmnist", size=28, data_dir=shared_data))
    assert calls == [32] * 6  # 2 epochs x 3 full batches, from BreastMNIST's 546 training images
    assert [h["epoch"] for h in gap.history] == [1, 2]
    with pytest.raises(AttackError, match="batches_per_epoch must be >= 0"):
        build_attack("gap", tiny_models["breastmnist"], eps=7 / 255, batches_per_epoch=-1)


def test_a_surrogate_that_is_the_victim_is_refused(tiny_models):
    """A transfer cell whose surrogate is the attacked checkpoint would be white-box under a
    transfer label; the surrogate's sha256 is part of the cell's configuration (cache key)."""
    zoo = tiny_models["zoo"]
    victim_sha = zoo.entry("tiny_cnn_breastmnist_28px_s0").card["checkpoint"]["sha256"]
    ctx = AttackContext(dataset="breastmnist", size=28, zoo_root=zoo.root, model_sha256=victim_sha)
    same = build_attack("transfer", tiny_models["breastmnist"], eps=4 / 255, surrogate="tiny_cnn")
    with pytest.raises(AttackError, match="is the attacked model itself"):
        same.validate(ctx)
    other = build_attack(
        "transfer", tiny_models["breastmnist"], eps=4 / 255, surrogate="tiny_cnn", surrogate_seed=1
    )
    other.validate(ctx)
    sha1 = zoo.entry("tiny_cnn_breastmnist_28px_s1").card["checkpoint"]["sha256"]
    assert other.config()["params"]["surrogate_sha256"] == sha1


def test_a_transfer_cells_estimate_counts_its_base_attack_on_the_surrogate(
    tiny_models, shared_data, monkeypatch
):
    """The run estimate of a transfer cell counts the base attack's steps (not the transfer
    wrapper's, which has none) and times the surrogate, where they are spent. Both models are
    tiny CNNs here, so the timer is replaced by one that tells them apart: the victim costs
    1 ms per image and step, the surrogate 1 s."""
    import benchmark.evaluation.estimate as estimate
    from benchmark.evaluation.estimate import pass_budget, run_time_bounds
    from benchmark.evaluation.plan import build_plan

    config = EvaluationConfig.from_options(
        dataset="breastmnist",
        arch="tiny_cnn",
        attacks="transfer",
        attack_params=[
            "transfer.surrogate=tiny_cnn",
            "transfer.surrogate_seed=1",
            "transfer.base_attack=bim",
            'transfer.base_params={"steps": 7}',
        ],
        n_examples=8,
        sanity_attack=False,
    )
    plan = build_plan(
        config,
        data_dir=shared_data,
        zoo=tiny_models["zoo"],
        cache=AdversarialCache(enabled=False),
        progress=False,
    )
    timed = []

    def fake_seconds(model, x):
        timed.append(model)
        return (0.001, 0.001) if model is plan.model else (1.0, 1.0)

    monkeypatch.setattr(estimate, "per_image_seconds", fake_seconds)
    try:
        (p,) = plan.passes
        assert pass_budget(p, randomized=False) == (7, 0)
        bounds, todo, cached = run_time_bounds(plan)
        assert (todo, cached) == (1, 0)
        assert bounds.low == pytest.approx(8 * 7 * 1.0)  # 8 images x 7 steps on the surrogate
        assert len(timed) == 2 and timed[1] is not plan.model
    finally:
        plan.close()
