"""Generated blocks of Markdown pages (``bench report update``).

A page marks each generated table with a pair of comments::

    <!-- bench:results KIND GLOB... -->
    (generated; replaced on every update)
    <!-- /bench:results -->

``KIND`` names a renderer of :data:`~benchmark.reports.base.REPORTS` (``summary``, ``full``,
``fp``, ``corruptions``, ``defensematrix``, ``defensebalanced``, ``defenses``,
``defensefull``, ``table5``, ``transfer``, ``precision``; ``bench list reports`` lists
them; the CLI adds the kinds computed from the whole results root, ``boards`` and
``protocolruns``). A block of
kind ``transfer`` names transfer-matrix files (``D/transfer/*.json``), read with
:func:`read_any`. Hand-written text outside the
blocks is kept as is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from benchmark.errors import ResultsError

# The families register their block kinds on import.
from benchmark.reports import (  # noqa: F401
    attacks,
    corruptions,
    defenses,
    paper_tables,
    precision,
    transfer,
)
from benchmark.reports.base import REPORTS

BLOCK = re.compile(
    r"(?P<open><!-- bench:results (?P<kind>[a-z0-9]+) (?P<globs>[^>]*?) -->\n)"
    r"(?P<body>.*?)"
    r"(?P<close><!-- /bench:results -->)",
    re.DOTALL,
)
"""A generated block: its opening comment (``kind``, ``globs``), ``body`` and closing one."""


def latest_results(pattern: str, root: Path) -> list[Path]:
    """The newest results file in each run folder matched by a glob under ``root``.

    A run folder (``<dataset>/<suite>/<model_id>/``) may hold several runs; their file names
    start with the run's UTC timestamp, so the last name in sorted order is the newest.
    """
    newest: dict[Path, Path] = {}
    for path in sorted(root.glob(pattern)):
        if path.suffix == ".json":
            newest[path.parent] = path
    return [newest[k] for k in sorted(newest)]


#: A block computed from the whole results root rather than from the files its globs match
#: (the boards, which rank every entry of a dataset): ``(root, the block's words) -> body``.
ComputedBlock = Callable[[Path, list[str]], str]


def update_generated_blocks(
    text: str,
    root: Path,
    read: Callable[[Path], dict[str, Any]],
    computed: Mapping[str, ComputedBlock] | None = None,
) -> tuple[str, int]:
    """Regenerate every ``<!-- bench:results KIND GLOB... -->`` block of a Markdown page.

    ``KIND`` is a block kind registered in :data:`~benchmark.reports.base.REPORTS`, or one of
    ``computed`` (given by the CLI, which composes this package with the leaderboard: the
    ``boards`` block), which gets the root and the block's words instead of files.
    ``GLOB`` patterns are relative to ``root`` and resolved with :func:`latest_results`;
    ``read`` loads and validates one results file. Hand-written text outside the blocks is
    kept as is. Returns the new text and the number of blocks.

    Raises:
        ResultsError: a block's globs match nothing, or its kind is unknown.
    """
    count = 0

    def fill(match: re.Match[str]) -> str:
        nonlocal count
        count += 1
        if computed and match["kind"] in computed:
            body = computed[match["kind"]](root, match["globs"].split())
            return match["open"] + "\n" + body.rstrip("\n") + "\n\n" + match["close"]
        paths = [p for g in match["globs"].split() for p in latest_results(g, root)]
        if not paths:
            raise ResultsError(
                f"no results file matches '{match['globs']}' under {root}; run the "
                "evaluation first or fix the pattern in the page"
            )
        docs = [(p.relative_to(root).as_posix(), read(p)) for p in paths]
        if match["kind"] not in REPORTS:
            raise ResultsError(
                f"unknown bench:results block kind '{match['kind']}'; use one of "
                f"{', '.join([*REPORTS.list(), *(computed or {})])}"
            )
        body = REPORTS.get(match["kind"])(docs)
        return match["open"] + "\n" + body + "\n" + match["close"]

    return BLOCK.sub(fill, text), count


def read_any(path: Path) -> dict[str, Any]:
    """A results file (:func:`~benchmark.results.schema.read_result`) or a transfer matrix
    (:func:`~benchmark.results.transfer.read_transfer`, its checked view under ``_matrix``)."""
    import json

    from benchmark.results.schema import read_result
    from benchmark.results.transfer import SCHEMA, read_transfer

    try:
        schema = json.loads(path.read_bytes()).get("schema")
    except (OSError, ValueError, AttributeError):
        schema = None
    if schema == SCHEMA:
        matrix = read_transfer(path)
        return {**matrix.doc, "_matrix": matrix}
    return read_result(path)


def block_kinds(text: str) -> list[str]:
    """The kinds of the generated blocks of a page, in page order."""
    return [m["kind"] for m in BLOCK.finditer(text)]
