"""The ``protocolruns`` block of docs/protocol.md: one row per published L-inf protocol run,
whose balanced worst case and interval are the boards' own figures for that run."""

from __future__ import annotations

from pathlib import Path

from benchmark.leaderboard.show import show_board
from benchmark.reports.blocks import latest_results, read_any
from benchmark.reports.protocol_runs import render_protocol_runs

ROOT = Path(__file__).resolve().parents[2] / "leaderboard" / "results"


def _docs(*patterns: str) -> list[tuple[str, dict]]:
    paths = [p for g in patterns for p in latest_results(g, ROOT)]
    return [(p.relative_to(ROOT).as_posix(), read_any(p)) for p in paths]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip("|").split("|")]


def test_each_row_carries_the_boards_figures_and_the_runs_checks_and_cost():
    docs = _docs("ham10000_220/mrb_linf_v2/*/*.json", "breastmnist/mrb_corruption_v1/*/*.json")
    text = render_protocol_runs(docs)
    lines = text.strip().split("\n")
    head, rows = _cells(lines[0]), [_cells(line) for line in lines[2:]]
    # The corruption-protocol runs are left out: one row per HAM10000 L-inf protocol run.
    assert len(rows) == len([d for d in docs if d[0].startswith("ham10000_220/")]) == 3
    col = {name: i for i, name in enumerate(head)}
    for budget, board in (("2/255", "linf-2-255"), ("8/255", "linf-8-255")):
        shown = show_board(ROOT, "ham10000_220", board)
        by_source = {r["source"]: r for r in shown["rows"] if r.get("source")}
        for row in rows:
            source = row[col["run (created)"]].split("`")[1]
            want = by_source[source]
            low, high = want["ci95"]
            cell = row[col[f"balanced worst case % at {budget} [95 % CI]"]]
            assert cell == f"{100 * want['value']:.1f} [{100 * low:.1f}, {100 * high:.1f}]"
            assert row[col["n"]] == str(want["n"]) == "135"
    for row in rows:
        assert row[col["protocol"]] == "mrb_linf_v2 2.0" and row[col["sanity checks"]] == "pass"
        assert row[col["device"]] == "cpu (1 thread)"
        assert row[col["convergence: broken of still robust"]].startswith("0 of ")
        # AutoAttack 2/255 / 8/255 / sanity / convergence, in minutes, none cached
        parts = row[col["minutes: AutoAttack 2/255 / 8/255 / sanity / convergence"]].split(" / ")
        assert len(parts) == 4 and all(float(p) > 0 for p in parts)


def test_cached_cells_and_flagged_checks_are_shown_as_such():
    docs = _docs("breastmnist/mrb_linf_v1/*/*.json", "breastmnist/mrb_linf_v2/*/*.json")
    text = render_protocol_runs(docs)
    rows = {line.split("`")[-2]: line for line in text.split("\n") if line.count("`") >= 2}
    flagged = [r for s, r in rows.items() if "/mrb_linf_v1/" in s and "pgd_at__steps=7" in s]
    # Version 1's PGD-10 sanity check flagged the 8/255 PGD-AT model (why version 2 exists).
    assert len(flagged) == 1 and "**flagged: large_eps_pgd**" in flagged[0]
    rerun = [r for s, r in rows.items() if "/mrb_linf_v2/" in s and "pgd_at__steps=7" in s]
    assert len(rerun) == 1 and "| cached / cached / " in rerun[0] and "| pass |" in rerun[0]


def test_the_boards_block_lists_each_boards_protocol_rows_in_its_order():
    import pytest

    from benchmark.errors import ResultsError
    from benchmark.leaderboard.show import protocol_boards_markdown

    text = protocol_boards_markdown(ROOT, ["ham10000_220"])
    assert "breastmnist" not in text  # only the datasets named
    for board in ("linf-2-255", "linf-8-255", "corruptions"):
        shown = show_board(ROOT, "ham10000_220", board)
        scored = [r for r in shown["rows"] if r["protocol"]]
        section = text.split(f"**ham10000_220, {shown['title']}**")[1].split("\n\n**")[0]
        listed = [_cells(line) for line in section.split("\n") if line.startswith("| ")][1:]
        assert [(c[0], c[1].strip("`")) for c in listed] == [
            (r["rank"] or "-", r["entry"].split("/", 1)[1]) for r in scored
        ]
        assert f"exploratory rows not listed: {shown['n_rows'] - len(scored)})" in section
    with pytest.raises(ResultsError, match="unknown dataset"):
        protocol_boards_markdown(ROOT, ["nosuchset"])
