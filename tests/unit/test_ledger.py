"""The results ledger: publishing appends a hash-chained line per file, and the build refuses a
published file that changed, went missing or was never published, and a ledger edited by hand.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.errors import LedgerError
from benchmark.leaderboard import build_site
from benchmark.leaderboard.ledger import (
    GENESIS,
    LEDGER,
    head,
    init_ledger,
    read_ledger,
    verify_ledger,
)
from benchmark.leaderboard.publish import add_result
from benchmark.results.naming import result_path
from benchmark.results.schema import read_result

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "leaderboard" / "results"
FOLDERS = [
    "pneumoniamnist/medrdf/resnet18_pneumoniamnist_28px_s0",
    "pneumoniamnist/quick/resnet18_pneumoniamnist_28px_s0",
    "pneumoniamnist/defense/resnet18_pneumoniamnist_28px_s0",
]
runner = CliRunner()


def _newest(folder: str) -> Path:
    return sorted((RESULTS / folder).glob("*.json"))[-1]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _build(root: Path, out: Path):
    return runner.invoke(app, ["leaderboard", "build", "--root", str(root), "--out", str(out)])


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Two real runs published through ``add_result`` into a fresh folder."""
    root = tmp_path / "results"
    for folder in FOLDERS[:2]:
        assert add_result(_newest(folder), root, exploratory=True)[1]
    return root


def _rel(root: Path, n: int) -> str:
    return read_ledger(root)[n].path


def test_publishing_appends_a_chained_line_per_file(root):
    lines = read_ledger(root)
    assert [ln.seq for ln in lines] == [1, 2]
    assert lines[0].prev == GENESIS and lines[1].prev == lines[0].digest
    for line, folder in zip(lines, FOLDERS, strict=False):
        src = _newest(folder)
        assert line.path == f"{folder}/{src.name}"
        assert line.sha256 == _sha(src) == _sha(root / line.path)
        assert line.added_at == read_result(src)["created_at"]
    text = (root / LEDGER).read_text()
    assert text == "".join(f"{ln.text}\n" for ln in lines)
    assert head(lines) == hashlib.sha256(text.splitlines()[-1].encode()).hexdigest()
    assert verify_ledger(root) == []
    # publishing the identical file again adds nothing
    assert add_result(_newest(FOLDERS[0]), root, exploratory=True)[1] is False
    assert (root / LEDGER).read_text() == text


def test_a_file_edited_after_publication_is_refused_by_name(root, tmp_path):
    rel = _rel(root, 0)
    before = _sha(root / rel)
    doc = json.loads((root / rel).read_text())
    doc["metrics"]["clean"]["accuracy"]["value"] = 0.99
    (root / rel).write_text(json.dumps(doc, indent=2))
    after = _sha(root / rel)
    line = (
        f"{root / rel} changed after publication (sha256 {before[:12]} in the ledger, "
        f"{after[:12]} now); published files are immutable: restore it from git, and to change "
        "a result re-run the evaluation and publish the new run"
    )
    with pytest.raises(LedgerError) as err:
        build_site(root, tmp_path / "site")
    assert err.value.problems == [line]
    result = _build(root, tmp_path / "site")
    assert result.exit_code == 1 and result.stderr == f"error: {line}\n"
    assert not (tmp_path / "site").exists()  # nothing written
    # nor can the edited file be published over its ledger line
    with pytest.raises(LedgerError, match="changed after publication"):
        add_result(root / rel, root, exploratory=True)


def test_a_deleted_file_and_an_unlisted_file_are_refused(root, tmp_path):
    rel = _rel(root, 1)
    (root / rel).unlink()
    src = _newest(FOLDERS[2])
    stray = result_path(root, read_result(src))
    stray.parent.mkdir(parents=True)
    shutil.copyfile(src, stray)  # copied in by hand, not published
    assert verify_ledger(root) == [
        f"{stray} is not in the ledger (not published with `bench leaderboard add`): publish "
        f"it with `bench leaderboard add {stray}` or remove it",
        f"{root / rel} was published (ledger line 2) but is missing: published files are never "
        "removed; restore it from git",
    ]
    result = _build(root, tmp_path / "site")
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 2
    # what the lines say to do works: publish the stray in place, restore the deleted file
    assert add_result(stray, root, exploratory=True) == (stray, True)
    with pytest.raises(LedgerError, match="but is missing"):
        add_result(_newest(FOLDERS[1]), root, exploratory=True)
    shutil.copyfile(_newest(FOLDERS[1]), root / rel)
    assert verify_ledger(root) == []
    assert [ln.path for ln in read_ledger(root)][2] == stray.relative_to(root).as_posix()


