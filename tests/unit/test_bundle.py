"""Submission bundles: made from a submission and its protocol run, checked member by member,
re-run by a maintainer to the same per-image outcomes; tampering and foreign results refused.

The protocol run is a tiny-budget adaptive-track run of a copy of the median filter in front of
a tiny CNN trained on real BreastMNIST (the budgets shrunk through a test protocol)."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest

from benchmark.errors import ResultsError
from benchmark.evaluation import EvaluationConfig, evaluate
from benchmark.evaluation.bundle import MANIFEST, make_bundle, rerun_bundle
from benchmark.evaluation.cache import AdversarialCache
from benchmark.results.protocols import PROTOCOLS, Protocol, ProtocolAttack

ROOT = Path(__file__).resolve().parents[2]
TINY = Protocol(
    id="tiny_bundle",
    version="0",
    track="adaptive",
    norm="linf",
    budgets=(8 / 255,),
    attacks=(ProtocolAttack("autoattack_ref", (("n_queries", 5), ("steps", 2))),),
    threat_models=("oblivious", "adaptive"),
    eot_samples=2,
    draws=2,
)


def _sandbox_starts() -> bool:
    import os

    from benchmark.defenses.sandbox import SandboxError, check_sandbox

    if os.environ.get("BENCH_REQUIRE_SANDBOX") == "1":
        return True
    try:
        check_sandbox()
    except SandboxError:
        return False
    return True


def test_a_bundle_reruns_to_the_same_outcomes_and_refuses_tampering(
    tiny_models, shared_data, tmp_path, monkeypatch
):
    monkeypatch.setitem(PROTOCOLS._entries, TINY.id, TINY)
    folder = tmp_path / "subs" / "median_filter"
    shutil.copytree(ROOT / "submissions" / "median_filter", folder)
    config = EvaluationConfig.from_options(
        dataset="breastmnist",
        arch="tiny_cnn",
        protocol=TINY.id,
        defense=str(folder),
        eot_samples=2,
        draws=2,
    )
    zoo = tiny_models["zoo"]
    _, result = evaluate(
        config,
        data_dir=shared_data,
        zoo=zoo,
        out_dir=tmp_path / "results",
        cache=AdversarialCache(tmp_path / "cache"),
        progress=False,
    )
    bundle = make_bundle(folder, [result], tmp_path / "bundles")
    with tarfile.open(bundle) as tar:
        names = set(tar.getnames())
    assert {MANIFEST, "submission/median_filter/defense.py", f"results/{result.name}"} <= names
    # The maintainer's re-run treats the bundle as a stranger's code: in the sandbox (where
    # this machine has one), and still to the same per-image outcomes as the run in process.
    (comparison,) = rerun_bundle(
        bundle,
        data_dir=shared_data,
        zoo=zoo,
        cache_dir=tmp_path / "fresh_cache",
        isolation="sandbox" if _sandbox_starts() else "builtin",
    )
    assert comparison.identical and comparison.moved  # every block compared, none moved
    assert (tmp_path / "fresh_cache").exists()  # the re-run crafted its attacks again

    # A member edited after bundling no longer matches the manifest.
    forged = tmp_path / "forged.bundle.tar.gz"
    with tarfile.open(bundle) as src, tarfile.open(forged, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name == "submission/median_filter/defense.py":
                data += b"\n# changed\n"
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    with pytest.raises(ResultsError, match="does not match its sha256"):
        rerun_bundle(forged, data_dir=shared_data, zoo=zoo)

    # A results file of other files of the submission is refused when bundling.
    (folder / "README.md").write_text("edited after the run\n")
    with pytest.raises(ResultsError, match="was not made with these files"):
        make_bundle(folder, [result], tmp_path / "bundles")
    with pytest.raises(ResultsError, match="needs the submission's protocol results"):
        make_bundle(folder, [], tmp_path / "bundles")


def test_a_corruption_protocol_run_is_bundled_and_rerun_image_by_image(
    tiny_models, shared_data, tmp_path, monkeypatch
):
    """A defense's conformant corruption-protocol run (no L-inf protocol) is bundled, and the
    maintainer's re-run compares every (corruption, severity)'s per-image outcomes."""
    from benchmark.corruptions import CORRUPTIONS
    from benchmark.results import corruption_protocols
    from benchmark.results.corruption_protocols import (
        CORRUPTION_PROTOCOLS,
        CorruptionProtocol,
        configs_digest,
    )

    tiny = CorruptionProtocol(
        id="tiny_bundle_corruption",
        version="0",
        corruptions=("contrast_down",),
        severities=(1, 4),
        sequences=("rotate_seq",),
        sequence_severities=(3,),
        n_frames=3,
        configs_sha256=configs_digest(
            [("contrast_down", CORRUPTIONS.get("contrast_down").config())],
            [("rotate_seq", CORRUPTIONS.get("rotate_seq").config())],
        ),
    )
    monkeypatch.setitem(CORRUPTION_PROTOCOLS._entries, tiny.id, tiny)
    monkeypatch.setattr(corruption_protocols, "CURRENT_CORRUPTION_PROTOCOL", tiny)
    folder = tmp_path / "subs" / "median_filter"
    shutil.copytree(ROOT / "submissions" / "median_filter", folder)
    config = EvaluationConfig.from_options(
        dataset="breastmnist", arch="tiny_cnn", corruptions=tiny.id, defense=str(folder)
    )
    _, result = evaluate(
        config,
        data_dir=shared_data,
        zoo=tiny_models["zoo"],
        out_dir=tmp_path / "results",
        cache=AdversarialCache(tmp_path / "cache"),
        progress=False,
    )
    bundle = make_bundle(folder, [result], tmp_path / "bundles")
    (comparison,) = rerun_bundle(
        bundle,
        data_dir=shared_data,
        zoo=tiny_models["zoo"],
        cache_dir=tmp_path / "fresh_cache",
        isolation="builtin",
    )
    assert comparison.identical
    assert {"contrast_down severity 1", "contrast_down severity 4"} <= set(comparison.moved)
