"""Submission commands: ``bench new-submission`` (a working skeleton of each kind) and
``bench validate`` (the defense conformance suite on a submission)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import typer

from benchmark.cli.app import app
from benchmark.cli.options import ISOLATION_HELP, SANDBOX_LIMIT_HELP
from benchmark.params import parse_params


@app.command("validate")
def validate_cmd(
    submission: str = typer.Argument(..., help="Submission id (submissions/<id>) or folder."),
    param: list[str] = typer.Option([], help="Override a parameter: name=value (JSON value)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    isolation: str | None = typer.Option(None, help=ISOLATION_HELP),
    sandbox_limit: list[str] = typer.Option([], help=SANDBOX_LIMIT_HELP),
) -> None:
    """Run the defense conformance suite on a submission before any evaluation (in the
    sandbox unless --isolation says otherwise)."""
    from benchmark.defenses.isolation import close_submission, open_submission, validate
    from benchmark.defenses.sandbox import SandboxLimits
    from benchmark.defenses.sandbox_proxy import SandboxedSubmission

    sub = open_submission(submission, isolation, SandboxLimits.parse(sandbox_limit))
    sandbox = isinstance(sub, SandboxedSubmission)
    try:
        passed = validate(sub, **parse_params(param))
        verdict = {"submission": sub.record(), "passed": [dataclasses.asdict(c) for c in passed]}
    finally:
        close_submission(sub)
    if as_json:
        typer.echo(json.dumps(verdict, indent=2))
        return
    record, passed_checks = verdict["submission"], verdict["passed"]
    where = ", in the sandbox" if sandbox else ", in this process"
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
