"""``bench zoo``: list the model zoo and write its Markdown report."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from benchmark.cli.app import command_group
from benchmark.cli.options import ZOO_HELP
from benchmark.errors import ConfigError
from benchmark.reports.terminal import render_zoo_list

zoo_app = command_group("zoo", "Inspect the model zoo.")


@zoo_app.command("list")
def zoo_list_cmd(
    zoo: Path | None = typer.Option(None, help=ZOO_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the cards as JSON."),
) -> None:
    """List the models in the zoo with their test scores."""
    from benchmark.models.zoo import ModelZoo

    store = ModelZoo(zoo)
    entries = store.list()
    if as_json:
        typer.echo(json.dumps([e.card for e in entries], indent=2))
        return
    typer.echo(render_zoo_list(entries, store.root))


@zoo_app.command("report")
def zoo_report_cmd(
    zoo: Path | None = typer.Option(None, help=ZOO_HELP),
    out: Path = typer.Option(Path("docs/model_zoo.md"), help="Markdown file to write."),
    pattern: str = typer.Option("*", help="Only model ids matching this wildcard."),
) -> None:
    """Write the zoo's Markdown table (docs/model_zoo.md) from the model cards."""
    import fnmatch

    from benchmark.models.zoo import ModelZoo
    from benchmark.reports import render_zoo_markdown
    from benchmark.results.io import atomic_write_bytes

    entries = [e for e in ModelZoo(zoo).list() if fnmatch.fnmatchcase(e.model_id, pattern)]
    if not entries:
        raise ConfigError(f"no model in the zoo matches '{pattern}'; train one with bench train")
    cmd = "bench zoo report" + (f" --pattern '{pattern}'" if pattern != "*" else "")
    atomic_write_bytes(out, render_zoo_markdown(entries, command=cmd).encode())
    typer.echo(f"wrote {out} ({len(entries)} models)")
