"""``bench diagnose``: draw a run's figures (gallery, saliency, feature maps, embeddings)."""

from __future__ import annotations

from pathlib import Path

import typer

from benchmark.cli.app import app
from benchmark.cli.options import DATA_DIR_HELP, ISOLATION_HELP, ZOO_HELP


@app.command("diagnose")
def diagnose_cmd(
    results: list[Path] = typer.Argument(None, help="Results file(s) of runs with attacks."),
    published: Path | None = typer.Option(
        None,
        help="A results folder: one run per entry of its boards (the richest in attack "
        "families); entries whose checkpoint the zoo lacks are skipped with a line.",
    ),
    dataset: list[str] = typer.Option(
        [], "--dataset", "-d", help="With --published: only these datasets' boards."
    ),
    skip_done: bool = typer.Option(
        False, help="With --published: skip runs whose figures are current."
    ),
    data_dir: Path | None = typer.Option(None, help=DATA_DIR_HELP),
    zoo: Path | None = typer.Option(None, help=ZOO_HELP),
    cache_dir: Path | None = typer.Option(
        None, help="Adversarial-example cache (else $BENCH_CACHE_DIR, else the user cache)."
    ),
    out: Path | None = typer.Option(
        None, help="Folder to write (one results file only; else diagnostics/ beside it)."
    ),
    per_class: int = typer.Option(2, min=1, max=8, help="Gallery images per class (seeded)."),
    families: int = typer.Option(3, min=1, max=6, help="Attack families shown."),
    embed_points: int = typer.Option(
        96, min=10, max=1000, help="Training and test images per t-SNE group."
    ),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:N]."),
    isolation: str | None = typer.Option(None, help=ISOLATION_HELP),
) -> None:
    """Draw the figures of each results file from its cached adversarial examples (a cold
    cache crafts again only the images shown), into diagnostics/<run_id>/ beside it;
    `bench leaderboard build` puts them on the entry pages."""
    from benchmark.diagnostics import diagnose
    from benchmark.errors import CheckpointError, ConfigError
    from benchmark.results.diagnostics import read_diagnostics

    paths = list(results or [])
    if published is not None:
        from benchmark.diagnostics.published import runs_to_diagnose

        paths += [p for _, p in runs_to_diagnose(published, dataset or None)]
    if not paths:
        raise ConfigError("name results files, or a results folder with --published")
    if out is not None and len(paths) > 1:
        raise ConfigError("--out takes one results file; leave it out to write beside each")
    for path in paths:
        index, problems = read_diagnostics(path) if skip_done else (None, [])
        if index is not None and not problems:
            typer.echo(f"{path}: figures are current, skipped")
            continue
        try:
            report = diagnose(
                path,
                data_dir=data_dir,
                zoo=zoo,
                cache_dir=cache_dir,
                out=out,
                device=device,
                per_class=per_class,
                families=families,
                embed_points=embed_points,
                isolation=isolation,
            )
        except CheckpointError as exc:
            if published is None:
                raise
            typer.echo(f"{path}: skipped: {exc}")
            continue
        how = (
            "all from the run's cache"
            if report.recrafted == 0
            else f"{report.recrafted} images' examples not the run's own, "
            f"{report.attacked} attacked now"
        )
        typer.echo(f"{path}: {', '.join(report.figures)} -> {report.folder} ({how})")
