"""Generated Markdown: the summary table and the in-place regeneration of marked blocks."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from benchmark.errors import ResultsError
from benchmark.results.report import latest_results, render_summary_table, update_generated_blocks


def _metric(value: float) -> dict[str, Any]:
    return {"value": value, "ci95": [value - 0.05, value + 0.05], "n": 100}


def _block(attack: str, cell: str, acc: float, *, steps: int | None, bounded: bool = True):
    params = {"steps": steps} if steps else {}
    return {
        "attack": attack,
        "cell_id": cell,
        "bounded": bounded,
        "eps": 8 / 255 if bounded else 0.0,
        "eps_label": "8/255" if bounded else "0",
        "norm": "linf" if bounded else "l2",
        "config": {"params": params},
        "metrics": {"robust_accuracy": _metric(acc), "fooling_ratio": _metric(0.5)},
        "perturbation": {"linf_median": 8 / 255, "l2_median": 0.4321},
        "timing": {"seconds": 3.0, "cached": False},
    }


def _doc(dataset: str, attacks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "config": {"dataset": dataset, "model_id": f"m_{dataset}", "suite": "s"},
        "data": {"n": 100, "n_split": 100, "split": "test", "sha256": "d" * 64},
        "metrics": {"clean": {"accuracy": _metric(0.9), "auc": _metric(0.95)}},
        "attacks": attacks,
        "worst_case": [
            {"norm": "linf", "eps_label": "8/255", "robust_accuracy": _metric(0.012), "attacks": []}
        ],
        "created_at": "2026-11-22T00:00:00Z",
        "git": {"commit": "abc"},
        "model": {"checkpoint_sha256": "c" * 64},
    }


def test_summary_table_aligns_cells_across_runs_and_shows_cw_norm():
    a = _doc(
        "alpha",
        [
            _block("pgd", "pgd20", 0.25, steps=20),
            _block("cw", "cw", 0.0, steps=None, bounded=False),
        ],
    )
    b = _doc("beta", [_block("pgd", "pgd20", 0.125, steps=20)])
    sanity = _block("pgd", "pgd_sanity", 0.0, steps=10)
    sanity["sanity_only"] = True
    b["attacks"].append(sanity)
    lines = render_summary_table([("a.json", a), ("b.json", b)]).splitlines()
    assert lines[0] == "| dataset | model | n | clean | pgd-20 8/255 | cw | worst case |"
    assert lines[2] == "| alpha | m_alpha | 100 | 90.0 | 25.0 | 0.0 (L2 0.43) | 1.2 @8/255 |"
    assert lines[3] == "| beta | m_beta | 100 | 90.0 | 12.5 | - | 1.2 @8/255 |"


def test_latest_results_takes_the_newest_run_per_folder(tmp_path: Path):
    for name in ("x/run_20261101t000000z.json", "x/run_20261102t000000z.json", "y/run_1.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    found = latest_results("*/*.json", tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "x/run_20261102t000000z.json",
        "y/run_1.json",
    ]


def test_update_generated_blocks_rewrites_only_the_blocks(tmp_path: Path):
    doc = _doc("alpha", [_block("pgd", "pgd20", 0.25, steps=20)])
    path = tmp_path / "alpha" / "s" / "m" / "run_1.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(doc))
    page = (
        "# Title\n\nHand-written 42.0.\n\n"
        "<!-- bench:results summary alpha/*/*/*.json -->\nstale\n<!-- /bench:results -->\n"
        "\nBetween.\n\n<!-- bench:results full alpha/s/m/*.json -->\n<!-- /bench:results -->\n"
    )
    read = lambda p: json.loads(p.read_text())  # noqa: E731
    new, n = update_generated_blocks(page, tmp_path, read)
    assert n == 2 and "stale" not in new
    assert new.startswith("# Title\n\nHand-written 42.0.\n") and "\nBetween.\n" in new
    assert "| alpha | m_alpha | 100 | 90.0 | 25.0 | 1.2 @8/255 |" in new
    assert "Source: `alpha/s/m/run_1.json`" in new
    again, _ = update_generated_blocks(new, tmp_path, read)
    assert again == new  # idempotent: a second run changes nothing

    changed = copy.deepcopy(doc)
    changed["attacks"][0]["metrics"]["robust_accuracy"] = _metric(0.5)
    path.write_text(json.dumps(changed))
    assert "| 50.0 |" in update_generated_blocks(new, tmp_path, read)[0]

    with pytest.raises(ResultsError, match="unknown bench:results block kind 'bogus'"):
        update_generated_blocks(
            "<!-- bench:results bogus alpha/*/*/*.json -->\n<!-- /bench:results -->", tmp_path, read
        )
    with pytest.raises(ResultsError, match=r"no results file matches .nothing/\*.json."):
        update_generated_blocks(
            "<!-- bench:results summary nothing/*.json -->\n<!-- /bench:results -->", tmp_path, read
        )
