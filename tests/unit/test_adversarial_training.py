"""Training-time defenses: the losses on hand-computed tensors, MPAdvT's sampling, one
training step of each defense, and robust models in the zoo and the evaluation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from benchmark.attacks.presets import AttackCell
from benchmark.defenses import SubmissionError, read_submission
from benchmark.defenses.adversarial_training import (
    linf_ascent,
    maadvt_loss,
    mart_loss,
    pgd_at_loss,
    softmax_kl,
    trades_loss,
)
from benchmark.errors import CheckpointError, ConfigError
from benchmark.evaluation import EvaluationConfig, evaluate
from benchmark.evaluation.cache import AdversarialCache
from benchmark.models.zoo import ZooEntry
from benchmark.reports.zoo import render_zoo_markdown
from benchmark.training import TrainConfig, selection_key, train_model

ROOT = Path(__file__).resolve().parents[2]
DEFENSES = ("pgd_at", "mpadvt", "maadvt", "trades", "mart")

# Two samples, two classes. Softmax of [0, ln 3] is [1/4, 3/4]; of [ln 3, 0] is [3/4, 1/4].
L3 = math.log(3.0)
CLEAN = torch.tensor([[0.0, L3], [0.0, 0.0]])  # p = [1/4, 3/4] and [1/2, 1/2]
ADV = torch.tensor([[L3, 0.0], [0.0, L3]])  # q = [3/4, 1/4] and [1/4, 3/4]
Y = torch.tensor([1, 0])


def _kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))


KL0 = _kl([0.25, 0.75], [0.75, 0.25])  # = 0.5 ln 3
KL1 = _kl([0.5, 0.5], [0.25, 0.75])


def test_kl_and_madry_loss_by_hand():
    assert softmax_kl(CLEAN, ADV).tolist() == pytest.approx([KL0, KL1])
    assert pytest.approx(0.5 * L3) == KL0
    # CE(adv, y): sample 0 has q_y = 1/4, sample 1 q_y = 1/4
    assert float(pgd_at_loss(ADV, Y)) == pytest.approx(math.log(4))


def test_maadvt_loss_by_hand():
    # CE(x') + lam * KL(p || q) * (1 - p_y(x)); p_y = 3/4 and 1/2
    lam = 2.0
    expected = (math.log(4) + lam * KL0 * 0.25 + math.log(4) + lam * KL1 * 0.5) / 2
    assert float(maadvt_loss(CLEAN, ADV, Y, lam)) == pytest.approx(expected)


def test_trades_loss_by_hand():
    ce_clean = (-math.log(0.75) - math.log(0.5)) / 2
    beta = 6.0
    expected = ce_clean + beta * (KL0 + KL1) / 2
    assert float(trades_loss(CLEAN, ADV, Y, beta)) == pytest.approx(expected)


def test_mart_loss_by_hand():
    # boosted CE: -log q_y - log(1.0001 - max_{k != y} q_k); both samples q_y = 1/4, max wrong 3/4
    bce = -math.log(0.25) - math.log(1.0001 - 0.75 + 1e-12)
    lam = 6.0
    reg0 = KL0 * (1.0000001 - 0.75)
    reg1 = KL1 * (1.0000001 - 0.5)
    expected = (2 * bce + lam * (reg0 + reg1)) / 2
    assert float(mart_loss(CLEAN, ADV, Y, lam)) == pytest.approx(expected, rel=1e-6)


def test_linf_ascent_stays_in_the_ball_and_ascends():
    torch.manual_seed(0)
    w = torch.randn(3, 16)
    x = torch.rand(4, 16)
    y = torch.tensor([0, 1, 2, 0])

    def objective(z):
        return F.cross_entropy(z @ w.t(), y, reduction="sum")

    x_adv = linf_ascent(objective, x, x, eps=0.05, alpha=0.02, steps=5)
    assert (x_adv - x).abs().max() <= 0.05 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert objective(x_adv) > objective(x)


def test_mpadvt_samples_within_the_papers_ranges():
    sub = read_submission(ROOT / "submissions" / "mpadvt")
    d = sub.build(seed=3)
    draws = [d.budget() for _ in range(400)]
    eps = [b[0] for b in draws]
    assert min(eps) >= 0.01 and max(eps) <= 0.04 and max(eps) - min(eps) > 0.025
    attacked = [b for b in draws if b[1] > 0]
    assert 0.4 < len(attacked) / len(draws) < 0.6  # Algorithm 1, line 8: attacked when p >= 0.5
    assert set(b[1] for b in attacked) == {1, 2, 3, 4, 5}
    assert all(b[2] == pytest.approx(2.5 * b[0] / b[1]) for b in attacked)
    assert all(b[3] == "uniform" for b in attacked)  # line 9: the random start
    assert all(b[1:] == (0, 0.0, "none") for b in draws if b[1] == 0)  # a clean batch
    d.reseed(3)
    assert [d.budget() for _ in range(5)] == draws[:5]
    with pytest.raises(SubmissionError, match="eps_low <= eps_high"):
        sub.build(eps_low=0.05, eps_high=0.01)
    with pytest.raises(SubmissionError, match="adv_threshold"):
        sub.build(adv_threshold=1.5)


def test_mpadvt_trains_clean_on_a_batch_its_coin_leaves_unattacked():
    """Algorithm 1's line-8 coin gates the whole inner attack: with the threshold at 1 no
    batch is attacked (the loss is the clean CE), at 0 every batch is."""
    sub = read_submission(ROOT / "submissions" / "mpadvt")
    model = _Toy()
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    never = sub.build(seed=0, adv_threshold=1.0)
    assert torch.equal(never.adversarial(model, x, y), x)
    model.train()
    clean = torch.nn.functional.cross_entropy(model(x), y)
    assert never.train(model, x, y).item() == pytest.approx(clean.item())
    always = sub.build(seed=0, adv_threshold=0.0)
    x_adv = always.adversarial(model, x, y)
    assert 0 < (x_adv - x).abs().max() <= always.last_budget[0] + 1e-6


class _Toy(torch.nn.Module):
    multi_label = False
    num_classes = 3

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4 * 8 * 8, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


@pytest.mark.parametrize("sid", DEFENSES)
def test_one_training_step_reduces_the_defense_loss(sid):
    sub = read_submission(ROOT / "submissions" / sid)
    defense = sub.build(seed=0)
    model = _Toy()
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(16, 1, 8, 8, generator=gen)
    y = torch.randint(0, 3, (16,), generator=gen)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    defense.reseed(5)
    before = defense.train(model, x, y)
    opt.zero_grad()
    before.backward()
    opt.step()
    defense.reseed(5)  # the same inner draws (MPAdvT: the same eps and steps)
    after = defense.train(model, x, y)
    assert model.training
    b, a = float(before.detach()), float(after.detach())
    assert a < b, f"{sid}: {b} -> {a}"


def test_multi_label_only_where_the_method_defines_it():
    x, y = torch.rand(2, 1, 8, 8), torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    for sid in ("pgd_at", "mpadvt"):  # Xu et al. Table 5 trains CheXNet with both
        loss = read_submission(ROOT / "submissions" / sid).build().train(_Toy(), x, y)
        assert torch.isfinite(loss.detach()) and loss.requires_grad
    for sid in ("maadvt", "trades", "mart"):
        d = read_submission(ROOT / "submissions" / sid).build()
        with pytest.raises(SubmissionError, match="single-label"):
            d.train(_Toy(), x, y)


def test_robust_model_through_the_zoo_and_the_evaluation(shared_data, tiny_models, tmp_path):
    zoo = tiny_models["zoo"]
    config = TrainConfig(
        dataset="breastmnist",
        arch="tiny_cnn",
        epochs=1,
        defense="pgd_at",
        defense_params={"steps": 1},
        init_from="tiny_cnn_breastmnist_28px_s0",
    )
    entry = train_model(config, data_dir=shared_data, zoo=zoo, progress=False)
    card = entry.card
    base_sha = zoo.entry("tiny_cnn_breastmnist_28px_s0").card["checkpoint"]["sha256"]
    assert card["recipe"]["init"] == {
        "model_id": "tiny_cnn_breastmnist_28px_s0",
        "checkpoint_sha256": base_sha,
    }
    assert card["model_id"] == "tiny_cnn_breastmnist_28px_s0_pgd_at_steps=1"
    assert card["defense"]["id"] == "pgd_at" and card["defense"]["params"]["steps"] == 1
    assert "val_robust_acc" in card["history"][0]
    assert card["recipe"]["selection"].startswith("best validation balanced accuracy under PGD-4")
    best = card["history"][card["best_epoch"] - 1]
    keys = [selection_key(h, "robust", 2, False) for h in card["history"]]
    assert selection_key(best, "robust", 2, False) == max(keys)
    assert card["training_time_hours"] > 0
    # the zoo page lists it among the robust models with the command that trains it again
    page = render_zoo_markdown([zoo.entry("tiny_cnn_breastmnist_28px_s0"), entry])
    robust_part = page.split("## Robust models")[1].split("## Recipes")[0]
    assert f"`{card['model_id']}` | pgd_at |" in robust_part
    assert "tiny_cnn_breastmnist_28px_s0_pgd_at" not in page.split("## Robust models")[0]
    assert (
        "--epochs 1 --seed 0 --defense pgd_at --defense-param steps=1 --lr 0.001 --select robust"
        " --select-eps 4/255 --select-steps 4 --init-from tiny_cnn_breastmnist_28px_s0`" in page
    )
    on_gpu = {**card, "environment": {**card["environment"], "device": "cuda"}}
    gpu_page = render_zoo_markdown([ZooEntry(entry.path, on_gpu)])
    assert "not bit-deterministic" in gpu_page and "bit-identical" not in gpu_page
    eval_config = EvaluationConfig(
        dataset="breastmnist",
        arch="tiny_cnn",
        attacks=[AttackCell.make("pgd", "4/255", steps=2)],
        suite="custom",
        n_examples=16,
        sanity_attack=False,
        defense="pgd_at",
        defense_params={"steps": 1},
        threat_models=["oblivious", "adaptive"],
    )
    cache = AdversarialCache(tmp_path / "c")
    doc, _ = evaluate(eval_config, data_dir=shared_data, zoo=zoo, cache=cache)
    assert doc["model"]["model_id"] == card["model_id"]
    assert doc["base_model"]["model_id"] == "tiny_cnn_breastmnist_28px_s0"
    assert [a["threat_model"] for a in doc["attacks"]] == ["oblivious", "adaptive"]
    assert doc["defense"]["id"] == "pgd_at" and doc["defense"]["cost"]["overhead"] > 0
    # a card that does not match the submission's parameters is refused before any work
    card_path = entry.path / "card.json"
    bad = json.loads(card_path.read_text())
    bad["defense"]["params"]["steps"] = 2
    card_path.write_text(json.dumps(bad))
    with pytest.raises(CheckpointError, match=r"defense\.params"):
        evaluate(eval_config, data_dir=shared_data, zoo=zoo, cache=cache)
    card_path.write_text(json.dumps(card))
    missing = EvaluationConfig(**{**eval_config.__dict__, "defense_params": {"steps": 3}})
    with pytest.raises(CheckpointError, match="bench train --dataset breastmnist"):
        evaluate(missing, data_dir=shared_data, zoo=zoo, cache=cache)


def test_training_with_a_non_training_defense_is_refused(shared_data, tmp_path):
    config = TrainConfig(dataset="breastmnist", arch="tiny_cnn", epochs=1, defense="jpeg")
    with pytest.raises(ConfigError, match="not a training one"):
        train_model(config, data_dir=shared_data, progress=False)


def test_robust_selection_never_prefers_a_collapsed_epoch():
    # RetinaMNIST MPAdvT (session 6): epoch 1 is a classifier, epoch 5 answers one class.
    # Under attack the collapsed epoch keeps 1/5 balanced accuracy and epoch 1 falls below it.
    real = {"val_balanced_acc": 0.362, "val_robust_balanced_acc": 0.162}
    collapsed = {"val_balanced_acc": 0.2, "val_robust_balanced_acc": 0.2}
    assert selection_key(real, "robust", 5, False) > selection_key(collapsed, "robust", 5, False)
    # Above chance, robustness decides and clean balanced accuracy breaks ties.
    a = {"val_balanced_acc": 0.66, "val_robust_balanced_acc": 0.60}
    b = {"val_balanced_acc": 0.73, "val_robust_balanced_acc": 0.55}
    c = {"val_balanced_acc": 0.70, "val_robust_balanced_acc": 0.60}
    assert selection_key(a, "robust", 2, False) > selection_key(b, "robust", 2, False)
    assert selection_key(c, "robust", 2, False) > selection_key(a, "robust", 2, False)
    # Multi-label has no single-class collapse to guard against.
    ml = {"val_balanced_acc": 0.1, "val_robust_balanced_acc": 0.05}
    assert selection_key(ml, "robust", 14, True)[0] == 1.0
    # The AUC rule: AUC first, NaN last, then accuracy.
    nan = {"val_auc": float("nan"), "val_acc": 0.9}
    ok = {"val_auc": 0.6, "val_acc": 0.5}
    assert selection_key(ok, "auc", 2, False) > selection_key(nan, "auc", 2, False)
