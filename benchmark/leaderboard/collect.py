"""The leaderboard's data: published results files grouped into entries and leaderboards.

* A **run** is one results file; a run folder (``<dataset>/<suite>/<model>[__<defense>]/``)
  keeps every version, the newest is current and the older ones stay reachable.
* An **entry** is one model under one defense configuration on one dataset: the current runs
  of every suite evaluated for it (e.g. the ``defense`` screen and the ``medrdf`` protocol).
* A **leaderboard** is a dataset and a threat model: L-inf at one eps (ranked by the best
  known balanced worst-case robust accuracy: the lowest over the entry's runs, under the
  strongest threat model each run has, with plain worst-case accuracy beside it), or
  corruptions (ranked by mean flip probability, lower first).
  A defended run evaluated only obliviously is listed but not ranked: it makes no claim
  against an attacker who knows the defense.

Files that do not validate against the results schema are reported by name with the reason
and left out; everything else is built.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.errors import BenchmarkError
from benchmark.results.naming import defense_label, eps_label, result_path, run_suite
from benchmark.results.schema import read_result

logger = logging.getLogger(__name__)


@dataclass
class Run:
    """One results file: its path relative to the results root, the document, and the older
    versions of the same run folder (relative paths, newest first)."""

    path: str
    doc: dict[str, Any]
    older: list[str] = field(default_factory=list)

    @property
    def suite(self) -> str:
        return run_suite(self.doc["config"])

    @property
    def run_id(self) -> str:
        return str(self.doc["run_id"])

    @property
    def defended(self) -> bool:
        return bool(self.doc["config"].get("defense"))

    def strongest_threat_model(self) -> str:
        """The strongest threat model this run evaluated (adaptive beats oblivious)."""
        if not self.defended:
            return "white-box"
        by = self.doc.get("worst_case_by_threat_model") or {}
        return "adaptive" if "adaptive" in by else "oblivious"

    def worst_cases(self, threat_model: str | None = None) -> list[dict[str, Any]]:
        """Worst-case blocks of one threat model. By default the ranking's: robust to every
        attack of the run ("any": oblivious, adaptive and black-box together) when recorded,
        else the strongest threat model's."""
        by = self.doc.get("worst_case_by_threat_model")
        if not by:
            return list(self.doc.get("worst_case") or [])
        if threat_model is None:
            threat_model = "any" if "any" in by else self.strongest_threat_model()
        return list(by.get(threat_model, []))


@dataclass
class Entry:
    """A model under one defense configuration on one dataset, with its current runs."""

    key: str
    dataset: str
    model_id: str
    arch: str
    defense: str | None
    defense_params: dict[str, Any]
    runs: list[Run]

    @property
    def label(self) -> str:
        return defense_label({"defense": self.defense, "defense_params": self.defense_params})

    @property
    def slug(self) -> str:
        """File-name-safe and unique: the readable key plus 8 hex digits of its sha256."""
        readable = re.sub(r"[^A-Za-z0-9_.=,-]+", "-", self.key.replace("/", "--"))
        return f"{readable}-{hashlib.sha256(self.key.encode()).hexdigest()[:8]}"

    def defense_block(self) -> dict[str, Any]:
        """The newest run's ``defense`` block (empty when undefended)."""
        for run in reversed(self.runs):
            if run.doc.get("defense"):
                return run.doc["defense"]
        return {}

    def newest(self) -> Run:
        return max(self.runs, key=lambda r: r.doc["created_at"])


@dataclass
class Row:
    """One entry's line in one leaderboard."""

    entry: Entry
    key_value: float | None
    ranked: bool
    rank: int | None = None
    cells: dict[str, float] = field(default_factory=dict)
    threat_model: str = ""
    source: Run | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Board:
    """A leaderboard: one dataset and one threat model."""

    dataset: str
    kind: str  # "linf" or "corruptions"
    eps: float | None
    rows: list[Row]
    columns: list[str]
    chance: float | None = None
    """L-inf boards: the balanced score of a constant answer (1/K for K classes in the test
    subset), which is robust to every attack."""

    @property
    def slug(self) -> str:
        if self.kind == "corruptions":
            return f"{self.dataset}--corruptions"
        return f"{self.dataset}--linf-{eps_label(self.eps or 0).replace('/', '-')}"

    @property
    def title(self) -> str:
        if self.kind == "corruptions":
            return "corruptions"
        return f"L-inf {eps_label(self.eps or 0)}"

    @property
    def latest(self) -> str:
        dates = [r.source.doc["created_at"] for r in self.rows if r.source is not None]
        return max(dates) if dates else ""


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
    for path in sorted(root.rglob("*.json")):
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
        runs.append(Run(newest_path.relative_to(root).as_posix(), newest_doc, older))
    return runs, invalid


