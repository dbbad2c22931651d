"""Entry point of the ``bench`` console script."""

from __future__ import annotations

import typer

from benchmark.cli import app


def main() -> None:
    """Run the ``bench`` CLI (errors: one stderr line, exit code 1)."""
    typer.main.get_command(app).main(prog_name="bench")


if __name__ == "__main__":
    main()
