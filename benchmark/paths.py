"""Where data, checkpoints and results live on disk.

Each location is chosen, in order, from an explicit argument (the CLI flag), an environment
variable, then a per-user default:

* data: ``--data-dir``, ``$BENCH_DATA_DIR``, else medmnist's ``~/.medmnist``;
* model zoo: ``--zoo``, ``$BENCH_ZOO_DIR``, else ``~/.cache/medrobustbench/zoo``;
* results: ``--out``, ``$BENCH_RESULTS_DIR``, else ``./results``;
* committed model cards: ``--cards``, else ``./leaderboard/zoo/cards`` when it exists.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "BENCH_DATA_DIR"
ZOO_ENV = "BENCH_ZOO_DIR"
RESULTS_ENV = "BENCH_RESULTS_DIR"
COMMITTED_CARDS = Path("leaderboard/zoo/cards")
"""The repository's folder of published model cards (relative to the repository root)."""
PUBLISHED_RESULTS = Path("leaderboard/results")
"""The repository's folder of published results (relative to the repository root)."""


def _from(explicit: str | os.PathLike[str] | None, env: str) -> Path | None:
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    value = os.environ.get(env, "")
    return Path(value).expanduser() if value else None


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The user's data root (``--data-dir`` or ``$BENCH_DATA_DIR``), or None for defaults."""
    return _from(explicit, DATA_ENV)


def cache_root() -> Path:
    """The per-user cache folder of the benchmark (honours ``$XDG_CACHE_HOME``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "medrobustbench"


def zoo_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The model-zoo folder (``--zoo``, ``$BENCH_ZOO_DIR``, else the per-user cache)."""
    return _from(explicit, ZOO_ENV) or cache_root() / "zoo"


def results_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The folder results JSON files are written to (``--out``, ``$BENCH_RESULTS_DIR``)."""
    return _from(explicit, RESULTS_ENV) or Path("results")


def cards_dir(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The folder of committed model cards to read: ``explicit`` (``""``: none), else
    :data:`COMMITTED_CARDS` when the working directory has it, else None."""
    if explicit is not None:
        return Path(explicit).expanduser() if str(explicit) != "" else None
    return COMMITTED_CARDS if COMMITTED_CARDS.is_dir() else None
