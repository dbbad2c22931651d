"""The generated blocks that state the boards in the docs: ``protocolruns`` (docs/protocol.md,
one row per published L-inf protocol run) and ``boards`` (docs/leaderboard.md, each board's
rows scored under its protocol). Their figures, ranks and statuses are the boards' own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmark.errors import ResultsError
from benchmark.leaderboard.markdown_boards import protocol_boards_markdown, protocol_run_statuses
from benchmark.leaderboard.show import show_board
from benchmark.reports.blocks import latest_results, read_any
from benchmark.reports.protocol_runs import render_protocol_runs

ROOT = Path(__file__).resolve().parents[2] / "leaderboard" / "results"


@pytest.fixture(scope="module")
def statuses() -> dict[str, str]:
    """What the boards made of every published protocol run (built once: it reads them all)."""
    return protocol_run_statuses(ROOT)


@pytest.fixture(scope="module")
def ham_root(tmp_path_factory) -> Path:
    """The published results of HAM10000 alone (its boards are built from its entries only,
    so they are the published boards, read from fewer files)."""
    root = tmp_path_factory.mktemp("results")
    shutil.copytree(ROOT / "ham10000_220", root / "ham10000_220")
    return root


def _docs(*patterns: str) -> list[tuple[str, dict]]:
    paths = [p for g in patterns for p in latest_results(g, ROOT)]
    return [(p.relative_to(ROOT).as_posix(), read_any(p)) for p in paths]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip("|").split("|")]


def _interval(value: float, ci: list[float]) -> str:
    return f"{100 * value:.1f} [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def test_each_run_row_carries_the_boards_figures_status_checks_and_cost(statuses, ham_root):
    docs = _docs("ham10000_220/mrb_linf_v2/*/*.json", "breastmnist/mrb_corruption_v1/*/*.json")
    text = render_protocol_runs(docs, statuses)
    lines = text.strip().split("\n")
    head, rows = _cells(lines[0]), [_cells(line) for line in lines[2:]]
    # The corruption-protocol runs are left out: one row per HAM10000 L-inf protocol run.
    assert len(rows) == len([d for d in docs if d[0].startswith("ham10000_220/")]) == 3
    col = {name: i for i, name in enumerate(head)}
    for budget, board in (("2/255", "linf-2-255"), ("8/255", "linf-8-255")):
        shown = show_board(ham_root, "ham10000_220", board)
        by_source = {r["source"]: r for r in shown["rows"] if r.get("source")}
        for row in rows:
            want = by_source[row[col["run (created)"]].split("`")[1]]
            cell = row[col[f"balanced worst case % at {budget} [95 % CI]"]]
            assert cell == _interval(want["value"], want["ci95"])
            assert row[col["n"]] == str(want["n"]) == "135"
            assert row[col["on the boards"]] == want["status"] == "ranked"
    for row in rows:
        assert row[col["protocol"]] == "mrb_linf_v2 2.0"
        assert row[col["sanity checks (as recorded)"]] == "pass"
        assert row[col["device"]] == "cpu (1 thread)"
        # At 8/255 no image of these models stays robust: nothing to check, said so.
        assert row[col["convergence: broken of still robust"]].endswith(
            "; no robust image at 8/255"
        )
        parts = row[col["minutes: AutoAttack 2/255 / 8/255 / sanity / convergence"]].split(" / ")
        assert len(parts) == 4 and all(float(p) > 0 for p in parts)  # all computed, none cached


def test_cached_cells_superseded_runs_and_flagged_checks_are_shown_as_such(statuses):
    docs = _docs("breastmnist/mrb_linf_v1/*/*.json", "breastmnist/mrb_linf_v2/*/*.json")
    text = render_protocol_runs(docs, statuses)
    rows = {line.split("`")[-2]: line for line in text.split("\n") if line.count("`") >= 2}
    v1 = [r for s, r in rows.items() if "/mrb_linf_v1/" in s and "pgd_at__steps=7" in s]
    # Version 1's PGD-10 sanity check flagged the 8/255 PGD-AT model (why version 2 exists);
    # its entry's row on the boards is the version-2 run.
    assert len(v1) == 1 and "**flagged: large_eps_pgd**" in v1[0]
    assert "| not a row: its entry has a newer run |" in v1[0]
    v2 = [r for s, r in rows.items() if "/mrb_linf_v2/" in s and "pgd_at__steps=7" in s]
    # Its AutoAttack cells came from the cache; of the sanity cells, only PGD-10 did.
    assert len(v2) == 1 and "| cached / cached / 3 (1 cached) / " in v2[0]
    assert "| ranked | pass |" in v2[0]


def test_the_boards_block_lists_each_boards_protocol_rows_in_its_order(ham_root):
    everything = protocol_boards_markdown(ROOT)
    text = protocol_boards_markdown(ham_root, ["ham10000_220"])
    assert "breastmnist" not in text and text in everything  # only the datasets named
    for board in ("linf-2-255", "linf-8-255", "corruptions"):
        shown = show_board(ham_root, "ham10000_220", board)
        scored = [r for r in shown["rows"] if r["protocol"]]
        title, section = text.split(f"**ham10000_220, {shown['title']}**")[1].split("\n", 1)
        section = section.split("\n\n**")[0]
        listed = [_cells(line) for line in section.split("\n") if line.startswith("| ")][1:]
        assert [(c[0], c[1].strip("`"), c[2], c[3], c[4], c[5]) for c in listed] == [
            (
                r["rank"] or "-",
                r["entry"].split("/", 1)[1],
                _interval(r["value"], r["ci95"]),
                str(r["n"]),
                r["status"],
                r["protocol"],
            )
            for r in scored
        ]
        assert f"rows without a protocol run, not listed: {shown['n_rows'] - len(scored)})" in title
        # An L-inf board says what a constant answer scores (1/7 on HAM10000's seven classes).
        assert ("a constant answer scores 14.3 %" in title) == (board != "corruptions")


def test_the_boards_blocks_refuse_a_root_that_would_drop_entries(tmp_path):
    with pytest.raises(ResultsError, match="unknown dataset"):
        protocol_boards_markdown(ROOT, ["nosuchset"])
    with pytest.raises(ResultsError, match="does not exist"):
        protocol_boards_markdown(tmp_path / "missing")
    with pytest.raises(ResultsError, match="no results file"):
        protocol_run_statuses(tmp_path)
    # One unreadable file among the published ones: an error naming it, not a silent gap.
    root = tmp_path / "results"
    shutil.copytree(ROOT / "ham10000_220" / "mrb_linf_v2", root / "ham10000_220" / "mrb_linf_v2")
    bad = root / "ham10000_220" / "mrb_linf_v2" / "x" / "mrb_linf_v2_20990101t000000z.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps({"schema_version": 2}))
    with pytest.raises(ResultsError, match=r"invalid results file.*mrb_linf_v2/x/"):
        protocol_boards_markdown(root)


def test_the_minutes_say_which_parts_were_cached_resumed_or_of_unknown_cost():
    from benchmark.reports.protocol_runs import _time
    from benchmark.results.view import RunView

    def cell(eps: str, **timing) -> dict:
        return {"eps_label": eps, "timing": {"seconds": 60.0, "cached": False, **timing}}

    doc = {
        "attacks": [
            cell("2/255", resumed_batches=2, resumed_batches_without_cost=1),  # cost unknown
            cell("8/255", resumed_batches=1),  # an interrupted run's batches, their time in
            {**cell("2/255"), "sanity_only": True},
            {**cell("2/255", cached=True), "sanity_only": True},
        ],
        "convergence": {"budgets": [{"seconds": 90.0}]},
    }
    assert _time(RunView(doc), ["2/255", "8/255"]) == "? / 1 (resumed) / 2 (1 cached) / 2"
    doc["attacks"] = [cell("2/255", cached=True)]
    assert _time(RunView(doc), ["2/255", "8/255"]) == "cached / - / - / 2"
