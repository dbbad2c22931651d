"""Trainer behaviour that the CLI tests do not reach: multi-label (BCE) training."""

from __future__ import annotations

import pytest
import torch

from benchmark.datasets import DATASETS
from benchmark.models.zoo import ModelZoo
from benchmark.testing.fakes import write_fake_medmnist
from benchmark.training import TrainConfig, train_model


def test_multilabel_training_uses_bce_and_label_metrics(tmp_path):
    # ChestMNIST is not available offline: a fake file in the official layout stands in.
    write_fake_medmnist(tmp_path, "chestmnist", n={"train": 64, "val": 48, "test": 48})
    source = DATASETS.get("chestmnist")

    splits = {s: source.load(s, data_dir=tmp_path, verify=False) for s in ("train", "val", "test")}
    entry = train_model(
        TrainConfig(dataset="chestmnist", arch="tiny_cnn", epochs=1, batch_size=32),
        zoo=ModelZoo(tmp_path / "zoo"),
        splits=splits,
    )
    card = entry.card
    assert card["multi_label"] is True and card["num_classes"] == 14
    assert card["recipe"]["loss"] == "bce_with_logits"
    acc = card["metrics"]["test"]["acc"]
    assert acc["n"] == 48 and acc["ci_method"] == "bootstrap"
    assert 0.0 <= acc["value"] <= 1.0
    model, _ = ModelZoo(tmp_path / "zoo").load(entry.model_id)
    assert model.multi_label
    assert "balanced_acc" not in card["metrics"]["test"]  # single-label only


def test_a_single_label_card_records_the_balanced_accuracy_of_val_and_test(tmp_path):
    write_fake_medmnist(tmp_path, "breastmnist", n={"train": 64, "val": 40, "test": 48})
    source = DATASETS.get("breastmnist")
    splits = {s: source.load(s, data_dir=tmp_path, verify=False) for s in ("train", "val", "test")}
    entry = train_model(
        TrainConfig(dataset="breastmnist", arch="tiny_cnn", epochs=1, batch_size=32),
        zoo=ModelZoo(tmp_path / "zoo"),
        splits=splits,
    )
    for split, n in (("val", 40), ("test", 48)):
        b = entry.card["metrics"][split]["balanced_acc"]
        assert b["n"] == n and b["classes"] == 2 and b["ci_method"] == "stratified bootstrap"
        assert 0.0 <= b["ci95"][0] <= b["value"] <= b["ci95"][1] <= 1.0


def test_training_warns_when_the_selected_model_is_collapsed(tmp_path, caplog, monkeypatch):
    """A model whose balanced-accuracy interval contains chance is named in a warning (forced
    here: a one-epoch tiny CNN may or may not collapse)."""
    import benchmark.training.trainer as trainer

    write_fake_medmnist(tmp_path, "breastmnist", n={"train": 64, "val": 40, "test": 48})
    source = DATASETS.get("breastmnist")
    splits = {s: source.load(s, data_dir=tmp_path, verify=False) for s in ("train", "val", "test")}
    monkeypatch.setattr(trainer, "collapsed_splits", lambda card: ["test"])
    with caplog.at_level("WARNING", logger="benchmark.training.trainer"):
        entry = train_model(
            TrainConfig(dataset="breastmnist", arch="tiny_cnn", epochs=1, batch_size=32),
            zoo=ModelZoo(tmp_path / "zoo"),
            splits=splits,
        )
    assert f"{entry.model_id} is collapsed: its test balanced accuracy" in caplog.text
    assert "(1/2)" in caplog.text


def test_invalid_recipe_values_are_refused():
    from benchmark.errors import ConfigError

    with pytest.raises(ConfigError, match="--batch-size must be >= 1"):
        train_model(TrainConfig(dataset="breastmnist", arch="tiny_cnn", batch_size=0))
    with pytest.raises(ConfigError, match="--lr must be > 0"):
        train_model(TrainConfig(dataset="breastmnist", arch="tiny_cnn", lr=0))


