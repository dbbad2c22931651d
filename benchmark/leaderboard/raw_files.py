"""An entry's results files in the site: copied under ``raw/`` with their sha256, and which of
its runs' older versions evaluated another checkpoint (a retrain of the recipe replaced it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from benchmark.leaderboard.ledger import file_sha256
from benchmark.leaderboard.runs import Entry


def checkpoint_of(path: Path) -> str:
    """The checkpoint sha256 a results file records ("" if unreadable)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return str((doc.get("model") or {}).get("checkpoint_sha256") or "")
    except (OSError, ValueError, AttributeError):
        return ""


def copy_raw_files(
    entry: Entry, results_root: Path, out: Path
) -> tuple[dict[str, str], dict[str, str]]:
    """Copy every version of ``entry``'s runs to ``out/raw/``.

    Returns:
        The sha256 of each copied file, and for each older version that evaluated another
        checkpoint than the entry's, that checkpoint's sha256 (the entry page says it was an
        earlier training of the recipe, replaced).
    """
    sha256: dict[str, str] = {}
    replaced: dict[str, str] = {}
    for run in entry.runs:
        for rel in [run.path, *run.older]:
            target = out / "raw" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(results_root / rel, target)
            sha256[rel] = file_sha256(target)
        for rel in run.older:
            other = checkpoint_of(results_root / rel)
            if other and other != entry.checkpoint:
                replaced[rel] = other
    return sha256, replaced


__all__ = ["checkpoint_of", "copy_raw_files"]
