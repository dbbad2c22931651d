"""The generated tables of the docs match the committed results files; the top-level LICENSE,
CITATION.cff and CONTRIBUTING.md agree with the package."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

import benchmark
from benchmark.cli.report import computed_blocks
from benchmark.reports import update_generated_blocks
from benchmark.reports.blocks import read_any

ROOT = Path(__file__).resolve().parents[2]
PAGES = [
    "docs/attacks.md",
    "docs/corruptions.md",
    "docs/defenses.md",
    "docs/leaderboard.md",
    "docs/protocol.md",
    *[
        f"data_cards/{d}.md"
        for d in ("breastmnist", "ham10000_220", "pneumoniamnist", "retinamnist")
    ],
]


@pytest.mark.parametrize("page", PAGES)
def test_generated_blocks_are_up_to_date(page):
    path = ROOT / page
    if not path.is_file():
        pytest.fail(f"{page} is missing; write it and run make docs")
    text = path.read_text()
    root = ROOT / "leaderboard" / "results"
    new, n = update_generated_blocks(text, root, read_any, computed_blocks())
    assert n >= 1, f"{page} has no bench:results block"
    assert new == text, f"{page} is out of date with leaderboard/results: run make docs"


def test_the_zoo_page_is_what_the_committed_cards_give(tmp_path):
    """docs/model_zoo.md regenerated on a machine without checkpoints (an empty zoo): the
    committed cards, results and rebuild records alone give the committed page."""
    from typer.testing import CliRunner

    from benchmark.cli import app

    out = tmp_path / "model_zoo.md"
    args = [
        "zoo", "report", "--zoo", str(tmp_path / "empty"),
        "--cards", str(ROOT / "leaderboard" / "zoo" / "cards"),
        "--results", str(ROOT / "leaderboard" / "results"),
        "--rebuilds", str(ROOT / "benchmarks" / "records" / "rebuild"),
        "--out", str(out),
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert out.read_text() == (ROOT / "docs" / "model_zoo.md").read_text(), (
        "docs/model_zoo.md is out of date with the committed cards: run make zoo-docs"
    )


#: The top-level keys of Citation File Format 1.2.0 (its schema.json).
CFF_KEYS = {
    "abstract",
    "authors",
    "cff-version",
    "commit",
    "contact",
    "date-released",
    "doi",
    "identifiers",
    "keywords",
    "license",
    "license-url",
    "message",
    "preferred-citation",
    "references",
    "repository",
    "repository-artifact",
    "repository-code",
    "title",
    "type",
    "url",
    "version",
}


def test_licence_citation_and_contributing_agree_with_the_package():
    licence = (ROOT / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in licence
    assert "END OF TERMS AND CONDITIONS" in licence
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == (
        "Apache-2.0"
    )
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert {"cff-version", "message", "title", "authors"} <= set(cff) <= CFF_KEYS
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["version"] == benchmark.__version__ and cff["license"] == "Apache-2.0"
    assert cff["authors"] == [{"name": "MedRobustBench developers"}]
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    for step in (
        "bench new-submission",
        "bench validate",
        "--protocol mrb_linf_adaptive_v2",
        "--protocol mrb_linf_v2",
        "bench leaderboard add",
        "--exploratory",
        "pull request",
        "maintainers",
        "ruff",
    ):
        assert step in contributing, step
