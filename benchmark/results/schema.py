"""The results JSON schema: validation, version checks, reading and writing result files.

A result file is one immutable JSON document per run (RobustBench-style), written atomically.
``schema_version`` is semantic: readers accept any minor/patch of a known major version and
reject an unknown major version with a clear error.

Versions read:

* 1: the published results (no per-image outcomes);
* 2 (written now): schema 1 plus ``data.indices``, ``data.labels``,
  ``metrics.clean.outcomes`` and an ``outcomes`` block in every attack block
  (:mod:`benchmark.results.outcomes`), so that every figure of a run can be recomputed from
  its JSON alone. Beyond the JSON Schema, every packed field must decode to ``data.n``
  images. Minor version 1 (2.1.0) adds, optionally, ``corruption_protocol``,
  ``corruptions.seed`` and the severity corruptions' per-image ``outcomes`` (one block per
  severity), from which a corruption board recomputes its figures.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from benchmark.errors import ResultsError
from benchmark.results.io import atomic_write_json
from benchmark.results.outcomes import check_outcomes

SCHEMA_VERSION = "2.1.0"
SUPPORTED_MAJOR = {1, 2}


@lru_cache(maxsize=4)
def load_schema(major: int = 2) -> dict[str, Any]:
    """The JSON Schema document of results with the given major version."""
    text = (
        resources.files("benchmark.results")
        .joinpath(f"schemas/result-{major}.schema.json")
        .read_text()
    )
    return json.loads(text)


def _major(version: Any) -> int:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return -1


def _finite(obj: Any, where: str = "") -> None:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ResultsError(f"result has a non-finite number at {where or '/'}")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _finite(v, f"{where}/{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _finite(v, f"{where}/{i}")


def validate_result(doc: dict[str, Any], name: str = "result") -> None:
    """Validate ``doc`` against its schema.

    Raises:
        ResultsError: unknown major version, a schema violation (the message names the path),
            or a non-finite number.
    """
    if not isinstance(doc, dict):
        raise ResultsError(f"{name}: a result must be a JSON object")
    major = _major(doc.get("schema_version"))
    if major not in SUPPORTED_MAJOR:
        raise ResultsError(
            f"{name}: unknown schema_version {doc.get('schema_version')!r}; this benchmark reads "
            f"major version(s) {sorted(SUPPORTED_MAJOR)}: upgrade medrobustbench to read it"
        )
    _finite(doc)
    validator = jsonschema.Draft202012Validator(load_schema(major))
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        path = "/".join(str(p) for p in err.absolute_path) or "/"
        raise ResultsError(f"{name}: invalid at {path}: {err.message}")
    if major >= 2:
        try:
            check_outcomes(doc)
        except ResultsError as err:
            raise ResultsError(f"{name}: {err}") from err


def write_result(doc: dict[str, Any], path: str | Path) -> Path:
    """Validate ``doc`` and write it atomically to ``path``; an existing file is never replaced.

    Raises:
        ResultsError: the document does not validate, or ``path`` already exists.
    """
    target = Path(path)
    validate_result(doc, target.name)
    if target.exists():
        raise ResultsError(f"{target} already exists: result files are immutable")
    return atomic_write_json(target, doc)


def read_result(path: str | Path) -> dict[str, Any]:
    """Read and validate a result file.

    Raises:
        ResultsError: unreadable JSON, unknown major version, or a schema violation.
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{p}: not readable JSON ({exc})") from exc
    validate_result(doc, str(p))
    return doc
