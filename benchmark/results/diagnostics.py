"""Where a run's diagnostic figures live and how their index is read and checked.

``bench diagnose RESULT.json`` (:mod:`benchmark.diagnostics`) writes the figures of one run
beside it::

    <run folder>/<run_id>.json                      the results file
    <run folder>/diagnostics/<run_id>/index.json    what was drawn, captions, alt texts, sha256s
    <run folder>/diagnostics/<run_id>/*.png         the images

The index names the results file it was computed from by its sha256, and every image by its
sha256, so the site builder (:mod:`benchmark.leaderboard.build`) shows a figure only when it
belongs to the results file on the page and its bytes are the ones written: a run redone after
its figures were drawn, or an image edited by hand, is left out with a note. Results-file
walkers skip ``diagnostics/`` folders (:func:`results_files`): an index is not a results file
and is not in the results ledger (figures illustrate a run; they are not ranked numbers).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from benchmark.results.naming import SIDE_FOLDERS

DIAGNOSTICS = "diagnostics"
"""The folder, beside a run's results files, that holds their figures."""
INDEX = "index.json"
"""The index file of one run's figures."""
INDEX_SCHEMA = 1
"""Version of the index format."""


def results_files(root: Path) -> list[Path]:
    """Every ``*.json`` under ``root`` that may be a results file (sorted), skipping the
    ``diagnostics/`` folders of figure indexes and the ``transfer/`` folders of transfer
    matrices (:data:`SIDE_FOLDERS`)."""
    return sorted(
        p
        for p in Path(root).rglob("*.json")
        if p.is_file() and not SIDE_FOLDERS.intersection(p.relative_to(root).parts[:-1])
    )


def diagnostics_folder(result: Path) -> Path:
    """The folder of the figures of the results file ``result``."""
    return result.parent / DIAGNOSTICS / result.stem


def sha256_bytes(data: bytes) -> str:
    """sha256 of ``data`` (hex)."""
    return hashlib.sha256(data).hexdigest()


def read_diagnostics(result: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """The figure index of ``result`` if it has one, and the problems found with it.

    Returns ``(None, [])`` when the run has no figures; ``(None, [reason])`` when its index
    is unreadable or was computed from another version of the results file; otherwise the
    index with the figures whose image is missing or altered removed, each one named in the
    problems.
    """
    folder = diagnostics_folder(result)
    path = folder / INDEX
    if not path.is_file():
        return None, []
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, [f"{path.name}: unreadable ({exc})"]
    if not isinstance(index, dict) or index.get("schema") != INDEX_SCHEMA:
        return None, [f"{path.name}: not a version-{INDEX_SCHEMA} figure index"]
    expected = (index.get("result") or {}).get("sha256")
    if expected != sha256_bytes(result.read_bytes()):
        return None, [
            f"figures of {result.name} were drawn from another version of it: "
            f"run 'bench diagnose {result.name}' again"
        ]
    kept, problems = [], []
    for figure in index.get("figures") or []:
        files = figure.get("files") or {}
        if not _plain(str(figure.get("sprite", ""))) or figure.get("sprite") not in files:
            problems.append(f"figure {figure.get('id')}: its image is not among its checked files")
            continue
        bad = [
            name
            for name, digest in files.items()
            if not _plain(name)
            or not (folder / name).is_file()
            or sha256_bytes((folder / name).read_bytes()) != digest
        ]
        if bad:
            problems.append(f"figure {figure.get('id')}: {', '.join(bad)} missing or altered")
        else:
            kept.append(figure)
    return {**index, "figures": kept}, problems


def _plain(name: str) -> bool:
    """A file name with no folder part (the index may only name files beside it)."""
    return bool(name) and "/" not in name and "\\" not in name and name not in {".", ".."}


__all__ = [
    "DIAGNOSTICS",
    "INDEX",
    "INDEX_SCHEMA",
    "diagnostics_folder",
    "read_diagnostics",
    "results_files",
    "sha256_bytes",
]
