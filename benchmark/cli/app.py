"""The ``bench`` command group: error handling and logging shared by every command.

A :class:`~benchmark.errors.BenchmarkError` or a usage error (unknown option, bad value)
becomes exit code 1 and one line on stderr (one per problem when a check reports several, each
prefixed ``error:``); ``--verbose`` adds the traceback.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

import typer
from typer.core import TyperGroup

from benchmark.errors import BenchmarkError


class BenchGroup(TyperGroup):
    """Typer group whose ``main`` turns known errors into one stderr line and exit code 1."""

    def main(
        self,
        args: Any = None,
        prog_name: Any = None,
        complete_var: Any = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        verbose = "--verbose" in argv or "-v" in argv
        try:
            rv = super().main(
                args=argv,
                prog_name=prog_name or "bench",
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
            code = rv if isinstance(rv, int) else 0
        except BenchmarkError as exc:
            if verbose:
                traceback.print_exc()
            for line in str(exc).splitlines() or [""]:  # a check may report several problems
                typer.echo(f"error: {line}", err=True)
            code = 1
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            code = 1
        except typer.TyperException as exc:  # usage errors: unknown option, bad value
            ctx = getattr(exc, "ctx", None)
            hint = f"; see `{ctx.command_path} --help`" if ctx is not None else ""
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            typer.echo(f"error: {message}{hint}", err=True)
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=BenchGroup,
    help="MedRobustBench: how much does a defense really protect a diagnostic model?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Click's plain help: rich's boxed tables cut option names at 80 columns.
    rich_markup_mode=None,
)


def command_group(name: str, help: str) -> typer.Typer:
    """A ``bench <name> ...`` sub-command group, registered on :data:`app`."""
    group = typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None)
    app.add_typer(group, name=name)
    return group


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logs and tracebacks."),
) -> None:
    """MedRobustBench command line."""
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True
    )
    if not verbose:
        for noisy in ("datasets", "httpx", "filelock", "fsspec", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