def group_entries(runs: list[Run]) -> list[Entry]:
    """Entries: runs of the same dataset, model and defense configuration."""
    groups: dict[str, Entry] = {}
    for run in runs:
        cfg = run.doc["config"]
        defense = cfg.get("defense")
        params = dict(cfg.get("defense_params") or {})
        key = f"{cfg['dataset']}/{cfg['model_id']}"
        if defense:
            key += "/" + defense + "".join(f",{k}={v}" for k, v in sorted(params.items()))
        entry = groups.get(key)
        if entry is None:
            entry = groups[key] = Entry(
                key, cfg["dataset"], cfg["model_id"], cfg["arch"], defense, params, []
            )
        entry.runs.append(run)
    for entry in groups.values():
        entry.runs.sort(key=lambda r: (r.suite, r.path))
    return [groups[k] for k in sorted(groups)]


LINF_BOARDS = (2 / 255, 4 / 255, 8 / 255)
"""The L-inf budgets that get a leaderboard (other budgets show on the entry pages)."""


def _linf_budgets(entries: list[Entry]) -> dict[str, set[float]]:
    out: dict[str, set[float]] = {}
    for e in entries:
        for run in e.runs:
            for w in run.worst_cases():
                if w["norm"] == "linf" and any(abs(w["eps"] - b) < 1e-9 for b in LINF_BOARDS):
                    out.setdefault(e.dataset, set()).add(round(w["eps"], 10))
    return out


def entry_facts(entry: Entry) -> dict[str, Any]:
    """What a leaderboard row shows besides the attacks: clean accuracy, mFP, corruption
    accuracy, abstain rate, inference cost, training time (None where not measured)."""
    newest = entry.newest().doc
    facts: dict[str, Any] = {
        "clean": newest["metrics"]["clean"]["accuracy"]["value"],
        "mfp": None,
        "corruption_accuracy": None,
        "abstain": None,
        "ms_per_image": None,
        "overhead": None,
        "training_hours": (newest.get("model", {}).get("card") or {}).get("training_time_hours"),
    }
    for run in entry.runs:
        doc = run.doc
        corr = doc.get("corruptions") or {}
        if corr.get("sequences") and facts["mfp"] is None:
            facts["mfp"] = corr["sequences"]["mfp"]
        if corr.get("severity") and facts["corruption_accuracy"] is None:
            facts["corruption_accuracy"] = corr["severity"]["mean_corruption_accuracy"]
        votes = doc["metrics"].get("clean_votes")
        if votes and facts["abstain"] is None:
            facts["abstain"] = votes["abstain_rate"]
        cost = (doc.get("defense") or {}).get("cost") or {}
        if cost.get("overhead") and facts["overhead"] is None:
            facts["ms_per_image"] = cost["defended_ms_per_image"]
            facts["overhead"] = cost["overhead"]
    return facts


def _attack_cells(run: Run, eps: float, threat_models: tuple[str, ...]) -> dict[str, float]:
    """Robust accuracy of each non-sanity attack cell of ``run`` at ``eps`` under the given
    threat models (lowest when a cell ran under several)."""
    cells: dict[str, float] = {}
    for a in run.doc.get("attacks", []):
        if a.get("sanity_only") or not a.get("bounded") or a.get("norm") != "linf":
            continue
        if abs(a["eps"] - eps) > 1e-9:
            continue
        if a.get("threat_model", "white-box") not in threat_models:
            continue
        params = a["config"]["params"]
        name = a["attack"] + (f"-{params['steps']}" if "steps" in params else "")
        acc = a["metrics"]["robust_accuracy"]["value"]
        cells[name] = min(acc, cells.get(name, acc))
    return cells


_STRONG = {
    "white-box": ("white-box",),
    "adaptive": ("adaptive", "black_box", "transfer", "oblivious"),
    "oblivious": ("oblivious", "transfer"),
}


