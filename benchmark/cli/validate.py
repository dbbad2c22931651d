"""``bench validate``: the defense conformance suite on a submission."""

from __future__ import annotations

import dataclasses
import json

import typer

from benchmark.cli.app import app
from benchmark.params import parse_params


@app.command("validate")
def validate_cmd(
    submission: str = typer.Argument(..., help="Submission id (submissions/<id>) or folder."),
    param: list[str] = typer.Option([], help="Override a parameter: name=value (JSON value)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Run the defense conformance suite on a submission before any evaluation."""
    from benchmark.defenses import load_submission
    from benchmark.defenses.conformance import validate_submission

    sub = load_submission(submission)
    passed = validate_submission(sub, **parse_params(param))
    if as_json:
        typer.echo(
            json.dumps(
                {"submission": sub.record(), "passed": [dataclasses.asdict(c) for c in passed]},
                indent=2,
            )
        )
        return
    typer.echo(f"{sub.id} ({sub.name}, {sub.meta.kind}): {len(passed)} checks passed")
    for c in passed:
        typer.echo(f"  ok  {c.name:<24} {c.detail}")
