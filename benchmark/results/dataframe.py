"""Published results as one tidy pandas table (:func:`frame`).

One row per run for its clean scores (``kind == "clean"``, ``cell_id == "clean"``) followed by
one row per attack block of the run (``kind == "attack"``: one attack cell under one threat
model), in the document's order; runs are ordered by path. Columns are :data:`COLUMNS`, always
in that order and with the dtypes of :data:`DTYPES`, so that two calls on the same files give
equal frames and ``bench leaderboard build`` writes identical ``results.csv`` bytes.

Example::

    import benchmark.results as br

    df = br.frame("leaderboard/results")
    df[df.kind == "attack"].groupby(["dataset", "defense_label"]).robust_accuracy.min()
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.errors import BenchmarkError
from benchmark.results.blocks import AttackView, Metric
from benchmark.results.diagnostics import results_files
from benchmark.results.naming import defense_params_text
from benchmark.results.schema import read_result
from benchmark.results.view import RunView

logger = logging.getLogger(__name__)

_STR, _FLOAT, _INT, _BOOL = "string", "float64", "Int64", "boolean"

DTYPES: dict[str, str] = {
    # the run
    "dataset": _STR,
    "model_id": _STR,
    "arch": _STR,
    "defense": _STR,  # empty when undefended
    "defense_params": _STR,  # "a=1, n=100"
    "defense_label": _STR,  # the leaderboard's row name: "none", "medrdf (n=100)"
    "suite": _STR,
    "run_id": _STR,
    "path": _STR,  # relative to the results root (the site's raw/ link)
    "created_at": _STR,
    "n": _INT,
    # the row
    "kind": _STR,  # "clean" or "attack"
    "threat_model": _STR,  # attack rows: white-box, oblivious, adaptive, transfer, black_box
    "cell_id": _STR,
    "attack": _STR,
    "steps": _INT,
    "norm": _STR,
    "eps": _FLOAT,
    "eps_label": _STR,
    "bounded": _BOOL,
    "sanity_only": _BOOL,
    # metrics (fractions in [0, 1]) with 95 % intervals
    "accuracy": _FLOAT,  # clean rows
    "accuracy_ci95_low": _FLOAT,
    "accuracy_ci95_high": _FLOAT,
    "robust_accuracy": _FLOAT,  # attack rows
    "robust_accuracy_ci95_low": _FLOAT,
    "robust_accuracy_ci95_high": _FLOAT,
    "balanced_accuracy": _FLOAT,  # clean or robust, averaged per class
    "fooling_ratio": _FLOAT,
    "fooling_ratio_ci95_low": _FLOAT,
    "fooling_ratio_ci95_high": _FLOAT,
    "auc": _FLOAT,
    "mfp": _FLOAT,  # clean rows of corruption runs
    "corruption_accuracy": _FLOAT,
    "seconds": _FLOAT,
    "cached": _BOOL,
}
"""Column -> pandas dtype, in column order."""

COLUMNS: tuple[str, ...] = tuple(DTYPES)
"""The columns of :func:`frame`, in order."""


def _metric(prefix: str, metric: Metric | None) -> dict[str, Any]:
    ci = metric.ci95 if metric is not None and metric.ci95 else (None, None)
    return {
        prefix: metric.value if metric is not None else None,
        f"{prefix}_ci95_low": ci[0],
        f"{prefix}_ci95_high": ci[1],
    }


def _run_columns(run: RunView) -> dict[str, Any]:
    return {
        "dataset": run.dataset,
        "model_id": run.model_id,
        "arch": run.arch,
        "defense": run.defense,
        "defense_params": defense_params_text(run.defense_params) or None,
        "defense_label": run.defense_label,
        "suite": run.suite,
        "run_id": run.run_id,
        "path": run.path,
        "created_at": run.created_at,
        "n": run.n,
    }


def _clean_row(run: RunView) -> dict[str, Any]:
    auc = run.clean_auc
    return {
        "kind": "clean",
        "cell_id": "clean",
        **_metric("accuracy", run.clean_accuracy),
        "balanced_accuracy": run.clean_balanced_accuracy,
        "auc": auc.value if auc is not None else None,
        "mfp": run.mfp,
        "corruption_accuracy": run.corruption_accuracy,
    }


def _attack_row(a: AttackView) -> dict[str, Any]:
    auc = a.auc
    return {
        "kind": "attack",
        "threat_model": a.threat_model.value,
        "cell_id": a.cell_id,
        "attack": a.attack,
        "steps": a.steps,
        "norm": a.norm,
        "eps": a.eps,
        "eps_label": a.eps_label,
        "bounded": a.bounded,
        "sanity_only": a.sanity_only,
        **_metric("robust_accuracy", a.robust_accuracy),
        "balanced_accuracy": a.balanced_accuracy,
        **_metric("fooling_ratio", a.fooling_ratio),
        "auc": auc.value if auc is not None else None,
        "seconds": a.seconds,
        "cached": a.cached,
    }


def rows(run: RunView) -> list[dict[str, Any]]:
    """The frame's rows of one run (clean first, then its attack blocks), as dicts."""
    head = _run_columns(run)
    return [{**head, **_clean_row(run)}] + [{**head, **_attack_row(a)} for a in run.attacks]


def read_runs(root: Path, *, all_versions: bool = False) -> list[RunView]:
    """The valid results files under ``root`` as views with paths relative to ``root``: the
    newest version of each run folder (by ``created_at``, then file name), or every version.
    Files that do not validate are left out with a warning."""
    folders: dict[Path, list[RunView]] = {}
    for path in results_files(root):
        rel = path.relative_to(root).as_posix()
        try:
            folders.setdefault(path.parent, []).append(RunView(read_result(path), rel))
        except BenchmarkError as exc:
            logger.warning("left out %s: %s", rel, exc)
    out: list[RunView] = []
    for _, versions in sorted(folders.items()):
        versions.sort(key=lambda r: (r.created_at, Path(r.path).name))
        out += versions if all_versions else versions[-1:]
    return out


def frame(
    source: str | Path | Iterable[str | Path | RunView], *, all_versions: bool = False
) -> pd.DataFrame:
    """A tidy table of results runs (see the module docstring for rows and columns).

    Args:
        source: a results root (every run folder under it: its newest run, or every version
            with ``all_versions``), or results files and :class:`RunView` objects (each file
            as given, its path column the path as written).
        all_versions: with a root, also the older runs of every run folder.

    Returns:
        The frame, rows ordered by run path then clean-first document order.

    Raises:
        ResultsError: a results file given by name does not validate.
    """
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        runs = read_runs(Path(source), all_versions=all_versions)
    else:
        items = [source] if isinstance(source, (str, Path)) else list(source)
        runs = [
            r if isinstance(r, RunView) else RunView(read_result(r), Path(r).as_posix())
            for r in items
        ]
    runs.sort(key=lambda r: (r.path, r.created_at, r.run_id))
    records = [row for run in runs for row in rows(run)]
    df = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    return df.astype(DTYPES)


def to_csv(df: pd.DataFrame) -> bytes:
    """The frame as CSV bytes (UTF-8, ``\\n`` line ends, empty cells for missing values,
    shortest round-trip floats): the same frame always gives the same bytes."""
    return df.to_csv(index=False, lineterminator="\n").encode("utf-8")


__all__ = ["COLUMNS", "DTYPES", "frame", "read_runs", "rows", "to_csv"]
