"""The leaderboard's data: published results files as runs, grouped into entries.

* A **run** is one results file; a run folder (``<dataset>/<suite>/<model>[__<defense>]/``)
  keeps every version, the newest is current and the older ones stay reachable.
* An **entry** is one checkpoint under one defense configuration on one dataset: the current
  runs of every suite evaluated for it (e.g. the ``defense`` screen and the ``medrdf``
  protocol). A model id retrained to another checkpoint is another entry, so no row mixes
  numbers of two checkpoints; its label names the checkpoint where the id alone is ambiguous.

Files that do not validate against the results schema are reported by name with the reason
and left out; everything else is built. The leaderboards themselves are ranked in
:mod:`benchmark.leaderboard.ranking`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.errors import BenchmarkError
from benchmark.results.diagnostics import results_files
from benchmark.results.naming import ThreatModel, defense_label, result_path
from benchmark.results.schema import read_result
from benchmark.results.view import RunView

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run(RunView):
    """One results file (a :class:`~benchmark.results.view.RunView` whose ``path`` is relative
    to the results root) and the older versions of the same run folder (relative paths,
    newest first)."""

    older: list[str] = field(default_factory=list)


@dataclass
class Entry:
    """A checkpoint under one defense configuration on one dataset, with its current runs."""

    key: str
    dataset: str
    model_id: str
    arch: str
    defense: str | None
    defense_params: dict[str, Any]
    runs: list[Run]
    checkpoint: str = ""
    #: Another entry has the same model id and defense with another checkpoint.
    ambiguous: bool = False

    @property
    def label(self) -> str:
        label = defense_label({"defense": self.defense, "defense_params": self.defense_params})
        return f"{label} (checkpoint {self.checkpoint[:8]})" if self.ambiguous else label

    @property
    def slug(self) -> str:
        """File-name-safe and unique: the readable key plus 8 hex digits of its sha256."""
        readable = re.sub(r"[^A-Za-z0-9_.=,-]+", "-", self.key.replace("/", "--"))
        return f"{readable}-{hashlib.sha256(self.key.encode()).hexdigest()[:8]}"

    def defense_block(self) -> dict[str, Any]:
        """The newest run's ``defense`` block (empty when undefended)."""
        for run in reversed(self.runs):
            if run.defense_block:
                return run.defense_block
        return {}

    def newest(self) -> Run:
        return max(self.runs, key=lambda r: r.created_at)


@dataclass
class Invalid:
    """A results file left out of the site, and why."""

    path: str
    reason: str


def load_runs(root: Path) -> tuple[list[Run], list[Invalid]]:
    """Every results file under ``root``: the newest version per run folder as a run (the
    others listed in ``older``), and the invalid files with their reasons."""
    folders: dict[Path, list[tuple[Path, dict[str, Any]]]] = {}
    invalid: list[Invalid] = []
    for path in results_files(root):
        rel = path.relative_to(root).as_posix()
        try:
            doc = read_result(path)
            result_path(Path("."), doc)  # names used in pages and paths must be plain
        except BenchmarkError as exc:
            reason = str(exc).replace(str(path), rel)  # no machine-specific path in the site
            invalid.append(Invalid(rel, reason))
            logger.warning("left out %s: %s", rel, reason)
            continue
        folders.setdefault(path.parent, []).append((path, doc))
    runs = []
    for _, versions in sorted(folders.items()):
        versions.sort(key=lambda v: (v[1]["created_at"], v[0].name))
        newest_path, newest_doc = versions[-1]
        older = [p.relative_to(root).as_posix() for p, _ in reversed(versions[:-1])]
        runs.append(Run(newest_doc, newest_path.relative_to(root).as_posix(), older))
    return runs, invalid


def group_entries(runs: list[Run]) -> list[Entry]:
    """Entries: runs of the same dataset, checkpoint and defense configuration (the key is
    ``dataset/model_id[@sha256 prefix][/defense,params]``)."""
    groups: dict[str, Entry] = {}
    for run in runs:
        params = run.defense_params
        key = run.entry_key
        entry = groups.get(key)
        if entry is None:
            entry = groups[key] = Entry(
                key,
                run.dataset,
                run.model_id,
                run.config["arch"],
                run.defense,
                params,
                [],
                run.checkpoint_sha256,
            )
        entry.runs.append(run)
    checkpoints: dict[tuple[str, str, str], set[str]] = {}
    for entry in groups.values():
        entry.runs.sort(key=lambda r: (r.suite, r.path))
        checkpoints.setdefault(_same_name(entry), set()).add(entry.checkpoint)
    for entry in groups.values():
        entry.ambiguous = len(checkpoints[_same_name(entry)]) > 1
    return [groups[k] for k in sorted(groups)]


def _same_name(entry: Entry) -> tuple[str, str, str]:
    """What a reader sees as one entry: dataset, model id and defense label."""
    return entry.dataset, entry.model_id, entry.key.split("/", 2)[2] if entry.defense else ""


def entry_facts(entry: Entry) -> dict[str, Any]:
    """What a leaderboard row shows besides the attacks: clean accuracy, mFP, corruption
    accuracy, abstain rate, inference cost, training time (None where not measured)."""
    newest = entry.newest()
    facts: dict[str, Any] = {
        "clean": newest.clean_accuracy.value,
        "mfp": None,
        "corruption_accuracy": None,
        "abstain": None,
        "ms_per_image": None,
        "overhead": None,
        "training_hours": (newest.doc.get("model", {}).get("card") or {}).get(
            "training_time_hours"
        ),
    }
    for run in entry.runs:
        if run.sequences and facts["mfp"] is None:
            facts["mfp"] = run.mfp
        if run.severity and facts["corruption_accuracy"] is None:
            facts["corruption_accuracy"] = run.corruption_accuracy
        if run.clean_votes and facts["abstain"] is None:
            facts["abstain"] = run.clean_votes["abstain_rate"]
        if run.cost.get("overhead") and facts["overhead"] is None:
            facts["ms_per_image"] = run.cost["defended_ms_per_image"]
            facts["overhead"] = run.cost["overhead"]
    return facts


def flags(entry: Entry) -> list[str]:
    """Badges of an entry: randomized, adaptive evaluation, and every run's flags."""
    out: list[str] = []
    d = entry.defense_block()
    if d.get("randomized"):
        out.append("randomized")
    if any(r.strongest_threat_model() is ThreatModel.ADAPTIVE for r in entry.runs):
        out.append("adaptive evaluation")
    elif entry.defense:
        out.append("oblivious evaluation only")
    for r in entry.runs:
        for f in r.flags:
            if f not in out:
                out.append(f)
    return out
