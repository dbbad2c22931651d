"""The public Python API (``import benchmark``) on real data: what the README shows works."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import benchmark as mrb
from benchmark.errors import CheckpointError, ConfigError
from benchmark.models.zoo import ModelZoo
from benchmark.training import TrainConfig, train_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tiny_zoo(shared_data, tmp_path) -> Path:
    """A zoo holding one tiny CNN trained for one epoch on real BreastMNIST."""
    zoo = tmp_path / "zoo"
    config = TrainConfig(dataset="breastmnist", arch="tiny_cnn", epochs=1, device="cpu")
    train_model(config, data_dir=shared_data, zoo=ModelZoo(zoo))
    return zoo


def test_the_public_names_are_there_and_lazy():
    for name in ("load_dataset", "load_model", "evaluate", "results_frame", "EvaluationConfig"):
        assert name in dir(mrb) and name in mrb.__all__
        assert callable(getattr(mrb, name))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = mrb.nope


def test_load_dataset_gives_the_official_test_split(shared_data):
    test = mrb.load_dataset("breastmnist", "test", data_dir=shared_data)
    assert len(test) == 156
    x, y = next(iter(test.batches(8)))
    assert x.dtype == torch.float32 and x.shape == (8, 1, 28, 28)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0 and y.dtype == torch.int64


def test_load_model_verifies_the_checkpoint_and_evaluate_returns_the_document(
    shared_data, tiny_zoo, tmp_path
):
    model = mrb.load_model("breastmnist", "tiny_cnn", zoo=tiny_zoo, device="cpu")
    assert not model.training
    with pytest.raises(CheckpointError, match="tiny_cnn_breastmnist_28px_s0_pgd_at"):
        mrb.load_model("breastmnist", "tiny_cnn", zoo=tiny_zoo, defense="pgd_at")
    checkpoint = next(tiny_zoo.glob("*/model.pt"))
    checkpoint.write_bytes(checkpoint.read_bytes() + b"tampered")
    with pytest.raises(CheckpointError, match="sha256"):
        mrb.load_model("breastmnist", "tiny_cnn", zoo=tiny_zoo)


def test_evaluate_from_python_matches_the_cli_rules(shared_data, tiny_zoo, tmp_path):
    doc = mrb.evaluate(
        "breastmnist",
        "tiny_cnn",
        attacks="fgsm",
        eps="8/255",
        n_examples=16,
        sanity_attack=False,
        data_dir=shared_data,
        zoo=tiny_zoo,
        out_dir=tmp_path / "results",
        use_cache=False,
    )
    assert doc["data"]["n"] == 16 and doc["config"]["attacks"] == ["fgsm_eps8-255"]
    worst = doc["worst_case"][0]
    assert worst["eps_label"] == "8/255" and worst["robust_accuracy"]["n"] == 16
    assert list((tmp_path / "results").rglob("*.json"))  # written as the CLI writes it
    with pytest.raises(ConfigError, match="did you mean 8/255"):
        mrb.evaluate("breastmnist", "tiny_cnn", attacks="fgsm", eps=8, zoo=tiny_zoo)


def test_results_frame_reads_the_published_results():
    df = mrb.results_frame(ROOT / "leaderboard" / "results")
    assert {"dataset", "defense_label", "cell_id", "robust_accuracy"} <= set(df.columns)
    attacked = df[df.kind == "attack"]
    assert len(attacked) > 100 and attacked.robust_accuracy.between(0, 1).all()
