"""The corruption protocol (``mrb_corruption_v1``): what it fixes, the runs it makes, their
conformance, and the corruption boards it ranks from the per-image outcomes."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest

from benchmark.corruptions import CORRUPTION_PRESETS, CORRUPTIONS
from benchmark.corruptions.presets import protocol_plan, resolve_corruptions
from benchmark.errors import ConfigError
from benchmark.evaluation import EvaluationConfig, evaluate
from benchmark.evaluation.cache import AdversarialCache
from benchmark.leaderboard import corruption_board as board_module
from benchmark.leaderboard import group_entries, load_runs
from benchmark.leaderboard.corruption_board import (
    corrupted_images_key,
    corruption_board,
    severity_counts,
)
from benchmark.leaderboard.seed_worst import attach_seed_worst_cases
from benchmark.metrics.balanced import balanced_accuracy
from benchmark.results import corruption_protocols
from benchmark.results.conformance import corruption_protocol_problems, ranked_run_problems
from benchmark.results.corruption_protocols import (
    CORRUPTION_PROTOCOLS,
    CURRENT_CORRUPTION_PROTOCOL,
    MRB_CORRUPTION_V1,
    CorruptionProtocol,
    configs_digest,
)
from benchmark.results.naming import result_path
from benchmark.results.outcomes import read_outcomes
from benchmark.results.schema import write_result

#: A small protocol of the same shape, so a test can run it end to end on tiny models.
TINY = CorruptionProtocol(
    id="tiny_corruption_v1",
    version="1.0",
    corruptions=("contrast_down", "gaussian_noise"),
    severities=(1, 3),
    sequences=("rotate_seq",),
    sequence_severities=(3,),
    n_frames=5,
    configs_sha256=configs_digest(
        [(c, CORRUPTIONS.get(c).config()) for c in ("contrast_down", "gaussian_noise")],
        [("rotate_seq", CORRUPTIONS.get("rotate_seq").config())],
    ),
    seed=0,
    description="test protocol",
)


@pytest.fixture
def tiny_protocol(monkeypatch):
    """TINY registered and current (what the boards and ``leaderboard add`` rank by)."""
    monkeypatch.setitem(CORRUPTION_PROTOCOLS._entries, TINY.id, TINY)
    monkeypatch.setattr(corruption_protocols, "CURRENT_CORRUPTION_PROTOCOL", TINY)
    return TINY


def test_version_1_is_the_leaderboard_set_it_was_written_from_and_its_sha_is_pinned():
    """The protocol spells its corruptions out (a preset may change; a published protocol may
    not): when written they were the ``standard`` preset's, 22 x 5 pairs, 14 sequences."""
    standard = CORRUPTION_PRESETS.get("standard")
    p = MRB_CORRUPTION_V1
    assert CURRENT_CORRUPTION_PROTOCOL is p
    assert p.corruptions == standard.corruptions and p.severities == (1, 2, 3, 4, 5)
    assert p.sequences == standard.sequences and p.n_frames == standard.n_frames == 21
    assert p.pairs == 110 and p.seed == 0
    assert p.record() == {"id": "mrb_corruption_v1", "version": "1.0", "sha256": p.sha256}
    # Any change to what it resolves to changes the sha256 (and needs a new version).
    assert p.sha256 != replace(p, seed=1).sha256
    assert p.sha256 != replace(p, severities=(1, 2, 3, 4)).sha256
    assert p.sha256.startswith("a75b4157478f"), p.sha256  # pinned: published runs record it
    # It pins what the corruptions compute: their registered configurations now.
    assert p.configs_sha256 == configs_digest(
        [(c, CORRUPTIONS.get(c).config()) for c in p.corruptions],
        [(c, CORRUPTIONS.get(c).config()) for c in p.sequences],
    )
    plan = protocol_plan(p)
    assert resolve_corruptions("mrb_corruption_v1") == ("mrb_corruption_v1", plan)
    assert plan.corruptions == p.corruptions and plan.sequence_severities == (3,)


