"""The pull-request workflow (.github/workflows/submission.yml) cannot run here; this checks
its format instead: the GitHub Actions keys it must have, steps that each run or use one thing,
actions pinned to a version, least-privilege permissions, no ``${{ github.event... }}``
expression inside a shell script (script injection from a pull request's title or branch), and
every ``bench`` command it calls exists with the options it passes."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml
from typer.testing import CliRunner

from benchmark.cli import app

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "submission.yml"


def _load() -> dict:
    doc = yaml.safe_load(WORKFLOW.read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as true
    return doc


def test_the_workflow_has_the_actions_format():
    doc = _load()
    assert doc["name"] and "pull_request" in doc["on"]
    assert doc["permissions"] == {"contents": "read"}
    for name, job in doc["jobs"].items():
        assert job["runs-on"] and int(job["timeout-minutes"]) > 0, name
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), step
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), step["uses"]
            else:
                assert "${{ github.event" not in step["run"], step["run"]


def test_every_bench_command_it_calls_exists():
    runner = CliRunner()
    calls = []
    for job in _load()["jobs"].values():
        for step in job["steps"]:
            for found in re.finditer(r"bin/bench ([^;\n]*)", step.get("run", "")):
                calls.append(shlex.split(found.group(1)))
    assert len(calls) >= 3
    for args in calls:
        command = [a for a in args if not a.startswith("$") and not a.startswith('"$')]
        words = [w for w in command if not w.startswith("-")][:2]
        group = [words[0]] if words[0] != "leaderboard" else words
        out = runner.invoke(app, [*group, "--help"])
        assert out.exit_code == 0, (args, out.output)
        for option in (a.split("=")[0] for a in args if a.startswith("--")):
            assert option in out.output, (option, group)
