"""What earlier protocol runs cost (``benchmark.results.cost``), and the estimate line a new
run logs from them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from benchmark.evaluation.estimate import past_runs_text
from benchmark.results.cost import PastRun, attack_seconds, past_runs

PUBLISHED = Path(__file__).resolve().parents[2] / "leaderboard" / "results"


def _doc(seconds: list[float], *, cached: bool = False) -> dict:
    return {
        "attacks": [
            {"cell_id": f"c{i}", "timing": {"seconds": s, "cached": cached and i == 0}}
            for i, s in enumerate(seconds)
        ],
        "convergence": {"budgets": [{"eps_label": "2/255", "seconds": 100.0}]},
    }


def test_attack_seconds_count_cells_and_convergence_and_refuse_partial_costs():
    assert attack_seconds(_doc([1000.0, 200.0])) == 1300.0
    assert attack_seconds(_doc([1000.0, 200.0], cached=True)) is None  # a cell came from cache
    assert attack_seconds({"attacks": [{"timing": {}}]}) is None  # no time recorded
    resumed = _doc([1000.0])
    resumed["attacks"][0]["timing"]["resumed_batches_without_cost"] = 1  # part of it unknown
    assert attack_seconds(resumed) is None


def test_past_runs_keep_conformant_runs_of_known_cost(tmp_path):
    """The three published HAM10000 protocol runs, copied: one left as published, one whose
    cells came from the cache, one whose protocol record was altered (not conformant)."""
    source = sorted((PUBLISHED / "ham10000_220" / "mrb_linf_v2").glob("*/*.json"))
    assert len(source) == 3
    root = tmp_path / "results"
    for i, path in enumerate(source):
        doc = json.loads(path.read_text())
        if i == 1:
            doc["attacks"][0]["timing"]["cached"] = True
        if i == 2:
            doc["protocol"]["sha256"] = "0" * 64
        target = root / path.relative_to(PUBLISHED)
        target.parent.mkdir(parents=True)
        target.write_text(json.dumps(doc))
    (root / "ham10000_220" / "mrb_linf_v2" / "junk.json").write_text("[1, 2")  # unreadable
    (kept,) = past_runs(root, "ham10000_220", "mrb_linf_v2")
    first = json.loads(source[0].read_text())
    assert kept == PastRun(attack_seconds(first), "cpu (1 thread)", False, "resnet18")
    assert past_runs(root, "retinamnist", "mrb_linf_v2") == []
    shutil.rmtree(root)
    assert past_runs(root, "ham10000_220", "mrb_linf_v2") == []


def test_the_estimate_names_runs_of_its_kind_and_architecture_per_device():
    runs = [
        PastRun(160.0, "H100", True, "resnet18"),
        PastRun(1500.0, "cpu (1 thread)", False, "resnet18"),
        PastRun(8400.0, "cpu (1 thread)", True, "resnet18"),
        PastRun(8300.0, "cpu (1 thread)", True, "resnet18"),
        PastRun(20000.0, "cpu (1 thread)", True, "resnet50"),
    ]
    text = past_runs_text(runs, "mrb_linf_v2", "breastmnist", defended=True, arch="resnet18")
    assert text == (
        "published mrb_linf_v2 runs on breastmnist of defended resnet18 models took 3 min on "
        "H100 (1 run); 2.3 h on cpu (1 thread) (2 runs) (leaderboard/results)"
    )
    # No run of the architecture: every architecture's, said so by leaving it out.
    text = past_runs_text(runs, "mrb_linf_v2", "breastmnist", defended=True, arch="vgg16_bn")
    assert (
        text is not None and "of defended models took 3 min on H100 (1 run); 2.3 h to 5.6 h" in text
    )
    text = past_runs_text(runs, "mrb_linf_v2", "breastmnist", defended=False)
    assert text is not None and "of undefended models took 25 min on cpu (1 thread) (1 run)" in text
    # Without a run of its kind the other kind's are named as such, with the direction.
    only_defended = [r for r in runs if r.defended]
    text = past_runs_text(only_defended, "mrb_linf_v2", "breastmnist", defended=False)
    assert text is not None and "of defended models took" in text
    assert text.endswith("; none of an undefended model yet, which takes less")
    assert past_runs_text([], "mrb_linf_v2", "breastmnist", defended=False) is None


def test_device_text_names_pinned_kernels():
    """A training run's device names its CPU kernels, and says when they were pinned (such a
    checkpoint is reproducible on any CPU with them, not only on the one it ran on)."""
    from benchmark.results.cost import device_text

    env = {"device": "cpu", "num_threads": 1, "cpu_capability": "AVX2"}
    assert device_text(env) == "cpu (1 thread)"
    assert device_text(env, kernels=True) == "cpu (1 thread, AVX2)"
    pinned = {**env, "cpu_isa_env": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}}
    assert device_text(pinned, kernels=True) == "cpu (1 thread, AVX2 pinned)"
    gpu = {"device": "cuda:0", "device_name": "NVIDIA H100"}
    assert device_text(gpu, kernels=True) == "cuda:0 (NVIDIA H100)"
