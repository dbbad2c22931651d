"""Submission commands: ``bench new-submission`` (a working skeleton of each kind) and
``bench validate`` (the defense conformance suite on a submission)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import typer

from benchmark.cli.app import app
from benchmark.params import parse_params


@app.command("validate")
def validate_cmd(
    submission: str = typer.Argument(..., help="Submission id (submissions/<id>) or folder."),
    param: list[str] = typer.Option([], help="Override a parameter: name=value (JSON value)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    sandbox: bool = typer.Option(
        False,
        "--sandbox/--no-sandbox",
        help="Import and check the submission under bubblewrap (no network, read-only files, "
        "memory, process and time limits); --no-sandbox runs it in this process.",
    ),
) -> None:
    """Run the defense conformance suite on a submission before any evaluation."""
    if sandbox:
        from benchmark.defenses.sandbox import validate_in_sandbox

        verdict = validate_in_sandbox(submission, **parse_params(param))
    else:
        from benchmark.defenses import load_submission
        from benchmark.defenses.conformance import validate_submission

        sub = load_submission(submission)
        passed = validate_submission(sub, **parse_params(param))
        verdict = {"submission": sub.record(), "passed": [dataclasses.asdict(c) for c in passed]}
    if as_json:
        typer.echo(json.dumps(verdict, indent=2))
        return
    record, passed_checks = verdict["submission"], verdict["passed"]
    where = ", in the sandbox" if sandbox else ""
    typer.echo(
        f"{record['id']} ({record['name']}, {record['kind']}): {len(passed_checks)} checks "
        f"passed{where}"
    )
    for c in passed_checks:
        typer.echo(f"  ok  {c['name']:<24} {c['detail']}")


@app.command("new-submission")
def new_submission_cmd(
    submission_id: str = typer.Argument(..., metavar="ID", help="The new submission's id."),
    kind: str = typer.Option(
        ..., "--kind", help="preprocessing | wrapper | voting | training (the skeleton)."
    ),
    directory: Path | None = typer.Option(
        None,
        "--dir",
        help="Folder of the submissions (default: $BENCH_SUBMISSIONS_DIR or ./submissions).",
    ),
) -> None:
    """Write submissions/ID/: submission.toml, a defense.py that passes `bench validate`, and
    a README skeleton with the commands that evaluate it on its track."""
    from benchmark.defenses import submissions_dir
    from benchmark.defenses.templates import track, write_submission

    folder = write_submission(submission_id, kind, directory or submissions_dir())
    typer.echo(f"wrote {folder}/: submission.toml, defense.py, README.md ({kind})")
    typer.echo(f"next: edit them, then `bench validate {folder}`; its track is {track(kind)}")
