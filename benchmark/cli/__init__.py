"""The ``bench`` command line: thin commands over the library.

``app`` is the complete Typer application (every command registered).
"""

from benchmark.cli import commands  # noqa: F401  (registers the commands on the app)
from benchmark.cli.app import app

__all__ = ["app"]
