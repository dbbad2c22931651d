"""The zoo page's comparison with MedMNIST v2 Table 3, and the package data that carries it."""

from __future__ import annotations

import fnmatch
import subprocess
import tomllib
from pathlib import Path

from benchmark.reports.medmnist_v2 import (
    comparison_rows,
    reading_line,
    reference,
    render_comparison,
)

ROOT = Path(__file__).resolve().parents[2]


def _card(seed: int, acc: float, ci: tuple[float, float], best: int, epochs: int = 30) -> dict:
    return {
        "dataset": "breastmnist",
        "arch": "resnet18",
        "image_size": 28,
        "defense": None,
        "seed": seed,
        "epochs": epochs,
        "best_epoch": best,
        "metrics": {
            "test": {
                "acc": {"value": acc, "ci95": list(ci)},
                "auc": {"value": 0.9, "ci95": [0.85, 0.95]},
            }
        },
    }


def test_reference_rows_name_their_source_and_are_probabilities():
    ref = reference()
    assert "10.1038/s41597-022-01721-8" in ref["source"] and "Table 3" in ref["source"]
    keys = {(r["dataset"], r["arch"], r["size"]) for r in ref["rows"]}
    assert ("retinamnist", "resnet50", 28) in keys and len(keys) == len(ref["rows"])
    assert all(0 < r["acc"] < 1 and 0 < r["auc"] < 1 for r in ref["rows"])


def test_rows_count_intervals_holding_the_paper_value_and_budget_bound_runs():
    # Table 3 has BreastMNIST ResNet-18 (28) ACC 0.863: seed 0's interval holds it, seed 1's not.
    cards = [
        _card(0, 0.85, (0.80, 0.90), best=30),
        _card(1, 0.80, (0.75, 0.85), best=12),
        {**_card(2, 0.5, (0.4, 0.6), best=1), "defense": {"id": "pgd_at"}},  # robust: not counted
    ]
    (row,) = [
        r
        for r in comparison_rows(cards)
        if (r["dataset"], r["arch"]) == ("breastmnist", "resnet18")
    ]
    assert row["n"] == 2 and row["seeds"] == [0, 1]
    assert row["acc_inside"] == 1 and row["auc_inside"] == 2
    assert row["budget_bound"] == 1 and row["epochs"] == [30]
    lines = render_comparison(cards)
    text = "\n".join(lines)
    assert "| breastmnist | resnet18 (28) | 86.3 | 82.5 ± 3.5 | 1/2 |" in text
    assert "| retinamnist | resnet50 (28) | 52.8 | not trained |" in text
    # The reading says where the budget may explain a gap (a run kept its last epoch) ...
    assert (
        "- breastmnist resnet18 (28 px, 2 seeds): differs in ACC (1/2 intervals hold the "
        "paper's value); 1 of 2 runs kept their last epoch (kept epochs 12, 30 of 30), so a "
        "longer budget may explain part of the gap." in lines
    )
    # ... where it cannot (every run peaked earlier), and where the seeds agree with the paper.
    early = [_card(0, 0.80, (0.75, 0.85), best=9), _card(1, 0.81, (0.76, 0.86), best=4)]
    (row,) = [r for r in comparison_rows(early) if r["n"]]
    assert reading_line(row).endswith(
        "the epoch budget does not explain it: every run's validation AUC peaked before its "
        "last epoch (kept epochs 4, 9 of 30)."
    )
    agree = [_card(0, 0.86, (0.80, 0.90), best=9)]
    (row,) = [r for r in comparison_rows(agree) if r["n"]]
    assert reading_line(row) == (
        "breastmnist resnet18 (28 px, 1 seed): agrees with the paper; every checkpoint's "
        "interval holds both values."
    )
    # Not-yet-trained rows have no reading.
    assert not any(x.startswith("- retinamnist resnet50") for x in lines)


def test_every_non_python_file_of_the_package_is_package_data():
    """An installed (non-editable) benchmark needs its templates, schemas and reference tables."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["benchmark"]
    tracked = subprocess.run(
        ["git", "ls-files", "benchmark"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    data = [p.removeprefix("benchmark/") for p in tracked if not p.endswith(".py")]
    assert data, "expected templates and schemas"
    missing = [p for p in data if not any(fnmatch.fnmatch(p, pat) for pat in patterns)]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"
