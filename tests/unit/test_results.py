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
from benchmark.results.outcomes import labels_block, outcomes_block


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
            "indices": {"start": 0, "stop": 10},
            "labels": labels_block([0, 1] * 5),
        },
        "model": {"model_id": "m", "arch": "tiny_cnn", "checkpoint_sha256": "b" * 64, "card": {}},
        "metrics": {
            "clean": {
                "accuracy": scalar,
                "auc": scalar,
                "outcomes": outcomes_block([True, False] * 5),
            }
        },
        "timing": {"seconds": 1.0},
    }


def test_valid_document_round_trips(tmp_path):
    path = write_result(_valid(), tmp_path / "r.json")
    assert read_result(path) == _valid()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_unknown_major_version_is_rejected_in_one_line():
    doc = _valid()
    doc["schema_version"] = "3.0.0"
    with pytest.raises(ResultsError, match=r"unknown schema_version '3.0.0'") as err:
        validate_result(doc)
    assert "\n" not in str(err.value) and "[1, 2]" in str(err.value)
    doc["schema_version"] = "2.7.3"  # a newer minor of a known major is read
    validate_result(doc)


def _v1() -> dict:
    doc = _valid()
    doc["schema_version"] = "1.0.0"
    del doc["data"]["indices"], doc["data"]["labels"], doc["metrics"]["clean"]["outcomes"]
    return doc


def test_version_1_documents_without_outcomes_still_validate():
    validate_result(_v1())
    doc = _v1()
    doc["schema_version"] = "2.0.0"  # the same document claiming version 2 lacks its outcomes
    with pytest.raises(ResultsError, match="'indices' is a required property"):
        validate_result(doc)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (("metrics", "clean", "outcomes"), "metrics/clean: 'outcomes' is a required property"),
        (("data", "labels"), "data: 'labels' is a required property"),
        (("data", "indices"), "data: 'indices' is a required property"),
        (("metrics", "clean", "outcomes", "encoding"), "'encoding' is a required property"),
    ],
)
def test_version_2_documents_without_outcomes_are_refused(path, message):
    doc = _valid()
    target = doc
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    with pytest.raises(ResultsError, match=message):
        validate_result(doc)


def test_an_attack_block_without_outcomes_is_refused():
    doc = _valid()
    scalar = doc["metrics"]["clean"]["accuracy"]
    block = {
        "cell_id": "fgsm_eps8",
        "attack": "fgsm",
        "eps": 8 / 255,
        "norm": "linf",
        "bounded": True,
        "knowledge": "white-box",
        "config": {"name": "fgsm", "eps": 8 / 255, "seed": 0, "params": {}, "implementation": ""},
        "metrics": {"robust_accuracy": scalar, "fooling_ratio": scalar},
        "outcomes": outcomes_block([False] * 10),
        "perturbation": {"linf_median": 0.0, "linf_max": 0.0, "l2_median": 0.0, "l2_max": 0.0},
        "timing": {"seconds": 0.0, "cached": False},
    }
    doc["attacks"] = [block]
    validate_result(doc)
    del block["outcomes"]
    with pytest.raises(ResultsError, match="attacks/0: 'outcomes' is a required property"):
        validate_result(doc)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["metrics"]["clean"].update(outcomes=outcomes_block([True] * 17)), "bytes"),
        (lambda d: d["data"].update(labels=labels_block([0] * 9)), "data/labels"),
        (lambda d: d["data"].update(indices=[0, 1, 2]), "data/indices: 3 indices"),
        (lambda d: d["metrics"]["clean"]["outcomes"].update(correct="@@@@"), "correct"),
    ],
)
def test_packed_fields_must_hold_data_n_images(edit, message):
    doc = _valid()
    edit(doc)
    with pytest.raises(ResultsError, match=message):
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


def test_a_defense_block_may_list_the_submission_files():
    doc = _valid()
    doc["config"]["defense"] = "my_blur"
    doc["defense"] = {
        "id": "my_blur",
        "kind": "preprocessing",
        "randomized": False,
        "differentiable": True,
        "version": "1.0",
        "config": {},
        "threat_models": ["oblivious"],
        "cost": {"base_ms_per_image": 1.0, "defended_ms_per_image": 2.0, "overhead": 2.0},
        "sha256": "c" * 64,
    }
    validate_result(doc)  # runs recorded before the file list still validate
    doc["defense"]["files"] = [
        {"path": "defense.py", "sha256": "d" * 64, "tracked": False, "modified": False}
    ]
    validate_result(doc)
    doc["defense"]["files"][0]["sha256"] = "xyz"
    with pytest.raises(ResultsError, match="defense/files/0/sha256"):
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
