"""``bench zoo``: list the model zoo and write its Markdown report."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from benchmark.cli.app import command_group
from benchmark.cli.options import ZOO_HELP
from benchmark.errors import ConfigError

zoo_app = command_group("zoo", "Inspect the model zoo.")


@zoo_app.command("list")
def zoo_list_cmd(
    zoo: Path | None = typer.Option(None, help=ZOO_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the cards as JSON."),
) -> None:
    """List the models in the zoo with their test scores."""
    from benchmark.models.zoo import ModelZoo

    entries = ModelZoo(zoo).list()
    if as_json:
        typer.echo(json.dumps([e.card for e in entries], indent=2))
        return
    if not entries:
        typer.echo(f"the zoo {ModelZoo(zoo).root} is empty; train a model with `bench train`")
    for e in entries:
        t = e.card["metrics"]["test"]
        auc = t["auc"]["value"]
        typer.echo(
            f"{e.model_id:<44} test ACC {t['acc']['value']:.4f}  AUC "
            f"{'n/a' if auc is None else f'{auc:.4f}'}  epochs {e.card['epochs']}"
        )


@zoo_app.command("report")
def zoo_report_cmd(
    zoo: Path | None = typer.Option(None, help=ZOO_HELP),
    out: Path = typer.Option(Path("docs/model_zoo.md"), help="Markdown file to write."),
    pattern: str = typer.Option("*", help="Only model ids matching this wildcard."),
) -> None:
    """Write the zoo's Markdown table (docs/model_zoo.md) from the model cards."""
    import fnmatch

    from benchmark.models.zoo import ModelZoo
    from benchmark.models.zoo_report import render_zoo_markdown
    from benchmark.results.io import atomic_write_bytes

    entries = [e for e in ModelZoo(zoo).list() if fnmatch.fnmatchcase(e.model_id, pattern)]
    if not entries:
        raise ConfigError(f"no model in the zoo matches '{pattern}'; train one with bench train")
    cmd = "bench zoo report" + (f" --pattern '{pattern}'" if pattern != "*" else "")
    atomic_write_bytes(out, render_zoo_markdown(entries, command=cmd).encode())
    typer.echo(f"wrote {out} ({len(entries)} models)")