def test_the_protocol_fixes_the_images_and_the_draws_whatever_the_model_seed():
    config = EvaluationConfig.from_options(
        dataset="breastmnist", arch="tiny_cnn", corruptions="mrb_corruption_v1", seed=2
    )
    assert config.corruption_protocol is MRB_CORRUPTION_V1
    assert config.corruption_seed == 0 and config.seed == 2
    assert config.corruption_suite == "mrb_corruption_v1"
    other = EvaluationConfig.from_options(
        dataset="breastmnist", arch="tiny_cnn", corruptions="standard", seed=2
    )
    assert other.corruption_protocol is None and other.corruption_seed == 2
    with pytest.raises(ConfigError, match="scores the whole test split: drop --n-examples"):
        EvaluationConfig.from_options(
            dataset="breastmnist", arch="tiny_cnn", corruptions="mrb_corruption_v1", n_examples=20
        )
    with pytest.raises(ConfigError, match="drop --split val"):
        EvaluationConfig.from_options(
            dataset="breastmnist", arch="tiny_cnn", corruptions="mrb_corruption_v1", split="val"
        )


def _run(tiny_models, shared_data, tmp_path, spec: str, seed: int):
    config = EvaluationConfig.from_options(
        dataset="breastmnist", arch="tiny_cnn", corruptions=spec, seed=seed
    )
    return evaluate(
        config,
        data_dir=shared_data,
        zoo=tiny_models["zoo"],
        cache=AdversarialCache(tmp_path / "cache"),
    )


def test_protocol_runs_pair_image_by_image_and_rank_on_the_corruption_board(
    tiny_models, shared_data, tmp_path, tiny_protocol, monkeypatch
):
    doc0, path0 = _run(tiny_models, shared_data, tmp_path, TINY.id, seed=0)
    assert path0.parts[-3] == TINY.id
    assert doc0["corruption_protocol"] == TINY.record()
    assert doc0["corruptions"]["seed"] == 0
    assert corruption_protocol_problems(doc0, TINY) == []
    runs, _ = load_runs(path0.parents[3])
    y = runs[0].labels
    for row in doc0["corruptions"]["severity"]["corruptions"]:
        assert len(row["outcomes"]) == 2
        for block, acc, bal in zip(
            row["outcomes"], row["accuracy"], row["balanced_accuracy"], strict=True
        ):
            correct = read_outcomes(block, 156)
            assert correct.mean() == pytest.approx(acc["value"])
            assert balanced_accuracy(correct, y) == pytest.approx(bal)

    # The seed-1 model sees exactly the seed-0 run's corrupted images: all from the cache.
    doc1, _ = _run(tiny_models, shared_data, tmp_path, TINY.id, seed=1)
    assert doc1["corruptions"]["seed"] == 0
    assert all(r["images_cached"] for r in doc1["corruptions"]["severity"]["corruptions"])
    assert all(t["frames_cached"] for t in doc1["corruptions"]["sequences"]["types"])
    # A preset run of the same corruptions: the model's seed draws them, and no protocol.
    doc2, _ = _run(tiny_models, shared_data, tmp_path, "contrast_down,gaussian_noise", seed=1)
    assert doc2["corruptions"]["seed"] == 1 and "corruption_protocol" not in doc2
    assert corruption_protocol_problems(doc2, TINY)[0].startswith("no corruption protocol")
    assert ranked_run_problems(doc2)  # publishing it needs --exploratory

    runs, invalid = load_runs(path0.parents[3])
    assert not invalid
    by_seed = {(r.doc["config"]["seed"], r.doc["config"]["corruption_suite"]): r for r in runs}
    r0, r1 = by_seed[(0, TINY.id)], by_seed[(1, TINY.id)]
    assert corrupted_images_key(r0) == corrupted_images_key(r1)
    assert corrupted_images_key(r0) != corrupted_images_key(by_seed[(1, "custom")])
    counts, pairs = severity_counts(r0)
    assert pairs == 4 and counts.min() >= 0 and counts.max() <= 4

    # Both tiny CNNs (2 epochs) are collapsed: listed, never ranked.
    board = corruption_board("breastmnist", group_entries(runs))
    assert board.corruption_protocol is TINY
    rows = {r.source.config["seed"]: r for r in board.rows}
    assert set(rows) == {0, 1}  # an entry with a protocol run shows that run only
    assert all(r.status == "collapsed" and r.rank is None for r in rows.values())

    # A third entry (another checkpoint) whose run recorded other corrupted images.
    other = copy.deepcopy(doc0)
    other["model"]["checkpoint_sha256"] = "f" * 64
    other["config"]["model_id"] = "tiny_cnn_breastmnist_28px_s7"
    other["run_id"] += "-other"
    other["corruptions"]["severity"]["corruptions"][0]["images_sha256"][0] = "0" * 64
    assert corruption_protocol_problems(other) == []  # conformant, but not these images
    write_result(other, result_path(path0.parents[3], other))
    assert ranked_run_problems(doc0) == []  # leaderboard add takes it without --exploratory

    # Ranked when not collapsed: the figure recomputed from the outcomes is the mean over the
    # (corruption, severity) pairs of the recorded balanced accuracies.
    monkeypatch.setattr(board_module, "collapse_reason", lambda run: None)
    runs, invalid = load_runs(path0.parents[3])
    assert not invalid
    board = corruption_board("breastmnist", group_entries(runs))
    ranked = [r for r in board.rows if r.ranked]
    assert {r.source.config["seed"] for r in ranked} == {0, 1}
    for r in ranked:
        recorded = [b for row in r.source.severity["corruptions"] for b in row["balanced_accuracy"]]
        assert r.key_value == pytest.approx(np.mean(recorded))
        assert r.n == 156 and r.ci95[0] <= r.key_value <= r.ci95[1]
        assert r.rank in ("1", "2", "1-2") and r.protocol == "tiny_corruption_v1 1.0"
    (demoted,) = [r for r in board.rows if not r.ranked]
    assert demoted.source.checkpoint_sha256 == "f" * 64
    assert demoted.status == "exploratory"
    assert demoted.reason.startswith("scored on other corrupted images than ")
    assert board.test and "sign-flip" in board.test

    # Beside each protocol row: the recipe's figure over its seeds (both tiny CNNs are seeds
    # of one recipe and ran the protocol on the same corrupted images).
    attach_seed_worst_cases([board], group_entries(runs))
    assert board.has_seed_worst
    for r in ranked:
        spread = r.details["seed_worst"]
        assert [seed for seed, _, _ in spread.values] == [0, 1]
        assert spread.mean == pytest.approx(np.mean([x.key_value for x in ranked]))
        other_seed = [note for seed, _, note in spread.values if seed != r.source.config["seed"]]
        assert other_seed == ["collapsed"]  # the other seed's own run is collapsed
    assert "seed_worst" not in demoted.details  # seed 7 of the recipe, on other images


