"""Entry point of the ``bench`` console script."""

from __future__ import annotations

import typer

from benchmark.cli import commands  # noqa: F401  (registers the commands)
from benchmark.cli.app import app

#: The click command behind ``bench`` (also what tests drive with ``CliRunner``).
cli = typer.main.get_command(app)


def main() -> None:
    """Run the ``bench`` CLI."""
    cli.main(prog_name="bench")


if __name__ == "__main__":
    main()
