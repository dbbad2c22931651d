"""Results schema, version checks and atomic, immutable writes."""

from __future__ import annotations

import copy
import json
import os

import pytest

from benchmark.errors import ResultsError
from benchmark.results import (
    SCHEMA_VERSION,
    atomic_write_json,
    read_result,
    validate_result,
    write_result,
)


def _valid() -> dict:
    scalar = {"value": 0.5, "n": 10, "ci95": [0.2, 0.8], "ci_method": "wilson"}
    return {
        "schema_version": SCHEMA_VERSION,
        "benchmark_version": "0.1.0",
        "created_at": "2026-11-22T00:00:00Z",
        "run_id": "clean_20261122t000000z",
        "git": {"commit": "abc", "dirty": False},
        "config": {
            "dataset": "breastmnist",
            "image_size": 28,
            "split": "test",
            "arch": "tiny_cnn",
            "model_id": "tiny_cnn_breastmnist_28px_s0",
            "defense": None,
            "threat_model": "clean",
            "seed": 0,
            "batch_size": 8,
            "device": "cpu",
        },
        "seed": 0,
        "environment": {
            "python": "3.11",
            "platform": "linux",
            "torch": "2",
            "device": "cpu",
            "num_threads": 2,
        },
        "versions": {
            "medrobustbench": "0.1.0",
            "torch": "2",
            "torchvision": "0",
            "torchattacks": "3",
            "medmnist": "3",
        },
        "data": {
            "dataset": "breastmnist",
            "split": "test",
            "n": 10,
            "sha256": "a" * 64,
            "source": "breastmnist.npz",
        },
        "model": {"model_id": "m", "arch": "tiny_cnn", "checkpoint_sha256": "b" * 64, "card": {}},
        "metrics": {"clean": {"accuracy": scalar, "auc": scalar}},
        "timing": {"seconds": 1.0},
    }


def test_valid_document_round_trips(tmp_path):
    path = write_result(_valid(), tmp_path / "r.json")
    assert read_result(path) == _valid()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_unknown_major_version_is_rejected():
    doc = _valid()
    doc["schema_version"] = "2.0.0"
    with pytest.raises(ResultsError, match=r"unknown schema_version '2.0.0'"):
        validate_result(doc)
    doc["schema_version"] = "1.7.3"  # a newer minor of a known major is read
    validate_result(doc)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("data", "sha256"), "xyz", "data/sha256"),
        (("metrics", "clean", "accuracy", "n"), -1, "metrics/clean/accuracy/n"),
        (("config", "split"), "dev", "config/split"),
        (("created_at",), "yesterday", "created_at"),
    ],
)
def test_schema_violations_name_the_path(path, value, message):
    doc = copy.deepcopy(_valid())
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ResultsError, match=message):
        validate_result(doc)


def test_missing_provenance_is_rejected():
    doc = _valid()
    del doc["versions"]["torchattacks"]
    with pytest.raises(ResultsError, match="torchattacks"):
        validate_result(doc)


def test_nan_is_rejected_and_nothing_is_written(tmp_path):
    doc = _valid()
    doc["metrics"]["clean"]["accuracy"]["value"] = float("nan")
    with pytest.raises(ResultsError, match="non-finite"):
        write_result(doc, tmp_path / "r.json")
    assert list(tmp_path.iterdir()) == []


def test_results_are_immutable(tmp_path):
    write_result(_valid(), tmp_path / "r.json")
    with pytest.raises(ResultsError, match="immutable"):
        write_result(_valid(), tmp_path / "r.json")


def test_atomic_write_keeps_old_content_when_serialisation_fails(tmp_path):
    target = tmp_path / "card.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(ValueError):
        atomic_write_json(target, {"a": float("inf")})
    assert json.loads(target.read_text()) == {"a": 1}
    assert sorted(os.listdir(tmp_path)) == ["card.json"]


def test_unreadable_file_is_one_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ResultsError, match="not readable JSON"):
        read_result(bad)
