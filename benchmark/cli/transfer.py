"""``bench transfer``: a dataset's transfer matrix (sources x board entries)."""

from __future__ import annotations

from pathlib import Path

import typer

from benchmark.cli.app import app
from benchmark.cli.options import DATA_DIR_HELP, ISOLATION_HELP, ZOO_HELP


@app.command("transfer")
def transfer_cmd(
    dataset: str = typer.Option(..., "--dataset", "-d", help="Registered dataset id."),
    results: Path = typer.Option(
        Path("leaderboard/results"), "--results", help="The results folder whose entries to score."
    ),
    source: list[str] = typer.Option(
        [], "--source", help="A further source: zoo id of another model of the dataset (repeat)."
    ),
    target: list[str] = typer.Option(
        [], "--target", help="Only entries whose key matches this wildcard (repeat)."
    ),
    skip_missing: bool = typer.Option(
        False, help="Leave out (and list) entries whose checkpoint the zoo lacks."
    ),
    out: Path | None = typer.Option(
        None,
        help="File to write (default: <results>/<dataset>/transfer/<protocol>_<time>.json, "
        "then publish it with bench leaderboard add).",
    ),
    data_dir: Path | None = typer.Option(None, help=DATA_DIR_HELP),
    zoo: Path | None = typer.Option(None, help=ZOO_HELP),
    cache_dir: Path | None = typer.Option(
        None, help="Adversarial-example cache (else $BENCH_CACHE_DIR, else the user cache)."
    ),
    batch_size: int = typer.Option(128, min=1, help="Images per attack and scoring batch."),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:N]."),
    isolation: str | None = typer.Option(None, help=ISOLATION_HELP),
) -> None:
    """Craft the transfer protocol's attacks (mrb_transfer_v1) on every checkpoint the
    dataset's entries deploy (and on --source models), score every entry's deployed pipeline
    on them over the whole test split, and write the matrix with per-image outcomes; `bench
    leaderboard build` shows it on the dataset page and as a column of the 8/255 board."""
    from benchmark.evaluation.transfer_matrix import transfer_matrix, write_transfer
    from benchmark.results.transfer import MRB_TRANSFER_V1, read_transfer, transfer_file

    doc = transfer_matrix(
        dataset,
        results_root=results,
        sources=source,
        targets=target,
        skip_missing=skip_missing,
        zoo=zoo,
        data_dir=data_dir,
        cache_dir=cache_dir,
        device=device,
        batch_size=batch_size,
        isolation=isolation,
    )
    path = write_transfer(
        doc, out or transfer_file(results, dataset, MRB_TRANSFER_V1, doc["created_at"])
    )
    matrix = read_transfer(path)
    typer.echo(
        f"{dataset}: {len(matrix.sources)} sources x {len(matrix.targets)} targets on "
        f"{matrix.n} images -> {path}"
    )
    for j, t in enumerate(matrix.targets):
        cells = [matrix.cell(i, j) for i in range(len(matrix.sources))]
        text = "  ".join(
            f"{100 * c.accuracy:5.1f}{'*' if c.own else ' '}" for c in cells if c is not None
        )
        clean = 100 * t["clean"]["accuracy"]["value"]
        typer.echo(f"  {t['key']}: clean {clean:5.1f} | {text}")
    typer.echo("  (columns: sources in order; * = the target's own checkpoint, not a transfer)")
    for left in matrix.doc["left_out"]:
        typer.echo(f"  left out {left['key']}: {left['reason']}")
    typer.echo(f"publish it (ledger): bench leaderboard add {path} --root {results}")
