"""``bench submit``: a submission and its protocol results as one reviewable bundle, and the
maintainer's one-command re-run of a bundle (:mod:`benchmark.evaluation.bundle`)."""

from __future__ import annotations

from pathlib import Path

import typer

from benchmark.cli.app import app
from benchmark.cli.options import DATA_DIR_HELP, ISOLATION_HELP, SANDBOX_LIMIT_HELP, ZOO_HELP
from benchmark.errors import ResultsError


@app.command("submit")
def submit_cmd(
    submission: str = typer.Argument(
        None, help="Submission id (submissions/<id>) or folder; with --rerun, the bundle."
    ),
    results: list[Path] = typer.Argument(None, help="Its protocol results files."),
    out: Path = typer.Option(Path("bundles"), help="Folder the bundle is written to."),
    rerun: bool = typer.Option(
        False, "--rerun", help="Re-run the bundle SUBMISSION and compare image by image."
    ),
    data_dir: Path | None = typer.Option(None, help=DATA_DIR_HELP),
    zoo: Path | None = typer.Option(None, help=ZOO_HELP),
    isolation: str | None = typer.Option(None, help=ISOLATION_HELP),
    sandbox_limit: list[str] = typer.Option([], help=SANDBOX_LIMIT_HELP),
) -> None:
    """Bundle a submission with its protocol results (validated, hashed), or re-run a bundle."""
    from benchmark.defenses.sandbox import SandboxLimits
    from benchmark.evaluation.bundle import make_bundle, rerun_bundle
    from benchmark.models.zoo import ModelZoo

    limits = SandboxLimits.parse(sandbox_limit)

    if not submission:
        raise ResultsError("bench submit needs a submission (or, with --rerun, a bundle)")
    if not rerun:
        path = make_bundle(submission, list(results or []), out, isolation, limits)
        typer.echo(f"wrote {path}; a maintainer re-runs it with `bench submit --rerun {path}`")
        return
    comparisons = rerun_bundle(
        Path(submission), data_dir=data_dir, zoo=ModelZoo(zoo), isolation=isolation, limits=limits
    )
    moved_any = False
    for c in comparisons:
        typer.echo(f"{c.result}: re-run written to {c.rerun_path}")
        for key, moved in c.moved.items():
            old, new = c.figures[key]
            typer.echo(f"  {key:<60} {old:.4f} -> {new:.4f}  {moved} image(s) moved")
        moved_any |= not c.identical
    verdict = "differs" if moved_any else "re-runs to the same per-image outcomes"
    typer.echo(f"bundle {submission}: {verdict}")
    if moved_any:
        raise typer.Exit(1)
