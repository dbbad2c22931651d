"""The typed view of a results document and the pandas table of runs, on real published
results; importing the results and leaderboard packages loads no torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import benchmark.results as br
from benchmark.results import RunView
from benchmark.results.dataframe import COLUMNS, read_runs, to_csv
from benchmark.results.naming import ThreatModel

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "leaderboard" / "results"
MEDIAN = "pneumoniamnist/medrdf/resnet18_pneumoniamnist_28px_s0__median_filter"
BARE = "pneumoniamnist/medrdf/resnet18_pneumoniamnist_28px_s0"


def _newest(rel: str) -> Path:
    return sorted((RESULTS / rel).glob("*.json"))[-1]


def _view(rel: str) -> RunView:
    path = _newest(rel)
    return RunView(br.read_result(path), path.relative_to(RESULTS).as_posix())


def test_run_view_reads_a_defended_run():
    run = _view(MEDIAN)
    doc = run.doc
    assert (run.dataset, run.model_id, run.arch) == (
        "pneumoniamnist",
        "resnet18_pneumoniamnist_28px_s0",
        "resnet18",
    )
    assert run.defended and run.defense == "median_filter" and run.suite == "medrdf"
    assert run.run_id == doc["run_id"] and run.created_at == doc["created_at"]
    assert run.n == doc["data"]["n"] and run.path.startswith(MEDIAN + "/")
    assert run.clean_accuracy.value == doc["metrics"]["clean"]["accuracy"]["value"]
    assert run.clean_accuracy.ci95 == tuple(doc["metrics"]["clean"]["accuracy"]["ci95"])
    assert run.bare_clean is doc["metrics"]["undefended_clean"]
    assert len(run.attacks) == len(doc["attacks"])
    assert {a.threat_model for a in run.attacks} <= set(ThreatModel)
    if "adaptive" in doc.get("worst_case_by_threat_model", {}):
        assert run.strongest_threat_model() is ThreatModel.ADAPTIVE
    a, raw = run.attacks[0], doc["attacks"][0]
    assert (a.cell_id, a.attack, a.eps, a.eps_label, a.norm) == (
        raw["cell_id"],
        raw["attack"],
        raw["eps"],
        raw["eps_label"],
        raw["norm"],
    )
    assert a.threat_model.value == raw["threat_model"]
    assert a.robust_accuracy.value == raw["metrics"]["robust_accuracy"]["value"]
    assert a.label.startswith(a.name) and a.name == f"{a.attack}-{a.steps}"
    assert all(not c.sanity_only for c in run.attack_cells())
    by = doc["worst_case_by_threat_model"]
    default = "any" if "any" in by else run.strongest_threat_model().value
    assert [w.raw for w in run.worst_cases()] == by[default]
    assert [w.raw for w in run.worst_case] == doc["worst_case"]
    assert run.flags == doc.get("flags", [])


def test_images_key_pairs_a_schema_1_whole_split_run_with_a_schema_2_one():
    """Two clean BreastMNIST runs on the whole test split, one from before per-image outcomes
    (schema 1, no data.indices) and one after, scored the same images; a 100-image subset
    did not."""
    old = _view("breastmnist/clean/resnet18_breastmnist_28px_s0")
    new = _view("breastmnist/clean/resnet18_breastmnist_28px_s1")
    assert old.indices is None and new.indices is not None
    assert old.images_key == new.images_key
    subset = _view("breastmnist/xu2021_table5/resnet18_breastmnist_28px_s0")
    assert subset.n == 100 and subset.images_key not in (None, old.images_key)
    doc = json.loads(json.dumps(old.doc))
    doc["data"]["n"] = 10  # a subset whose indices the file does not give
    assert RunView(doc, "x.json").images_key is None


def test_transfer_cells_are_labelled_by_the_attack_they_craft_with():
    """The MDDA Sec. 4.3 run's four transfer cells differ only in their base attack: each label
    names it, so no two columns of a table share a heading."""
    run = _view("breastmnist/mdda_transfer/mobilenet_v2_breastmnist_28px_s0")
    labels = [a.label for a in run.attack_cells() if a.attack == "transfer"]
    assert labels == [
        "transfer bim-100 6/255",
        "transfer pgd-100 6/255",
        "transfer difgsm-100 6/255",
        "transfer autoattack-100 6/255",
    ]


def test_run_view_of_an_undefended_run_is_white_box():
    run = _view(BARE)
    assert not run.defended and run.defense is None and run.defense_label == "none"
    assert run.strongest_threat_model() is ThreatModel.WHITE_BOX
    assert run.worst_cases_by_threat_model is None
    assert [w.raw for w in run.worst_cases()] == run.doc["worst_case"]
    assert run.cost == {} and run.mfp is None


@pytest.fixture
def two_runs(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    for rel in (MEDIAN, BARE):
        src = _newest(rel)
        (root / rel).mkdir(parents=True)
        shutil.copyfile(src, root / rel / src.name)
    return root


def test_frame_has_a_clean_row_and_a_row_per_attack_block(two_runs: Path):
    df = br.frame(two_runs)
    assert tuple(df.columns) == COLUMNS
    docs = [json.loads(p.read_text()) for p in sorted(two_runs.rglob("*.json"))]
    assert len(df) == sum(1 + len(d.get("attacks", [])) for d in docs)
    assert list(df["path"]) == sorted(df["path"])  # runs ordered by path
    clean = df[df["kind"] == "clean"]
    assert list(clean["cell_id"]) == ["clean", "clean"] and clean["robust_accuracy"].isna().all()
    for doc in docs:
        rows = df[df["run_id"] == doc["run_id"]]
        acc = doc["metrics"]["clean"]["accuracy"]
        assert rows.iloc[0]["kind"] == "clean" and rows.iloc[0]["accuracy"] == acc["value"]
        assert rows.iloc[0]["accuracy_ci95_low"] == acc["ci95"][0]
        assert rows.iloc[0]["accuracy_ci95_high"] == acc["ci95"][1]
        attacks = rows.iloc[1:]
        assert list(attacks["cell_id"]) == [a["cell_id"] for a in doc["attacks"]]
        first = doc["attacks"][0]
        ra = first["metrics"]["robust_accuracy"]
        assert attacks.iloc[0]["robust_accuracy"] == ra["value"]
        assert attacks.iloc[0]["robust_accuracy_ci95_low"] == ra["ci95"][0]
        assert attacks.iloc[0]["threat_model"] == first.get("threat_model", "white-box")
        assert attacks.iloc[0]["eps_label"] == first["eps_label"]
    bare = df[(df["kind"] == "clean") & (df["defense_label"] == "none")]
    assert bare["defense"].isna().all()


def test_frame_is_deterministic(two_runs: Path):
    paths = sorted(two_runs.rglob("*.json"))
    a = br.frame(two_runs)
    b = br.frame(list(reversed(read_runs(two_runs))))
    assert a.equals(b) and to_csv(a) == to_csv(b)
    c = br.frame(paths)  # files by name: same rows, the path column as given
    assert len(c) == len(a) and list(c["run_id"]) == list(a["run_id"])


def test_importing_results_and_the_leaderboard_loads_no_torch():
    light = "benchmark.leaderboard, benchmark.leaderboard.build, benchmark.results"
    code = (
        f"import sys, {light}, benchmark.results.provenance, benchmark.reports; "
        "print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]", out.stdout
