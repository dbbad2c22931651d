"""Per-image outcomes (results schema 2): an evaluation on real data writes them, and every
stored accuracy, balanced accuracy and worst case is recomputed exactly from the JSON alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmark.attacks.presets import AttackCell
from benchmark.evaluation import EvaluationConfig, evaluate
from benchmark.evaluation.cache import AdversarialCache
from benchmark.metrics.balanced import balanced_accuracy
from benchmark.metrics.base import wilson_interval
from benchmark.results import RunView, read_result
from benchmark.results.outcomes import (
    indices_block,
    labels_block,
    read_indices,
    read_labels,
    unpack_outcomes,
)

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "leaderboard" / "results"
CELLS = [
    AttackCell.make("fgsm", "2/255"),
    AttackCell.make("fgsm", "8/255"),
    AttackCell.make("pgd", "8/255", steps=3),
    AttackCell.make("pgd_l2", 0.5, steps=3),
]


def _wilson(correct: np.ndarray) -> dict:
    k, n = int(correct.sum()), correct.size
    return {"value": k / max(n, 1), "ci95": list(wilson_interval(k, n)), "n": n}


def _stored(block: dict) -> dict:
    return {key: block[key] for key in ("value", "ci95", "n")}


def _evaluate(tiny_models, shared_data, tmp_path, **kw) -> dict:
    config = EvaluationConfig(
        dataset=kw.pop("dataset", "breastmnist"), arch="tiny_cnn", suite="custom", **kw
    )
    _, path = evaluate(
        config,
        data_dir=shared_data,
        zoo=tiny_models["zoo"],
        cache=AdversarialCache(tmp_path / "cache"),
    )
    return json.loads(path.read_text())  # the file alone from here on


def _check_recomputes(doc: dict) -> RunView:
    """Every figure the outcomes determine equals the stored one, exactly."""
    run = RunView(doc)
    n, labels = doc["data"]["n"], run.labels
    assert labels is not None and labels.shape == (n,)
    clean = unpack_outcomes(doc["metrics"]["clean"]["outcomes"]["correct"], n)
    assert np.array_equal(run.clean_outcomes(), clean)
    stored = doc["metrics"]["clean"]
    assert _wilson(clean) == _stored(stored["accuracy"])
    assert balanced_accuracy(clean, labels) == stored["per_class_accuracy"]["balanced_accuracy"]
    assert run.attacks, "no attack blocks"
    for a in run.attacks:
        correct = a.outcomes()
        assert correct is not None and correct.shape == (n,)
        assert _wilson(correct) == _stored(a.raw["metrics"]["robust_accuracy"])
        assert balanced_accuracy(correct, labels) == a.balanced_accuracy
    lists = doc.get("worst_case_by_threat_model") or {None: doc["worst_case"]}
    assert all(lists.values())
    for tm, cases in lists.items():
        for w in cases:
            robust = run.worst_case_outcomes(w["norm"], w["eps"], tm)
            members = run.worst_case_members(w["norm"], w["eps"], tm)
            assert sorted(a.cell_id for a in members) == sorted(w["attacks"])
            assert _wilson(robust) == _stored(w["robust_accuracy"])
            assert balanced_accuracy(robust, labels) == w["robust_balanced_accuracy"]
    for w in doc["worst_case"]:  # the headline list: the primary threat model's
        primary = doc.get("worst_case_threat_model")
        robust = run.worst_case_outcomes(w["norm"], w["eps"], primary)
        assert _wilson(robust) == _stored(w["robust_accuracy"])
    return run


def test_an_evaluation_stores_outcomes_that_recompute_every_figure(
    tiny_models, shared_data, tmp_path
):
    """BreastMNIST, the whole test split (a range marker), linf and l2 budgets, the sanity
    attack (its block carries outcomes but is in no worst case)."""
    doc = _evaluate(tiny_models, shared_data, tmp_path, attacks=CELLS)
    assert doc["schema_version"].startswith("2.")
    n = doc["data"]["n"]
    assert doc["data"]["indices"] == {"start": 0, "stop": n} == {"start": 0, "stop": 156}
    assert [a["outcomes"]["encoding"] for a in doc["attacks"]] == ["bits-lsb-base64"] * 5
    assert doc["attacks"][-1]["sanity_only"]
    run = _check_recomputes(doc)
    assert np.array_equal(run.indices, np.arange(n))
    assert {(w["norm"], w["eps_label"]) for w in doc["worst_case"]} == {
        ("linf", "2/255"),
        ("linf", "8/255"),
        ("l2", "127.5/255"),
    }
    # The worst case is at most every member's robust accuracy, and the sanity cell (eps
    # 64/255) is no member of the 8/255 one.
    eight = run.worst_case_outcomes("linf", 8 / 255)
    assert len(run.worst_case_members("linf", 8 / 255)) == 3
    assert all(not (eight & ~a.outcomes()).any() for a in run.worst_case_members("linf", 8 / 255))


def test_a_subset_stores_its_indices_and_five_class_labels(tiny_models, shared_data, tmp_path):
    doc = _evaluate(
        tiny_models,
        shared_data,
        tmp_path,
        dataset="retinamnist",
        attacks=CELLS[:3],
        n_examples=50,
        sanity_attack=False,
    )
    assert doc["data"]["indices"] == doc["data"]["subset"]["indices"]
    run = _check_recomputes(doc)
    assert list(run.indices) == doc["data"]["subset"]["indices"]
    assert set(run.labels.tolist()) <= set(range(5)) and len(set(run.labels.tolist())) > 1


def test_a_defended_run_stores_outcomes_per_pass_and_the_any_worst_case_recomputes(
    tiny_models, shared_data, tmp_path
):
    """median_filter, oblivious and adaptive passes; transfer cells count toward both threat
    models, black-box (Square) ones toward the adaptive one, and ``any`` takes every block."""
    cells = [
        AttackCell.make("pgd", "8/255", steps=3),
        AttackCell.make("square", "8/255", n_queries=10),
        AttackCell.make("transfer", "8/255", surrogate="tiny_cnn", surrogate_seed=1),
    ]
    doc = _evaluate(
        tiny_models,
        shared_data,
        tmp_path,
        attacks=cells,
        n_examples=40,
        sanity_attack=False,
        defense=str(ROOT / "submissions" / "median_filter"),
        threat_models=["oblivious", "adaptive"],
    )
    assert [a["threat_model"] for a in doc["attacks"]] == [
        "oblivious",
        "oblivious",
        "transfer",
        "adaptive",
        "black_box",
    ]
    assert set(doc["worst_case_by_threat_model"]) == {"oblivious", "adaptive", "any"}
    assert "outcomes" in doc["metrics"]["undefended_clean"]
    run = _check_recomputes(doc)
    members = {
        tm: [a.threat_model.value for a in run.worst_case_members("linf", 8 / 255, tm)]
        for tm in ("oblivious", "adaptive", "any")
    }
    assert members == {
        "oblivious": ["oblivious", "oblivious", "transfer"],
        "adaptive": ["transfer", "adaptive", "black_box"],
        "any": ["oblivious", "oblivious", "transfer", "adaptive", "black_box"],
    }
    # By default the ranking's worst case: ``any``.
    assert np.array_equal(
        run.worst_case_outcomes("linf", 8 / 255), run.worst_case_outcomes("linf", 8 / 255, "any")
    )


def test_a_version_1_published_file_reads_without_outcomes():
    docs = (read_result(p) for p in sorted(RESULTS.rglob("*.json")) if p.name != "LEDGER.jsonl")
    doc = next(d for d in docs if str(d.get("schema_version", "")).startswith("1."))
    run = RunView(doc)
    assert run.labels is None and run.indices is None and run.clean_outcomes() is None
    assert all(a.outcomes() is None for a in run.attacks)
    if run.worst_case:
        w = run.worst_case[0]
        assert run.worst_case_outcomes(w.norm, w.eps) is None


@pytest.mark.parametrize("shape", [(0,), (1,), (9,), (30, 14), (7, 3)])
def test_labels_round_trip(shape):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2 if len(shape) == 2 else 11, size=shape)
    block = labels_block(labels)
    assert np.array_equal(read_labels(block, shape[0]), labels)


def test_indices_are_a_range_for_the_whole_split_in_order():
    assert indices_block(np.arange(5), 5) == {"start": 0, "stop": 5}
    assert indices_block([0, 2, 4], 5) == [0, 2, 4]
    assert indices_block([1, 0], 2) == [1, 0]
    assert list(read_indices({"start": 0, "stop": 3})) == [0, 1, 2]
