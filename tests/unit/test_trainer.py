"""Trainer behaviour that the CLI tests do not reach: multi-label (BCE) training."""

from __future__ import annotations

import pytest

from benchmark.datasets import DATASETS
from benchmark.models.zoo import ModelZoo
from benchmark.testing.fakes import write_fake_medmnist
from benchmark.training import TrainConfig, train_model


def test_multilabel_training_uses_bce_and_label_metrics(tmp_path, monkeypatch):
    # ChestMNIST is not available offline: a fake file in the official layout stands in.
    write_fake_medmnist(tmp_path, "chestmnist", n={"train": 64, "val": 48, "test": 48})
    source = DATASETS.get("chestmnist")

    def fake_load_split(name, split, *, size=None, data_dir=None, download=False):
        assert name == "chestmnist"
        return source.load(split, size=size, data_dir=tmp_path, verify=False)

    monkeypatch.setattr("benchmark.training.trainer.load_split", fake_load_split)
    entry = train_model(
        TrainConfig(dataset="chestmnist", arch="tiny_cnn", epochs=1, batch_size=32),
        zoo=ModelZoo(tmp_path / "zoo"),
    )
    card = entry.card
    assert card["multi_label"] is True and card["num_classes"] == 14
    assert card["recipe"]["loss"] == "bce_with_logits"
    acc = card["metrics"]["test"]["acc"]
    assert acc["n"] == 48 and acc["ci_method"] == "bootstrap"
    assert 0.0 <= acc["value"] <= 1.0
    model, _ = ModelZoo(tmp_path / "zoo").load(entry.model_id)
    assert model.multi_label


def test_invalid_recipe_values_are_refused():
    from benchmark.errors import ConfigError

    with pytest.raises(ConfigError, match="--batch-size must be >= 1"):
        train_model(TrainConfig(dataset="breastmnist", arch="tiny_cnn", batch_size=0))
    with pytest.raises(ConfigError, match="--lr must be > 0"):
        train_model(TrainConfig(dataset="breastmnist", arch="tiny_cnn", lr=0))