def linf_board(dataset: str, eps: float, entries: list[Entry]) -> Board:
    """The L-inf ``eps`` leaderboard of ``dataset``. An entry's key is its best known balanced
    worst case: the lowest, over its runs (each under its strongest threat model), of the
    worst-case robust accuracy at ``eps`` averaged per class. The plain worst-case accuracy of
    the same run is shown beside it and breaks ties.

    Balanced, because the test sets are unbalanced (62.5 % pneumonia in PneumoniaMNIST): a
    defended model that answers the majority class for every attacked image keeps a high plain
    accuracy but scores 1/K balanced. An entry with a run at ``eps`` that predates the
    balanced figure is listed without a rank (that run might hold the lowest one), as is a
    defense evaluated only obliviously."""
    rows: list[Row] = []
    columns: list[str] = []
    for e in entries:
        if e.dataset != dataset:
            continue
        # Per run at this eps: (balanced or None, plain, run, threat model).
        found: list[tuple[float | None, float, Run, str]] = []
        cells: dict[str, float] = {}
        strongest = {r.strongest_threat_model() for r in e.runs}
        # An adaptive evaluation supersedes oblivious-only runs of the same entry.
        use = [
            r
            for r in e.runs
            if "adaptive" not in strongest
            or r.defended is False
            or r.strongest_threat_model() == "adaptive"
        ]
        for run in use:
            tm = run.strongest_threat_model()
            for w in run.worst_cases():
                if w["norm"] == "linf" and abs(w["eps"] - eps) < 1e-9:
                    plain = w["robust_accuracy"]["value"]
                    found.append((w.get("robust_balanced_accuracy"), plain, run, tm))
            for name, acc in _attack_cells(run, eps, _STRONG[tm]).items():
                cells[name] = min(acc, cells.get(name, acc))
        if not found:
            continue
        missing = [f for f in found if f[0] is None]
        if missing:
            # A run without the balanced figure might hold the lowest one: no key; the lowest
            # plain worst case is shown and the row names the run to re-run.
            key = None
            run, tm = missing[0][2], missing[0][3]
            plain = min(f[1] for f in found)
        else:
            # The key and the plain figure beside it come from the same run's block.
            key, plain, run, tm = min(found, key=lambda f: (f[0], f[1]))
        for name in cells:
            if name not in columns:
                columns.append(name)
        fooling = [
            a["metrics"]["fooling_ratio"]["value"]
            for r in use
            for a in r.doc.get("attacks", [])
            if not a.get("sanity_only")
            and a.get("norm") == "linf"
            and abs(a["eps"] - eps) < 1e-9
            and a.get("threat_model", "white-box") in _STRONG[r.strongest_threat_model()]
        ]
        details = {
            **entry_facts(e),
            "fooling_ratio": max(fooling) if fooling else None,
            "accuracy": plain,
            "unranked_reason": None,
        }
        if tm == "oblivious":
            details["unranked_reason"] = "evaluated only obliviously"
        elif missing:
            details["unranked_reason"] = (
                f"the {run.suite} run predates the balanced worst case: re-run it"
            )
        rows.append(
            Row(
                e,
                key,
                details["unranked_reason"] is None,
                cells=cells,
                threat_model=tm,
                source=run,
                details=details,
            )
        )
    _rank(rows, descending=True, tie="accuracy")
    present = {_classes_present(r.source.doc) for r in rows if r.source is not None} - {0}
    chance = 1.0 / max(present) if present else None
    return Board(dataset, "linf", eps, rows, columns, chance)


def _classes_present(doc: dict[str, Any]) -> int:
    """How many classes the run's test subset contains (those balanced accuracy averages)."""
    per_class = (doc["metrics"]["clean"].get("per_class_accuracy") or {}).get("per_class", {})
    return sum(1 for c in per_class.values() if c.get("n", 0) > 0)


def corruption_board(dataset: str, entries: list[Entry]) -> Board | None:
    """The corruption leaderboard of ``dataset``, ranked by mFP (lower first)."""
    rows: list[Row] = []
    for e in entries:
        if e.dataset != dataset:
            continue
        for run in e.runs:
            seq = (run.doc.get("corruptions") or {}).get("sequences")
            sev = (run.doc.get("corruptions") or {}).get("severity")
            if not seq and not sev:
                continue
            details = {
                "mfp": seq["mfp"] if seq else None,
                "relative_mfp": seq.get("relative_mfp") if seq else None,
                "corruption_accuracy": sev["mean_corruption_accuracy"] if sev else None,
                "suite": run.doc["config"].get("corruption_suite"),
            }
            key = details["mfp"]
            details = {**entry_facts(e), **details}
            rows.append(Row(e, key, key is not None, source=run, details=details))
    if not rows:
        return None
    _rank(rows, descending=False)
    return Board(dataset, "corruptions", None, rows, [])


def _rank(rows: list[Row], *, descending: bool, tie: str | None = None) -> None:
    """Sort ranked rows by key, then by ``details[tie]`` (rows equal on both share a rank),
    then the unranked ones the same way."""

    def value(v: float | None) -> float:
        v = v if v is not None else (-1.0 if descending else 2.0)
        return -v if descending else v

    def order(r: Row) -> tuple:
        second = value(r.details.get(tie)) if tie else 0.0
        return (not r.ranked, value(r.key_value), second, r.entry.key)

    rows.sort(key=order)
    rank, previous = 0, None
    for i, r in enumerate(rows):
        if not r.ranked:
            continue
        current = (r.key_value, r.details.get(tie) if tie else None)
        if current != previous:
            rank, previous = i + 1, current
        r.rank = rank


def boards(entries: list[Entry]) -> list[Board]:
    """Every leaderboard: per dataset, one per L-inf budget and one for corruptions."""
    out: list[Board] = []
    budgets = _linf_budgets(entries)
    for dataset in sorted({e.dataset for e in entries}):
        for eps in sorted(budgets.get(dataset, ())):
            out.append(linf_board(dataset, eps, entries))
        cb = corruption_board(dataset, entries)
        if cb is not None:
            out.append(cb)
    return out


def flags(entry: Entry) -> list[str]:
    """Badges of an entry: randomized, adaptive evaluation, and every run's flags."""
    out: list[str] = []
    d = entry.defense_block()
    if d.get("randomized"):
        out.append("randomized")
    if any(r.strongest_threat_model() == "adaptive" for r in entry.runs):
        out.append("adaptive evaluation")
    elif entry.defense:
        out.append("oblivious evaluation only")
    for r in entry.runs:
        for f in r.doc.get("flags", []):
            if f not in out:
                out.append(f)
    return out
