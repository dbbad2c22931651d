"""The ``bench`` command line: thin commands over the library, one module per command group.

``app`` is the complete Typer application (every command registered).
"""

from benchmark.cli import (  # noqa: F401  (each module registers its commands on the app)
    catalog,
    corruptions,
    diagnose,
    evaluate,
    leaderboard,
    report,
    submit,
    train,
    transfer,
    validate,
    zoo,
)
from benchmark.cli.app import app

__all__ = ["app"]
