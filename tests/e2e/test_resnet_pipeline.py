"""Slow end-to-end run with a real benchmark architecture (``make test-slow``)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.results import read_result

pytestmark = pytest.mark.slow


def test_resnet18_train_evaluate_on_breastmnist(shared_data, isolated_dirs):
    runner = CliRunner()
    out = runner.invoke(
        app,
        [
            "evaluate",
            "-d",
            "breastmnist",
            "-m",
            "resnet18",
            "--data-dir",
            str(shared_data),
            "--train-if-missing",
            "--epochs",
            "2",
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["config"]["model_id"] == "resnet18_breastmnist_28px_s0"
    files = list((isolated_dirs / "results").rglob("*.json"))
    assert len(files) == 1 and read_result(files[0]) == doc
    card = json.loads(
        (isolated_dirs / "zoo" / "resnet18_breastmnist_28px_s0" / "card.json").read_text()
    )
    assert doc["model"]["checkpoint_sha256"] == card["checkpoint"]["sha256"]
    # Two epochs of ResNet-18 beat the trivial majority-class AUC of 0.5 on real data.
    assert doc["metrics"]["clean"]["auc"]["value"] > 0.6
