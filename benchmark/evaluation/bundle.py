"""Submission bundles: one reviewable archive a maintainer re-runs with one command.

``bench submit SUBMISSION RESULT.json...`` checks the submission (it loads and passes the
conformance suite), checks that every results file is a protocol run of exactly these files
(the defense's recorded sha256 is the folder's digest now), and writes
``<id>-<digest[:12]>.bundle.tar.gz`` holding:

* ``submission/<id>/<files>``: every file of the submission folder;
* ``results/<name>.json``: the results files;
* ``MANIFEST.json``: the sha256 of every member, the submission's id and digest, the
  environment the bundle was made in, and the command that re-runs it.

``bench submit --rerun BUNDLE`` (:func:`rerun_bundle`) checks every member against the
manifest, evaluates each results file's configuration again (its protocol, dataset, model,
seed and defense parameters, with the bundled submission) into a fresh cache, and compares the
new run with the bundled one image by image: per attack block the number of images whose
outcome moved, and the clean and worst-case figures. On the same CPU and torch build a run is
deterministic, so a faithful bundle re-runs to zero moved images; another device may move a few
(see ``benchmarks/device_parity.py``).

Only protocol runs are bundled: their configuration is the protocol's, so it can be evaluated
again from the record alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.defenses.isolation import close_submission, open_submission, validate
from benchmark.defenses.sandbox import SandboxLimits
from benchmark.defenses.submissions import describe_folder, submission_files
from benchmark.errors import ResultsError
from benchmark.results.conformance import ranked_run_problems
from benchmark.results.io import ARCHIVE_MANIFEST, write_archive
from benchmark.results.outcomes import read_outcomes
from benchmark.results.provenance import environment, git_commit
from benchmark.results.schema import read_result

logger = logging.getLogger(__name__)

MANIFEST = ARCHIVE_MANIFEST
BUNDLE_VERSION = 1


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_bundle(
    submission: str | Path,
    results: list[Path],
    out_dir: Path,
    isolation: str | None = None,
    limits: SandboxLimits | None = None,
) -> Path:
    """Check ``submission`` (in the sandbox unless ``isolation`` says otherwise) and its
    protocol ``results`` and write their bundle into ``out_dir``; returns the bundle's path.

    Raises:
        SubmissionError: the submission does not load or fails the conformance suite.
        ResultsError: no results, a results file of another submission or other files, or
            one that is not a conformant protocol run.
    """
    sub = open_submission(submission, isolation, limits)
    try:
        validate(sub)
    finally:
        close_submission(sub)
    if sub.path is None:
        raise ResultsError(f"submission '{sub.id}' has no folder to bundle")
    if not results:
        raise ResultsError(
            f"a bundle needs the submission's protocol results: run `bench evaluate --protocol "
            f"... --defense {sub.id}` and pass the results file"
        )
    members: dict[str, bytes] = {}
    for path in submission_files(sub.path):
        members[f"submission/{sub.id}/{path.relative_to(sub.path).as_posix()}"] = path.read_bytes()
    for path in results:
        doc = read_result(path)
        defense = doc.get("defense") or {}
        if defense.get("id") != sub.id or defense.get("sha256") != sub.sha256:
            raise ResultsError(
                f"{path} was not made with these files of '{sub.id}' (it records "
                f"{defense.get('id')} sha256 {str(defense.get('sha256'))[:12]}, the folder is "
                f"{sub.sha256[:12]} now): evaluate the submission as it is"
            )
        problems = ranked_run_problems(doc)
        if problems:
            raise ResultsError(f"{path} is not a conformant protocol run: {problems[0]}")
        members[f"results/{path.name}"] = path.read_bytes()
    manifest = {
        "bundle_version": BUNDLE_VERSION,
        "submission": {"id": sub.id, "sha256": sub.sha256},
        "members": {name: _sha(data) for name, data in sorted(members.items())},
        "environment": environment(),
        "made_at_commit": git_commit(),
        "rerun": "bench submit --rerun BUNDLE --data-dir DATA",
    }
    return write_archive(out_dir / f"{sub.id}-{sub.sha256[:12]}.bundle.tar.gz", members, manifest)


def _extract(bundle: Path, into: Path) -> dict[str, Any]:
    """Unpack ``bundle`` into ``into`` after checking every member against the manifest."""
    with tarfile.open(bundle, "r:gz") as tar:
        names = tar.getnames()
        if MANIFEST not in names:
            raise ResultsError(f"{bundle} has no {MANIFEST}: not a submission bundle")
        manifest = json.loads(tar.extractfile(MANIFEST).read())  # type: ignore[union-attr]
        expected = manifest.get("members") or {}
        for member in tar.getmembers():
            if member.name == MANIFEST:
                continue
            if not member.isfile() or member.name not in expected:
                raise ResultsError(f"{bundle}: member {member.name} is not in the manifest")
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            if _sha(data) != expected[member.name]:
                raise ResultsError(
                    f"{bundle}: {member.name} does not match its sha256 in the manifest"
                )
            dest = (into / member.name).resolve()
            if not dest.is_relative_to(into.resolve()):
                raise ResultsError(f"{bundle}: member {member.name} points outside the bundle")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        missing = sorted(set(expected) - set(names))
        if missing:
            raise ResultsError(f"{bundle}: {missing[0]} is in the manifest but not in the bundle")
    return manifest


@dataclass
class Comparison:
    """A bundled run against its re-run: images whose outcome moved, per block."""

    result: str
    rerun_path: Path
    moved: dict[str, int] = field(default_factory=dict)
    figures: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return not any(self.moved.values())


def _block_key(block: dict[str, Any]) -> str:
    return f"{block['cell_id']} [{block.get('threat_model', 'white-box')}]"


def compare_runs(name: str, old: dict[str, Any], new: dict[str, Any], path: Path) -> Comparison:
    """Per-image comparison of two runs of the same configuration."""
    n = int(old["data"]["n"])
    out = Comparison(name, path)
    pairs = [("clean", old["metrics"]["clean"], new["metrics"]["clean"])]
    new_blocks = {_block_key(b): b for b in new.get("attacks", [])}
    for block in old.get("attacks", []):
        key = _block_key(block)
        if key not in new_blocks:
            raise ResultsError(f"the re-run of {name} has no block {key}")
        pairs.append((key, block, new_blocks[key]))
    if old.get("corruption_protocol"):  # a corruption-protocol run: every (corruption, severity)
        new_rows = {r["id"]: r for r in new["corruptions"]["severity"]["corruptions"]}
        severities = old["corruptions"]["severity"]["severities"]
        for row in old["corruptions"]["severity"]["corruptions"]:
            other = new_rows.get(row["id"])
            if other is None:
                raise ResultsError(f"the re-run of {name} has no corruption {row['id']}")
            for i, severity in enumerate(severities):
                pairs.append(
                    (
                        f"{row['id']} severity {severity}",
                        {"outcomes": row["outcomes"][i]},
                        {"outcomes": other["outcomes"][i]},
                    )
                )
    for key, a, b in pairs:
        oa, ob = read_outcomes(a.get("outcomes"), n), read_outcomes(b.get("outcomes"), n)
        if oa is None or ob is None:
            raise ResultsError(f"{name}: block {key} has no per-image outcomes to compare")
        out.moved[key] = int(np.sum(oa != ob))
        out.figures[key] = (float(oa.mean()), float(ob.mean()))
    return out


def rerun_bundle(
    bundle: Path,
    *,
    data_dir: str | Path | None = None,
    zoo: Any = None,
    out_dir: Path | None = None,
    cache_dir: Path | None = None,
    isolation: str | None = None,
    limits: SandboxLimits | None = None,
) -> list[Comparison]:
    """Check ``bundle``, evaluate each of its results' configurations again with the bundled
    submission (in the sandbox unless ``isolation`` says otherwise: a bundle is a stranger's
    code), and compare image by image (see the module docstring)."""
    from benchmark.evaluation.cache import AdversarialCache
    from benchmark.evaluation.config import EvaluationConfig
    from benchmark.evaluation.runner import evaluate

    work = Path(tempfile.mkdtemp(prefix="mrb-bundle-"))
    manifest = _extract(bundle, work)
    sid = str((manifest.get("submission") or {}).get("id", ""))
    if not re.fullmatch(r"[a-z][a-z0-9_]*", sid):
        raise ResultsError(f"{bundle}: the manifest's submission id {sid!r} is not a plain id")
    folder = work / "submission" / sid
    if describe_folder(folder)[0] != manifest["submission"]["sha256"]:
        raise ResultsError(f"{bundle}: the bundled submission's digest is not the manifest's")
    comparisons = []
    for result in sorted((work / "results").glob("*.json")):
        old = read_result(result)
        cfg = old["config"]
        config = EvaluationConfig.from_options(
            dataset=cfg["dataset"],
            arch=cfg["arch"],
            protocol=(old.get("protocol") or {}).get("id"),
            corruptions=cfg.get("corruption_suite") if old.get("corruption_protocol") else None,
            defense=str(folder),
            defense_params=[f"{k}={json.dumps(v)}" for k, v in cfg["defense_params"].items()],
            size=cfg.get("image_size"),
            seed=cfg["seed"],
            batch_size=str(cfg["batch_size"]),
        )
        new, path = evaluate(
            config,
            data_dir=data_dir,
            zoo=zoo,
            out_dir=out_dir or work / "rerun",
            cache=AdversarialCache(cache_dir or work / "cache"),
            progress=False,
            isolation=isolation,
            sandbox_limits=limits,
        )
        comparisons.append(compare_runs(result.name, old, new, path))
    return comparisons


__all__ = ["Comparison", "compare_runs", "make_bundle", "rerun_bundle"]
