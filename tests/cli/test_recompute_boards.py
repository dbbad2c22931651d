"""``benchmarks/recompute_boards.py``, the independent recomputation of the ranked boards from
the published per-image outcomes: it agrees with ``bench leaderboard show`` on the committed
results, and it reports a disagreement (DIFFERS, non-zero exit) when the board says otherwise."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "recompute_boards.py"
RESULTS = ROOT / "leaderboard" / "results"
SUMMARY = re.compile(
    r"^summary: (\d+) boards with ranked rows checked, (\d+) ranked rows, (\d+) agree, "
    r"(\d+) differ; (\d+) boards without a ranked row skipped$"
)
BOARD_LINE = re.compile(
    r"^  board (\S+ \S+): (\d+) ranked rows checked, (\d+) agree, (\d+) differ$"
)
# Three ranked protocol runs of HAM10000's L-inf boards (published files are never removed).
HAM_RUNS = [
    f"ham10000_220/mrb_linf_v2/resnet18_ham10000_220_128px_{s}/mrb_linf_v2_{t}.json"
    for s, t in (("s2", "20261207t024532z"), ("s0", "20261207t110725z"), ("s1", "20261207t013946z"))
]


@pytest.fixture(scope="module")
def recompute() -> ModuleType:
    """The script as a module (it is not part of the ``benchmark`` package)."""
    spec = importlib.util.spec_from_file_location("recompute_boards", SCRIPT)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["recompute_boards"] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _bench() -> str:
    local = ROOT / ".venv" / "bin" / "bench"
    found = str(local) if local.exists() else shutil.which("bench")
    if not found:
        pytest.skip("no bench executable")
    return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(SCRIPT), "--root", str(RESULTS), "--bench", _bench(), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)


def _check_output(out: subprocess.CompletedProcess[str], min_boards: int) -> None:
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert "DIFFERS" not in out.stdout, out.stdout
    match = SUMMARY.match(lines[-1])
    assert match, lines[-1]
    boards, rows, agree, differ, _ = (int(g) for g in match.groups())
    assert boards >= min_boards and agree == rows and differ == 0, lines[-1]
    per_board = [m for m in map(BOARD_LINE.match, lines) if m]
    assert len(per_board) == boards
    assert sum(int(m.group(2)) >= 1 for m in per_board) >= min_boards


def test_committed_boards_agree():
    """BreastMNIST's three boards (all rank rows): every figure agrees, exit 0."""
    _check_output(_run("--dataset", "breastmnist"), min_boards=3)


@pytest.mark.slow
def test_every_committed_board_agrees():
    """Every dataset and board (about a minute: twelve ``bench leaderboard show`` calls)."""
    _check_output(_run(), min_boards=6)


def test_comparison_reports_differs(recompute):
    row = {"value": 0.5, "n": 156, "rank": "1-3", "ci95": [0.40, 0.60]}
    ours = {"value": 0.5, "n": 156, "rank": "1-3", "ci95": [0.405, 0.595]}
    checks = recompute.compare_row(row, ours)
    assert all(c.ok for c in checks)
    assert recompute.format_row("d b e", checks).startswith("  agree    d b e: key 0.500000")

    wrong = {**row, "value": 0.52, "rank": "1", "ci95": [0.40, 0.62]}
    line = recompute.format_row("d b e", recompute.compare_row(wrong, ours))
    assert line.startswith("  DIFFERS  d b e: ")
    assert "key: board 0.520000 vs recomputed 0.500000" in line
    assert "rank: board 1 vs recomputed 1-3" in line
    assert "95 % CI: board [0.400000, 0.620000] vs recomputed [0.405000, 0.595000]" in line
    assert "n:" not in line  # only the figures that differ

    # The paired tests: an exact p-value must agree to rounding, and every pair be there.
    ours = {"x": (0.01, 0.03, "exact"), "y": (0.2, 0.4, "exact")}
    board = {"p_values_raw": {"x": 0.01, "y": 0.2}, "p_values": {"x": 0.03, "y": 0.4}}
    assert recompute.compare_p_values(board, ours).ok
    moved = {**board, "p_values": {"x": 0.06, "y": 0.4}}  # x no longer significant
    check = recompute.compare_p_values(moved, ours)
    assert not check.ok and "x: board 0.01 / Holm 0.06" in check.board
    assert not recompute.compare_p_values({**board, "p_values_raw": {"x": 0.01}}, ours).ok
    # Where the board drew 400 random flips: within four of its standard errors (about 0.09
    # at p = 0.3) and on the same side of alpha after Holm.
    mc = {"x": (0.30, 0.60, "monte carlo")}
    near = {
        "p_values_raw": {"x": 0.32},
        "p_values": {"x": 0.64},
        "p_methods": {"x": "stratified sign-flip (Monte Carlo, 400 flips)"},
    }
    assert recompute.compare_p_values(near, mc).ok
    assert not recompute.compare_p_values({**near, "p_values_raw": {"x": 0.40}}, mc).ok
    # Ours drew 200000 flips, the board computed it exactly: the tolerance is ours (~0.005).
    exact_board = {**near, "p_methods": {"x": "stratified sign-flip (exact)"}}
    assert not recompute.compare_p_values(exact_board, mc).ok
    close = {**exact_board, "p_values_raw": {"x": 0.302}, "p_values": {"x": 0.604}}
    assert recompute.compare_p_values(close, mc).ok

    # A board interval about 0.83 times as wide as ours (a 90 % one labelled 95 %) is caught
    # even where its bounds sit within the bounds' tolerance.
    wide = {"value": 0.5, "n": 156, "rank": "1", "ci95": [0.44, 0.56]}
    narrow = {**wide, "ci95": [0.448, 0.552]}
    checks = {c.name: c for c in recompute.compare_row(narrow, wide)}
    assert checks["95 % CI"].ok and not checks["CI width, board's over ours"].ok