def test_protocol_runs_refuse_what_they_cannot_score():
    with pytest.raises(ConfigError, match="ranks single-label tasks only"):
        EvaluationConfig.from_options(
            dataset="chestmnist", arch="tiny_cnn", corruptions="mrb_corruption_v1"
        )


def test_a_run_that_departs_from_the_protocol_says_how(tiny_protocol):
    doc = {
        "corruption_protocol": TINY.record(),
        "data": {"split": "test", "n": 100, "n_split": 156},
        "corruptions": {
            "seed": 3,
            "severity": {
                "severities": [1, 3],
                "corruptions": [{"id": "contrast_down", "outcomes": []}],
            },
            "sequences": {"types": [{"id": "rotate_seq"}], "n_frames": 5, "severities": [3]},
        },
    }
    problems = corruption_protocol_problems(doc, TINY)
    assert problems[0] == "images: 100 of the 156 test images, not the whole test split"
    assert problems[1] == "corruption draws seeded 3, not 0"
    assert problems[2].startswith("severity corruptions ['contrast_down'] at [1, 3], not the")
    voting = {**doc, "defense": {"id": "medrdf", "voting": True}}
    assert corruption_protocol_problems(voting, TINY)[-1].startswith("a voting defense")
    stale = {**doc, "corruption_protocol": {**TINY.record(), "sha256": "ab" * 32}}
    assert corruption_protocol_problems(stale, TINY) == [
        f"recorded tiny_corruption_v1 1.0 with sha256 abababababab, not the protocol's "
        f"{TINY.sha256[:12]} (made by code that resolved the protocol differently)"
    ]
    other = {**doc, "corruption_protocol": {**TINY.record(), "version": "0.9"}}
    assert corruption_protocol_problems(other, TINY) == [
        f"a run of tiny_corruption_v1 0.9, not tiny_corruption_v1 1.0 (sha256 {TINY.sha256[:12]})"
    ]
