"""Every registered attack honours the contract on a trained tiny model and real images:
output inside [0, 1] and the eps-ball, deterministic under a seed, robust <= clean accuracy,
the model left in its mode."""

from __future__ import annotations

import pytest
import torch

from benchmark.attacks import ATTACKS, build_attack, perturbation_norms
from benchmark.attacks.base import AttackContext
from benchmark.datasets import load_split

EPS = 8 / 255
#: Small budgets so every attack runs in seconds on the CPU (transfer: the seed-1 tiny model
#: is the surrogate; GAP: one epoch of generator training on the real training split).
FAST = {
    "steps": 3,
    "n_queries": 10,
    "nb_iter": 2,
    "nb_sample": 8,
    "epochs": 1,
    "batch_size": 64,
    "width": 8,
    "query_limit": 20,
    "surrogate": "tiny_cnn",
    "surrogate_seed": 1,
    "base_params": '{"steps": 3}',
}


def fast_params(name: str) -> dict:
    return {k: v for k, v in FAST.items() if k in ATTACKS.get(name).defaults}


@pytest.fixture(scope="module")
def batches(shared_data):
    out = {}
    for dataset in ("breastmnist", "retinamnist"):
        split = load_split(dataset, "test", data_dir=shared_data)
        x, y = next(split.batches(24))
        out[dataset] = (x, y)
    return out


def _victim(name, tiny_models, batches):
    dataset = "retinamnist" if ATTACKS.get(name).meta.min_classes > 2 else "breastmnist"
    return tiny_models[dataset], *batches[dataset]


def _build(name, model, seed, tiny_models, shared_data, cache_root):
    """Build and prepare an attack as the runner does (GAP trains, transfer loads)."""
    attack = build_attack(name, model, eps=EPS, seed=seed, **fast_params(name))
    dataset = "retinamnist" if model.num_classes == 5 else "breastmnist"
    ctx = AttackContext(
        dataset=dataset,
        size=28,
        seed=0,
        data_dir=shared_data,
        zoo_root=tiny_models["zoo"].root,
        cache_root=cache_root,
        progress=False,
    )
    attack.validate(ctx)
    attack.prepare(ctx)
    return attack


@pytest.mark.parametrize("name", ATTACKS.list())
def test_attack_contract(name, tiny_models, batches, shared_data, tmp_path):
    model, x, y = _victim(name, tiny_models, batches)
    model.train()  # the attack must evaluate in eval mode and restore the caller's mode
    attack = _build(name, model, 3, tiny_models, shared_data, tmp_path)
    x_adv = attack(x, y)
    assert model.training
    assert x_adv.shape == x.shape and x_adv.dtype == torch.float32
    assert torch.isfinite(x_adv).all()
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    if attack.meta.bounded:
        norms = perturbation_norms(x, x_adv)[attack.meta.norm]
        assert float(norms.max()) <= EPS + 1e-5
    # Determinism under a seed.
    again = _build(name, model, 3, tiny_models, shared_data, tmp_path)(x, y)
    assert torch.equal(x_adv, again)
    # Robust accuracy never exceeds clean accuracy.
    model.eval()
    with torch.no_grad():
        clean_acc = (model(x).argmax(1) == y).float().mean()
        adv_acc = (model(x_adv).argmax(1) == y).float().mean()
    assert adv_acc <= clean_acc
    cfg = attack.config()
    assert cfg["name"] == name and cfg["seed"] == 3 and cfg["implementation"]


@pytest.mark.parametrize("name", ["pgd", "fgnm", "pgdnm", "square"])
def test_a_different_seed_changes_randomised_attacks(name, tiny_models, batches):
    model, x, y = _victim(name, tiny_models, batches)
    a = build_attack(name, model, eps=EPS, seed=1, **fast_params(name))(x, y)
    b = build_attack(name, model, eps=EPS, seed=2, **fast_params(name))(x, y)
    if name == "fgnm":  # deterministic attack: the seed must not matter
        assert torch.equal(a, b)
    else:
        assert not torch.equal(a, b)


def test_strong_attack_lowers_accuracy_on_real_images(tiny_models, batches):
    model, x, y = _victim("pgd", tiny_models, batches)
    x_adv = build_attack("pgd", model, eps=32 / 255, steps=10)(x, y)
    with torch.no_grad():
        assert (model(x_adv).argmax(1) == y).float().mean() < (
            model(x).argmax(1) == y
        ).float().mean()
