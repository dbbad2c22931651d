"""What earlier protocol runs cost (``benchmark.results.cost``), and the estimate line a new
run logs from them."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark.evaluation.estimate import past_runs_text
from benchmark.results.cost import PastRun, attack_seconds, past_runs


def _doc(seconds: list[float], *, defense: str | None = None, cached: bool = False, **env):
    return {
        "protocol": {"id": "mrb_linf_v2", "version": "2.0"},
        "config": {"dataset": "breastmnist", "defense": defense},
        "environment": env or {"device": "cpu", "num_threads": 1},
        "attacks": [
            {"cell_id": f"c{i}", "timing": {"seconds": s, "cached": cached and i == 0}}
            for i, s in enumerate(seconds)
        ],
        "convergence": {"budgets": [{"eps_label": "2/255", "seconds": 100.0}]},
    }


def _write(root: Path, name: str, doc: dict) -> None:
    path = root / "breastmnist" / "mrb_linf_v2" / name / "run.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def test_attack_seconds_count_cells_and_convergence_and_refuse_partial_costs():
    assert attack_seconds(_doc([1000.0, 200.0])) == 1300.0
    assert attack_seconds(_doc([1000.0, 200.0], cached=True)) is None  # a cell came from cache
    assert attack_seconds({"attacks": [{"timing": {}}]}) is None  # no time recorded


def test_past_runs_read_a_results_root_and_the_estimate_names_them_per_kind(tmp_path):
    _write(tmp_path, "a", _doc([1400.0]))
    _write(tmp_path, "b", _doc([7000.0, 1300.0], defense="pgd_at"))
    _write(tmp_path, "c", _doc([8000.0, 300.0], defense="pgd_at"))
    _write(tmp_path, "d", _doc([9000.0], defense="mpadvt", cached=True))  # partial: left out
    _write(tmp_path, "e", _doc([60.0], defense="pgd_at", device="cuda", device_name="H100"))
    other = _doc([5.0])
    other["protocol"]["id"] = "mrb_linf_v1"  # another protocol's file in the folder: left out
    _write(tmp_path, "f", other)
    runs = past_runs(tmp_path, "breastmnist", "mrb_linf_v2")
    assert sorted(runs, key=lambda r: r.seconds) == [
        PastRun(160.0, "H100", True),
        PastRun(1500.0, "cpu (1 thread)", False),
        PastRun(8400.0, "cpu (1 thread)", True),
        PastRun(8400.0, "cpu (1 thread)", True),
    ]
    assert past_runs(tmp_path, "retinamnist", "mrb_linf_v2") == []
    text = past_runs_text(runs, "mrb_linf_v2", "breastmnist", defended=True)
    assert text == (
        "published mrb_linf_v2 runs on breastmnist of defended models took 3 min on H100 "
        "(1 run); 2.3 h on cpu (1 thread) (2 runs) (leaderboard/results)"
    )
    text = past_runs_text(runs, "mrb_linf_v2", "breastmnist", defended=False)
    assert text is not None and "of undefended models took 25 min on cpu (1 thread) (1 run)" in text
    # Without a run of its kind the other kind's are named as such; without any, nothing.
    only_defended = [r for r in runs if r.defended]
    text = past_runs_text(only_defended, "mrb_linf_v2", "breastmnist", defended=False)
    assert text is not None and "of defended models took" in text
    assert past_runs_text([], "mrb_linf_v2", "breastmnist", defended=False) is None
