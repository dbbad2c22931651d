"""Corruption evaluation through the runner: results blocks, reference model, cache, subsets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.corruptions import CORRUPTION_PRESETS
from benchmark.corruptions.presets import CorruptionPlan
from benchmark.datasets.base import load_split
from benchmark.errors import CheckpointError
from benchmark.evaluation import EvaluationConfig, evaluate
from benchmark.evaluation.cache import AdversarialCache
from benchmark.evaluation.corruption import CorruptionRunner
from benchmark.models.inference import predict

PLAN = CorruptionPlan(
    sequences=("gaussian_noise_seq", "rotate_seq"),
    n_frames=5,
    corruptions=("contrast_down", "saturate"),
    severities=(1, 5),
)


def _config(**kw):
    return EvaluationConfig(
        dataset="breastmnist",
        arch="tiny_cnn",
        corruptions=PLAN,
        corruption_suite="custom",
        **kw,
    )


def test_corruption_block_with_reference_model(tiny_models, shared_data, tmp_path):
    cache = AdversarialCache(tmp_path / "cache")
    config = _config(corruption_reference="tiny_cnn_breastmnist_28px_s1")
    doc, path = evaluate(config, data_dir=shared_data, zoo=tiny_models["zoo"], cache=cache)
    assert path.parts[-3] == "custom" and "attacks" not in doc
    block = doc["corruptions"]
    assert block["reference_model"]["model_id"] == "tiny_cnn_breastmnist_28px_s1"
    seq = block["sequences"]
    assert [t["id"] for t in seq["types"]] == ["gaussian_noise_seq", "rotate_seq"]
    for t in seq["types"]:
        fp = t["flip_probability"]["value"]
        assert 0.0 <= fp <= 1.0 and len(t["frame_accuracy"]) == 5
        assert t["frame_accuracy"][0] == pytest.approx(doc["metrics"]["clean"]["accuracy"]["value"])
        ref = t["reference_flip_probability"]
        expected = fp / ref if ref else None  # undefined against a reference that never flips
        assert t["relative_flip_probability"] == pytest.approx(expected)
    assert seq["mfp"] == pytest.approx(
        np.mean([t["flip_probability"]["value"] for t in seq["types"]])
    )
    sev = block["severity"]
    assert [r["id"] for r in sev["corruptions"]] == ["contrast_down"]  # saturate: colour only
    assert sev["skipped"] == [{"id": "saturate", "reason": "defined for colour images only"}]
    row = sev["corruptions"][0]
    assert len(row["accuracy"]) == 2 and row["accuracy"][0]["n"] == 156
    ce = sev["error_vs_reference"]
    assert set(ce["ce"]) == {"contrast_down"} and ce["mce"] == ce["ce"]["contrast_down"]
    assert "balanced_error_vs_reference" in sev

    # A second run: every frame and every prediction comes from the cache, same numbers.
    doc2, _ = evaluate(
        config,
        data_dir=shared_data,
        zoo=tiny_models["zoo"],
        cache=AdversarialCache(tmp_path / "cache"),
    )
    assert all(t["frames_cached"] for t in doc2["corruptions"]["sequences"]["types"])
    assert doc2["corruptions"]["severity"]["corruptions"][0]["images_cached"]
    for a, b in zip(seq["types"], doc2["corruptions"]["sequences"]["types"], strict=True):
        assert a["flip_probability"] == b["flip_probability"]
        assert a["frame_accuracy"] == b["frame_accuracy"]
    assert doc2["corruptions"]["severity"]["error_vs_reference"] == ce


def test_a_subset_sees_the_frames_of_the_full_split(tiny_models, shared_data, tmp_path):
    model = tiny_models["breastmnist"]
    full = load_split("breastmnist", "test", size=28, data_dir=shared_data)
    idx = torch.tensor([3, 50, 120])

    def runner(split, indices, root):
        return CorruptionRunner(
            model, split, indices, model_sha256="x" * 64, reference=None, seed=0,
            batch_size=64, cache=AdversarialCache(tmp_path / root),
        )  # fmt: skip

    all_frames, _ = runner(full, torch.arange(len(full)), "a").sequence_frames("snow_seq", 2, 4)
    sub_frames, _ = runner(full.subset(idx), idx, "b").sequence_frames("snow_seq", 2, 4)
    assert torch.equal(sub_frames, all_frames[idx])


def test_corrupt_cache_entry_is_recomputed(tiny_models, shared_data, tmp_path):
    model = tiny_models["breastmnist"]
    split = load_split("breastmnist", "test", size=28, data_dir=shared_data).subset(torch.arange(8))
    cache = AdversarialCache(tmp_path / "c")
    run = CorruptionRunner(
        model, split, torch.arange(8), model_sha256="y" * 64, reference=None, seed=0,
        batch_size=8, cache=cache,
    )  # fmt: skip
    first, cached = run.sequence_frames("tilt_seq", 3, 3)
    assert not cached
    for f in (tmp_path / "c").rglob("*.pt"):
        f.write_bytes(b"garbage")
    again, cached = run.sequence_frames("tilt_seq", 3, 3)
    assert not cached and torch.equal(first, again)


def test_reference_of_another_dataset_is_refused_before_any_work(tiny_models, shared_data):
    config = _config(corruption_reference="tiny_cnn_retinamnist_28px_s0")
    with pytest.raises(CheckpointError, match="dataset='retinamnist' but 'breastmnist'"):
        evaluate(config, data_dir=shared_data, zoo=tiny_models["zoo"])


def test_standard_preset_covers_the_three_suites():
    plan = CORRUPTION_PRESETS.get("standard")
    assert len(plan.sequences) == 14 and "gamma_corr_up" in plan.corruptions
    assert len(plan.corruptions) == len(set(plan.corruptions))


def test_a_run_says_what_is_left_to_compute_before_any_work(tiny_models, shared_data, tmp_path):
    """The estimate counts the corrupted-image sets to make and the images to predict from
    the cache: everything before a run, nothing after it (a rerun only reads the cache)."""
    model = tiny_models["breastmnist"]
    split = load_split("breastmnist", "test", size=28, data_dir=shared_data).subset(torch.arange(6))
    run = CorruptionRunner(
        model, split, torch.arange(6), model_sha256="z" * 64, reference=None, seed=0,
        batch_size=6, cache=AdversarialCache(tmp_path / "c"),
    )  # fmt: skip
    # 2 sequences x 5 frames and 1 grey-scale corruption (saturate is colour only) x 2 severities
    assert run.pending(PLAN) == (4, 4, 6 * (2 * 5 + 2))
    assert run.log_estimate(PLAN) > 0
    clean = predict(model, split, batch_size=6)
    run.run(PLAN, clean)
    assert run.pending(PLAN) == (0, 4, 0)
    assert run.log_estimate(PLAN) == 0.0
