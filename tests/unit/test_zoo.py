"""Checkpoint round trip and the zoo's refusal of corrupt, unsafe or mismatched files."""

from __future__ import annotations

import json

import pytest
import torch

from benchmark.errors import CheckpointError
from benchmark.hashing import file_digest
from benchmark.models import build_model
from benchmark.models.zoo import ModelZoo, model_id


def _card(arch="tiny_cnn", dataset="breastmnist", size=28, seed=0, classes=2):
    return {
        "model_id": model_id(arch, dataset, size, seed),
        "dataset": dataset,
        "arch": arch,
        "image_size": size,
        "in_channels": 1,
        "num_classes": classes,
        "multi_label": False,
        "seed": seed,
    }


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = build_model("tiny_cnn", in_channels=1, num_classes=2, image_size=28).eval()
    zoo = ModelZoo(tmp_path / "zoo")
    entry = zoo.save(model, _card())
    return zoo, entry, model


def test_round_trip_gives_the_same_model(saved):
    zoo, entry, model = saved
    assert entry.card["checkpoint"]["sha256"] == file_digest(entry.checkpoint)
    loaded, _ = zoo.load(entry.model_id)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert not loaded.training
    assert [e.model_id for e in zoo.list()] == ["tiny_cnn_breastmnist_28px_s0"]


def test_corrupted_checkpoint_is_refused(saved):
    zoo, entry, _ = saved
    data = bytearray(entry.checkpoint.read_bytes())
    data[len(data) // 2] ^= 0xFF
    entry.checkpoint.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"sha256 .* but its card says"):
        zoo.load(entry.model_id)


class _Payload:
    """An arbitrary object: a full unpickle of it could run code."""


def test_unsafe_pickle_is_refused_even_with_a_matching_card(saved):
    zoo, entry, _ = saved
    torch.save({"weights": _Payload()}, entry.checkpoint)
    card = json.loads((entry.path / "card.json").read_text())
    card["checkpoint"]["sha256"] = file_digest(entry.checkpoint)
    (entry.path / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="cannot be read safely"):
        zoo.load(entry.model_id)


def test_weights_of_another_architecture_are_refused(saved, tmp_path):
    zoo, entry, _ = saved
    card = json.loads((entry.path / "card.json").read_text())
    card["arch"] = "resnet18"
    (entry.path / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="does not fit architecture 'resnet18'"):
        zoo.load(entry.model_id)


def test_card_that_does_not_match_the_request_is_refused(saved):
    zoo, entry, _ = saved
    with pytest.raises(CheckpointError, match="dataset='breastmnist' but 'pneumoniamnist'"):
        zoo.load(entry.model_id, expect={"dataset": "pneumoniamnist"})


def test_missing_model_and_broken_card(saved):
    zoo, entry, _ = saved
    with pytest.raises(CheckpointError, match=r"not found in zoo.*bench train"):
        zoo.load("resnet18_breastmnist_28px_s0")
    (entry.path / "card.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable"):
        zoo.load(entry.model_id)