def _check_resume(config, run: dict, tmp_path, monkeypatch) -> None:
    """Interrupted after epoch 1 (in epoch 2's validation), then started again: the run
    resumes from its end-of-epoch state (weights, Adam, schedule, data order and MPAdvT's own
    random stream) and ends bit-identical to an uninterrupted run; a changed recipe or a
    corrupt state file starts afresh instead."""
    import benchmark.training.selection as selection
    from benchmark.training import partial_path

    whole = train_model(config(), zoo=ModelZoo(tmp_path / "a"), **run)
    assert whole.card["resumed"] == []
    assert not partial_path(ModelZoo(tmp_path / "a"), whole.model_id).exists()

    zoo = ModelZoo(tmp_path / "b")
    real_val = selection.val_scores
    calls = {"n": 0}

    def crash_in_epoch_two(model, split):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_val(model, split)

    monkeypatch.setattr(selection, "val_scores", crash_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train_model(config(), zoo=zoo, **run)
    partial = partial_path(zoo, whole.model_id)
    assert partial.is_file() and not zoo.exists(whole.model_id)
    resumed = train_model(config(), zoo=zoo, **run)
    assert [r["epoch"] for r in resumed.card["resumed"]] == [2]
    assert [h["epoch"] for h in resumed.card["history"]] == [1, 2, 3]
    assert resumed.card["checkpoint"]["sha256"] == whole.card["checkpoint"]["sha256"]
    assert resumed.card["history"][-1]["train_loss"] == whole.card["history"][-1]["train_loss"]
    assert not partial.exists()

    # a stale state (another recipe) and an unreadable one are not used
    calls["n"] = 0
    with pytest.raises(KeyboardInterrupt):
        train_model(config(), zoo=zoo, **run)
    other = config()
    other.lr = 5e-4
    fresh = train_model(other, zoo=zoo, **run)
    assert fresh.card["resumed"] == [] and not partial.exists()
    # nor one another version of the defense's code began (same parameters, other sha256)
    import dataclasses

    import benchmark.training.trainer as trainer

    calls["n"] = 0
    with pytest.raises(KeyboardInterrupt):
        train_model(config(), zoo=zoo, **run)
    real_load = trainer.load_training_defense

    def edited(cfg):
        sub, defense = real_load(cfg)
        return dataclasses.replace(sub, sha256="0" * 64), defense

    monkeypatch.setattr(trainer, "load_training_defense", edited)
    assert train_model(config(), zoo=zoo, **run).card["resumed"] == []
    monkeypatch.setattr(trainer, "load_training_defense", real_load)
    calls["n"] = 0
    with pytest.raises(KeyboardInterrupt):
        train_model(config(), zoo=zoo, **run)
    partial.write_bytes(b"not a torch file")
    again = train_model(config(), zoo=zoo, **run)
    assert again.card["resumed"] == []
    assert again.card["checkpoint"]["sha256"] == whole.card["checkpoint"]["sha256"]


def _mpadvt_config(batch_size: int):
    def config() -> TrainConfig:
        cfg = TrainConfig(
            dataset="breastmnist",
            arch="tiny_cnn",
            epochs=3,
            batch_size=batch_size,
            defense="mpadvt",
        )
        cfg.milestones = (0.5,)  # an lr decay after epoch 1: the schedule must resume too
        return cfg

    return config


def test_an_interrupted_run_resumes_to_the_same_weights(shared_data, tmp_path, monkeypatch):
    """The resume property on a few real BreastMNIST batches (3 per epoch; the whole splits:
    the ``slow`` test below)."""
    from benchmark.datasets.base import load_split

    splits = {
        s: load_split("breastmnist", s, data_dir=shared_data).subset(
            torch.arange(96 if s == "train" else 32)
        )
        for s in ("train", "val", "test")
    }
    _check_resume(_mpadvt_config(32), {"splits": splits}, tmp_path, monkeypatch)


@pytest.mark.slow
def test_an_interrupted_full_run_resumes_to_the_same_weights(shared_data, tmp_path, monkeypatch):
    """The same on the whole BreastMNIST splits, batch 128."""
    _check_resume(_mpadvt_config(128), {"data_dir": shared_data}, tmp_path, monkeypatch)
