"""Generated Markdown: the summary table and the in-place regeneration of marked blocks."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from benchmark.errors import ResultsError
from benchmark.reports import latest_results, render_summary_table, update_generated_blocks


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
            {
                "norm": "linf",
                "eps": 8 / 255,
                "eps_label": "8/255",
                "robust_accuracy": _metric(0.012),
                "attacks": [],
            }
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


VOTES = {
    "abstain_rate": 0.25,
    "rm_median": 1.5,
    "c_and_r": 0.5,
    "c_not_r": 0.05,
    "not_c_and_r": 0.2,
    "not_c_not_r": 0.25,
}


def _defended(acc_obl: float, acc_ada: float, *, params: dict[str, Any]) -> dict[str, Any]:
    doc = _doc("pneumoniamnist", [])
    obl = _block("pgd", "pgd_eps8-255_steps20", acc_obl, steps=20)
    ada = {**copy.deepcopy(obl), "threat_model": "adaptive"}
    ada["metrics"]["robust_accuracy"] = _metric(acc_ada)
    bb = _block("square", "square_eps8-255", 0.5, steps=None)
    doc["attacks"] = [
        {**obl, "threat_model": "oblivious"},
        ada,
        {**bb, "threat_model": "black_box"},
    ]
    doc["config"].update(defense="medrdf", defense_params=params)
    doc["metrics"]["undefended_clean"] = {"accuracy": _metric(0.95)}
    doc["metrics"]["clean_votes"] = {**VOTES, "abstain_rate": 0.125}
    wc = {"norm": "linf", "eps": 8 / 255, "eps_label": "8/255", "attacks": []}
    doc["worst_case_by_threat_model"] = {
        "oblivious": [{**wc, "robust_accuracy": _metric(acc_obl)}],
        "adaptive": [{**wc, "robust_accuracy": _metric(min(acc_ada, 0.5))}],
    }
    doc["defense"] = {
        "cost": {"defended_ms_per_image": 70.0, "base_ms_per_image": 7.0, "overhead": 10.0}
    }
    doc["flags"] = ["robustness from obfuscation"]
    return doc


def test_defense_matrix_puts_adaptive_beside_oblivious():
    from benchmark.reports import render_defense_matrix

    undefended = _doc("pneumoniamnist", [_block("pgd", "pgd_eps8-255_steps20", 0.0, steps=20)])
    defended = _defended(0.8, 0.3, params={"n": 100})
    table = render_defense_matrix([("a.json", undefended), ("b.json", defended)])
    head, _, none_row, row = table.strip().splitlines()
    assert head.split(" | ")[4:6] == ["pgd-20 8/255", "square 8/255"]
    assert none_row.split(" | ")[1:5] == ["none", "100", "90.0", "0.0"]
    cells = row.split(" | ")
    assert cells[1] == "medrdf (n=100)" and cells[3] == "90.0 (abstain 12.5)"
    assert cells[4] == "80.0 / 30.0"  # oblivious / adaptive
    assert cells[5] == "- / 50.0"  # square only ran on the defended pipeline
    assert cells[6].startswith("80.0 / 30.0 @8/255")


def test_defense_matrix_names_the_seed_where_two_rows_would_read_alike():
    """Two seeds of one recipe under one defense get the architecture and seed in their
    defense column; a label with one model keeps its plain form."""
    import copy

    from benchmark.reports import render_defense_matrix

    s0 = _defended(0.8, 0.3, params={"n": 100})
    s0["config"].update(seed=0, arch="resnet18", model_id="resnet18_p_28px_s0")
    s1 = copy.deepcopy(s0)
    s1["config"].update(seed=1, model_id="resnet18_p_28px_s1")
    other = _defended(0.7, 0.2, params={"n": 50})
    table = render_defense_matrix([("a.json", s0), ("b.json", s1), ("c.json", other)])
    labels = [r.split(" | ")[1] for r in table.strip().splitlines()[2:]]
    assert labels == [
        "medrdf (n=100) (resnet18, seed 0)",
        "medrdf (n=100) (resnet18, seed 1)",
        "medrdf (n=50)",
    ]


def test_defense_summary_reports_both_threat_models_cost_and_flags():
    from benchmark.reports import render_defense_summary

    table = render_defense_summary([("b.json", _defended(0.8, 0.3, params={}))])
    head, _, row = table.strip().splitlines()
    assert "worst case 8/255 obl. / adapt. / all" in head
    cells = [c.strip() for c in row.strip("| ").split(" | ")]
    assert cells[1:6] == ["medrdf", "100", "95.0", "90.0 (abstain 12.5)", "80.0 / 30.0 / -"]
    assert cells[6] == "70.0 (x10.0)" and cells[7] == "robustness from obfuscation"


def test_defense_full_section_shows_threat_models_and_votes():
    from benchmark.reports import render_defense_tables

    doc = _defended(0.8, 0.3, params={"n": 50})
    doc["attacks"][1]["votes"] = VOTES
    text = render_defense_tables(doc, "b.json")
    rows = [r for r in text.splitlines() if r.startswith("| pgd-20")]
    assert [r.split(" | ")[2] for r in rows] == ["oblivious", "adaptive"]
    assert "abstain 25.0, RM median 1.50, C&R 50.0 / C&!R 5.0 / !C&R 20.0 / !C&!R 25.0" in rows[1]
    assert "Worst case adaptive, linf eps 8/255: 30.0" in text
    assert "| square 8/255 | 8/255 | black_box |" in text


def test_balanced_matrix_exposes_majority_class_answers():
    from benchmark.reports import render_defense_matrix

    doc = _defended(0.8, 0.3, params={})
    for a in doc["attacks"]:
        a["metrics"]["per_class_accuracy"] = {"balanced_accuracy": 0.5}
    doc["metrics"]["clean"]["per_class_accuracy"] = {"balanced_accuracy": 0.75}
    head, _, row = render_defense_matrix([("b.json", doc)], balanced=True).strip().splitlines()
    assert "worst case" not in head
    assert row.split(" | ")[3:5] == ["75.0", "50.0 / 50.0"]


def test_table5_rows_follow_the_paper_and_take_the_white_box_pgd4_cell():
    from benchmark.reports import render_table5

    def pgd4(acc: float, threat_model: str) -> dict[str, Any]:
        block = _block("pgd", "pgd_eps4-255_steps4", acc, steps=4)
        block.update(eps=4 / 255, eps_label="4/255", threat_model=threat_model)
        return block

    bare = _doc("pneumoniamnist", [pgd4(0.05, "white-box")])
    robust = _doc("pneumoniamnist", [pgd4(0.9, "oblivious"), pgd4(0.61, "adaptive")])
    robust["config"].update(defense="mpadvt")
    robust["metrics"]["clean"]["accuracy"] = _metric(0.8)
    corr = _doc("pneumoniamnist", [])
    corr["config"].update(defense="mpadvt")
    corr["corruptions"] = {"sequences": {"mfp": 0.031}}
    other = _doc("breastmnist", [pgd4(0.0, "white-box")])
    lines = (
        render_table5([("a", bare), ("b", robust), ("c", corr), ("d", other)]).strip().splitlines()
    )
    assert lines[0] == "| method | pneumoniamnist | breastmnist |"
    names = [line.split(" | ")[0].lstrip("| ") for line in lines[2:]]
    assert names == ["None", "Attack", "Standard (PGD-AT)", "MPAdvT", "MAAdvT", "TRADES", "MART"]
    bare_corr = _doc("pneumoniamnist", [])
    bare_corr["corruptions"] = {"sequences": {"mfp": 0.25}}
    lines = (
        render_table5([("a", bare), ("a2", bare_corr), ("b", robust), ("c", corr), ("d", other)])
        .strip()
        .splitlines()
    )
    assert lines[2] == "| None | 90.0; mFP 25.0 | 90.0 |"
    assert lines[3] == "| Attack | 5.0 | 0.0 |"
    # the robust model under the white-box (adaptive) attack, not the transferred one
    assert lines[5] == "| MPAdvT | 61.0 (80.0); mFP 3.1 | - |"
    assert lines[4] == "| Standard (PGD-AT) | - | - |"
    twin = copy.deepcopy(robust)
    twin["config"]["defense_params"] = {"steps": 3}
    with pytest.raises(ResultsError, match="second configuration of mpadvt"):
        render_table5([("b", robust), ("e", twin)])


def test_every_renderer_kind_is_recognised_as_a_block():
    # "table5" was silently left alone by a letters-only pattern: the page kept its stale body.
    from benchmark.reports import REPORTS
    from benchmark.reports.blocks import BLOCK

    for kind in REPORTS.list():
        page = f"<!-- bench:results {kind} a/*.json -->\nold\n<!-- /bench:results -->\n"
        match = BLOCK.search(page)
        assert match is not None and match["kind"] == kind and match["body"] == "old\n"


def test_every_block_kind_used_in_the_docs_is_registered():
    from benchmark.cli.report import computed_blocks
    from benchmark.reports import REPORTS
    from benchmark.reports.blocks import block_kinds

    root = Path(__file__).resolve().parents[2]
    used = {k for page in (root / "docs").glob("*.md") for k in block_kinds(page.read_text())}
    assert used and used <= set(REPORTS.list()) | set(computed_blocks())
    assert not set(REPORTS.list()) & set(computed_blocks())  # one meaning per kind
    for kind in REPORTS.list():
        assert REPORTS.get(kind).meta.description


def test_terminal_report_of_a_real_evaluation():
    from benchmark.reports.terminal import corruption_lines, render_evaluation
    from benchmark.results import read_result

    root = Path(__file__).resolve().parents[2] / "leaderboard" / "results"
    path = sorted(
        (root / "pneumoniamnist/medrdf/resnet18_pneumoniamnist_28px_s0__median_filter").glob(
            "*.json"
        )
    )[-1]
    doc = read_result(path)
    lines = render_evaluation(doc, path).splitlines()
    assert (
        lines[0] == f"resnet18_pneumoniamnist_28px_s0 on pneumoniamnist/test (n={doc['data']['n']})"
    )
    assert lines[1].startswith("  accuracy  0.") and "95% CI [" in lines[1]
    assert lines[-1] == f"wrote {path}"
    rows = [line for line in lines if line.startswith("    ") and "[oblivious]" in line]
    assert len(rows) == sum(a["threat_model"] == "oblivious" for a in doc["attacks"])
    assert any(line.startswith("  defense median_filter (preprocessing") for line in lines)
    assert corruption_lines(None) == []


def test_every_sanity_check_has_a_meaning_and_a_next_step():
    import re

    from benchmark.evaluation import sanity
    from benchmark.reports.terminal import SANITY_ADVICE

    source = Path(sanity.__file__).read_text()
    names = set(re.findall(r'_check\(\s*"([a-z_]+)"', source))
    names |= set(re.findall(r'return _check\("([a-z_]+)"', source))
    assert {"eps_monotonicity", "noise_vs_attack"} <= names
    assert names | {"large_eps_pgd", "oblivious_vs_adaptive"} <= set(SANITY_ADVICE)
    assert all(meaning and step for meaning, step in SANITY_ADVICE.values())


def test_a_large_eps_failure_of_pgd10_alone_points_at_apgd_first():
    """A failed large-eps check that ran PGD-10 only (no protocol, or version 1) may be the
    attack's weakness, so the advice says to rerun with APGD-CE-100 before suspecting masking;
    a failure that APGD-CE-100 was part of gets the masking advice alone."""
    from benchmark.evaluation.sanity import large_eps
    from benchmark.reports.terminal import SANITY_ADVICE, _advice

    masking_meaning, masking_step = SANITY_ADVICE["large_eps_pgd"]
    pgd_only = large_eps(0.3, defended=True)
    meaning, step = _advice(pgd_only)
    assert "PGD-10 is too weak" in meaning and meaning.startswith(masking_meaning)
    assert step.startswith("rerun at 64/255 with a step-size-free attack (--attacks apgd_ce")
    assert step.endswith(masking_step)
    both = large_eps(0.3, defended=True, attack="PGD-10 and APGD-CE-100")
    assert both["status"] == "fail" and _advice(both) == (masking_meaning, masking_step)