def test_the_script_is_independent_of_the_package():
    """Nothing from ``benchmark`` is imported: a second implementation, not a second caller."""
    import ast

    tree = ast.parse(SCRIPT.read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert names and not [m for m in names if m.split(".")[0] == "benchmark"], names
    assert {m.split(".")[0] for m in names} <= set(sys.stdlib_module_names) | {"numpy"}


def test_a_defended_run_takes_its_strongest_threat_models_blocks(recompute, tmp_path):
    """A defended run without an 'any' worst case: its key takes the blocks of its strongest
    group (adaptive), not a white-box block on the bare model; a run whose groups the docs do
    not cover is reported unchecked, not guessed."""
    doc = json.loads((RESULTS / HAM_RUNS[0]).read_text())
    n = int(doc["data"]["n"])
    every = recompute.linf_scores(doc, tmp_path / "run.json", 8 / 255)
    assert len(every.blocks) == 2  # undefended: the 2/255 and 8/255 AutoAttack blocks
    doc["worst_case_by_threat_model"] = {"adaptive": {}}
    first, second = doc["attacks"][0], doc["attacks"][1]
    first["threat_model"], second["threat_model"] = "white_box", "adaptive"
    mine = recompute.linf_scores(doc, tmp_path / "run.json", 8 / 255)
    assert mine.blocks == [str(second["cell_id"])]
    clean = recompute.decode_bits(doc["metrics"]["clean"]["outcomes"], n)
    expected = clean & recompute.decode_bits(second["outcomes"], n)
    assert np.array_equal(mine.scores.astype(bool), expected)
    doc["worst_case_by_threat_model"] = {"white_box": {}}
    with pytest.raises(recompute.Unsupported, match="worst cases of threat models"):
        recompute.linf_scores(doc, tmp_path / "run.json", 2 / 255)


def test_tampered_board_fails(recompute, tmp_path, capsys):
    """A board whose key differs from the per-image outcomes by 0.1 pp: one DIFFERS line with
    both values, exit 1. The board is our own recomputation with one value made wrong, printed
    by a stand-in for ``bench``."""
    runs = [recompute.load_scores(RESULTS, s, "linf-2-255") for s in HAM_RUNS]
    ranks, pairs = recompute.rank_ranges(runs)
    rows = []
    for source, run, rank in zip(HAM_RUNS, runs, ranks, strict=True):
        rows.append(
            {"entry": source.split("/")[2], "source": source, "status": "ranked"}
            | recompute.row_figures(run, rank, True)
            | {"p_values": {}, "p_values_raw": {}}
        )
    for pr in pairs:
        for me, other in ((pr.i, pr.j), (pr.j, pr.i)):
            rows[me]["p_values"][rows[other]["entry"]] = pr.adjusted
            rows[me]["p_values_raw"][rows[other]["entry"]] = pr.test.p_value
    honest = rows[1]["value"]
    rows[1]["value"] = honest + 0.001
    board = {"dataset": "ham10000_220", "board": "linf-2-255", "protocol": "p", "rows": rows}
    (tmp_path / "board.json").write_text(json.dumps(board))
    fake = tmp_path / "bench"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        "d, b = sys.argv[3], sys.argv[4]\n"
        "if (d, b) == ('ham10000_220', 'linf-2-255'):\n"
        f"    print(open({str(tmp_path / 'board.json')!r}).read())\n"
        "else:\n"
        "    print(json.dumps({'dataset': d, 'board': b, 'rows': []}))\n"
    )
    fake.chmod(0o755)

    code = recompute.main(
        ["--root", str(RESULTS), "--bench", str(fake), "--dataset", "ham10000_220"]
    )
    out = capsys.readouterr().out
    assert code == 1
    differs = [line for line in out.splitlines() if "DIFFERS" in line]
    assert len(differs) == 1, out
    assert rows[1]["entry"] in differs[0]
    assert f"key: board {honest + 0.001:.6f} vs recomputed {honest:.6f}" in differs[0]
    assert out.splitlines()[-1].startswith("summary: 1 boards with ranked rows checked, 3 ranked")
    assert "2 agree, 1 differ; 2 boards without a ranked row skipped" in out.splitlines()[-1]


def test_sign_flip_is_exact_mcnemar_with_one_class(recompute):
    """With one class the stratified sign-flip test is the exact McNemar test."""
    for b10, b01 in ((4, 0), (10, 3), (30, 12), (7, 7)):
        a = np.array([1] * b10 + [0] * b01 + [1] * 5)
        b = np.array([0] * b10 + [1] * b01 + [1] * 5)
        test = recompute.sign_flip_test(a, b, np.zeros(a.size, dtype=int))
        d = b10 + b01
        tail = sum(math.comb(d, k) for k in range(min(b10, b01) + 1)) / 2**d
        assert test.p_value == pytest.approx(min(1.0, 2 * tail), abs=1e-12)
    assert recompute.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
