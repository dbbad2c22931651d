"""``bench leaderboard``: publish results files, check their ledger, show a board and build the
static site."""

from __future__ import annotations

from pathlib import Path

import typer

from benchmark.cli.app import command_group
from benchmark.errors import ResultsError

leaderboard_app = command_group("leaderboard", "Publish results and build the static site.")


@leaderboard_app.command("add")
def leaderboard_add_cmd(
    results: list[Path] = typer.Argument(..., help="Results JSON files to publish."),
    root: Path = typer.Option(Path("leaderboard/results"), help="The published results folder."),
    exploratory: bool = typer.Option(
        False,
        "--exploratory",
        help="Publish a run that is not a run of the current protocol, unranked.",
    ),
) -> None:
    """Publish results files: validated, provenance complete, protocol-conformant unless
    --exploratory, never overwriting."""
    from benchmark.leaderboard.publish import add_result

    for path in results:
        if not path.is_file():
            raise ResultsError(f"{path} does not exist; pass a results JSON file")
        target, added = add_result(path, root, exploratory=exploratory)
        state = "added" if added else "already published"
        typer.echo(f"{state}{' (exploratory)' if exploratory else ''}: {target}")


@leaderboard_app.command("build")
def leaderboard_build_cmd(
    out: Path = typer.Option(Path("leaderboard/site"), help="Output folder (replaced)."),
    root: Path = typer.Option(Path("leaderboard/results"), help="The published results folder."),
    data_cards: Path = typer.Option(Path("data_cards"), help="Folder of the data cards."),
    readme: Path = typer.Option(Path("README.md"), help="README with the submission guide."),
    cards: Path | None = typer.Option(
        None,
        help="Committed model cards, for each recipe's seeds (default leaderboard/zoo/cards "
        "when it exists; '' for none).",
    ),
) -> None:
    """Render the static leaderboard site (self-contained, opens from the file system); refused
    when a published file differs from the results ledger."""
    from benchmark.leaderboard import build_site
    from benchmark.leaderboard.ledger import ledger_path

    if not root.is_dir():
        raise ResultsError(f"results folder {root} does not exist; pass --root")
    from benchmark.paths import cards_dir
    from benchmark.training.recipes import card_recipe_mismatches

    report = build_site(
        root,
        out,
        data_cards=data_cards,
        readme=readme,
        cards=cards_dir(cards),
        recipe_check=card_recipe_mismatches,
    )
    if not ledger_path(root).is_file():
        typer.echo(
            f"warning: {root} has no ledger: the site is not tamper-evident "
            f"(`bench leaderboard ledger --init --root {root}` writes one)",
            err=True,
        )
    typer.echo(
        f"built {report.pages} pages ({report.entries} entries, {report.boards} leaderboards) "
        f"into {report.out}"
    )
    for bad in report.invalid:
        typer.echo(f"left out {bad.path}: {bad.reason}", err=True)


@leaderboard_app.command("ledger")
def leaderboard_ledger_cmd(
    root: Path = typer.Option(Path("leaderboard/results"), help="The published results folder."),
    init: bool = typer.Option(
        False, "--init", help="Write the first ledger of a folder published before it existed."
    ),
) -> None:
    """Check the results ledger (every published file's sha256 in a hash-chained log), or
    write it once with --init."""
    from benchmark.errors import LedgerError
    from benchmark.leaderboard.ledger import (
        head,
        init_ledger,
        ledger_path,
        read_ledger,
        verify_ledger,
    )

    if init:
        lines = init_ledger(root)
        typer.echo(f"wrote {ledger_path(root)}: {len(lines)} files, head {head(lines)}")
        return
    problems = verify_ledger(root)
    if problems:
        raise LedgerError(problems)
    lines = read_ledger(root)
    typer.echo(f"{ledger_path(root)}: {len(lines)} files as published, head {head(lines)}")


@leaderboard_app.command("show")
def leaderboard_show_cmd(
    dataset: str = typer.Argument(..., help="Dataset id, e.g. pneumoniamnist."),
    board: str = typer.Argument(..., help="Board id: linf-2-255, linf-8-255 or corruptions."),
    root: Path = typer.Option(Path("leaderboard/results"), help="The published results folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the board as JSON."),
) -> None:
    """Print one board: per row its rank, key value, 95 % interval, n, protocol, status and
    reason."""
    import json

    from benchmark.leaderboard import board_text, show_board

    shown = show_board(root, dataset, board)
    typer.echo(json.dumps(shown, indent=2, sort_keys=True) if as_json else board_text(shown))