def test_an_edited_ledger_line_breaks_the_chain(root, tmp_path):
    ledger = root / LEDGER
    lines = ledger.read_text().splitlines()
    first = json.loads(lines[0])
    first["added_at"] = "2020-01-01T00:00:00Z"  # canonical, well-formed, but not what was written
    lines[0] = json.dumps(first, sort_keys=True, separators=(",", ":"))
    ledger.write_text("\n".join(lines) + "\n")
    problems = verify_ledger(root)
    assert len(problems) == 1 and problems[0].startswith(
        f"{ledger} line 2 does not follow line 1 (prev "
    )
    assert "the ledger was edited; restore it from git" in problems[0]
    result = _build(root, tmp_path / "site")
    assert result.exit_code == 1 and "line 2 does not follow line 1" in result.stderr
    # a damaged ledger takes no new line
    with pytest.raises(LedgerError, match="does not follow"):
        add_result(_newest(FOLDERS[2]), root, exploratory=True)


def test_rewriting_a_file_and_its_line_breaks_the_chain(root):
    rel = _rel(root, 0)
    (root / rel).write_text((root / rel).read_text() + " ")
    lines = (root / LEDGER).read_text().splitlines()
    first = json.loads(lines[0])
    first["sha256"] = _sha(root / rel)
    lines[0] = json.dumps(first, sort_keys=True, separators=(",", ":"))
    (root / LEDGER).write_text("\n".join(lines) + "\n")
    assert [p.split(" (")[0] for p in verify_ledger(root)] == [
        f"{root / LEDGER} line 2 does not follow line 1"
    ]


def test_init_writes_a_verifiable_ledger_for_an_existing_folder(tmp_path):
    root = tmp_path / "results"
    for folder in FOLDERS:
        src = _newest(folder)
        (root / folder).mkdir(parents=True)
        shutil.copyfile(src, root / folder / src.name)
    assert verify_ledger(root) == [
        f"{root / LEDGER} does not exist: run `bench leaderboard ledger --init --root {root}` once"
    ]
    with pytest.raises(LedgerError, match=r"holds published results but no LEDGER\.jsonl"):
        add_result(_newest(FOLDERS[0]), root, exploratory=True)
    result = runner.invoke(app, ["leaderboard", "ledger", "--init", "--root", str(root)])
    assert result.exit_code == 0, result.output
    lines = read_ledger(root)
    assert result.stdout == f"wrote {root}/LEDGER.jsonl: 3 files, head {head(lines)}\n"
    assert [ln.path for ln in lines] == sorted(f"{f}/{_newest(f).name}" for f in FOLDERS)
    assert verify_ledger(root) == []
    result = runner.invoke(app, ["leaderboard", "ledger", "--root", str(root)])
    assert result.exit_code == 0 and f"3 files as published, head {head(lines)}" in result.stdout
    with pytest.raises(LedgerError, match="append-only"):
        init_ledger(root)
    # the same files give the same ledger anywhere
    (root / LEDGER).rename(tmp_path / "first.jsonl")
    init_ledger(root)
    assert (root / LEDGER).read_bytes() == (tmp_path / "first.jsonl").read_bytes()


def test_the_site_shows_the_hashes_and_ships_the_ledger(root, tmp_path):
    build_site(root, tmp_path / "a")
    build_site(root, tmp_path / "b")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*"))
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*"))
    for rel in files:
        if (tmp_path / "a" / rel).is_file():
            assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    site = tmp_path / "a"
    assert (site / "raw" / LEDGER).read_bytes() == (root / LEDGER).read_bytes()
    lines = read_ledger(root)
    index = (site / "index.html").read_text()
    assert f'href="raw/{LEDGER}"' in index and head(lines) in index
    entries = "".join(p.read_text() for p in site.glob("entry-*.html"))
    for line in lines:
        assert f"<code>{line.sha256}</code> (ledger line {line.seq})" in entries
    assert f"head <code>{head(lines)}</code>" in entries


def test_a_folder_without_a_ledger_builds_with_a_note(tmp_path):
    root = tmp_path / "results"
    src = _newest(FOLDERS[0])
    (root / FOLDERS[0]).mkdir(parents=True)
    shutil.copyfile(src, root / FOLDERS[0] / src.name)
    result = _build(root, tmp_path / "site")
    assert result.exit_code == 0 and "has no ledger: the site is not tamper-evident" in (
        result.stderr
    )
    assert "not tamper-evident" in (tmp_path / "site" / "index.html").read_text()
    assert not (tmp_path / "site" / "raw" / LEDGER).exists()
    entry = next((tmp_path / "site").glob("entry-*.html")).read_text()
    assert f"<code>{_sha(src)}</code>" in entry


def test_the_published_results_match_their_ledger():
    assert verify_ledger(RESULTS) == []
