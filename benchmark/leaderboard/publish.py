"""Add a results file to the published set (``bench leaderboard add``).

Published files are immutable: a re-evaluation is a new run id, written beside the older
versions of its run folder, and nothing is ever overwritten. Every publication appends the
file's sha256 to the folder's ledger (:mod:`benchmark.leaderboard.ledger`), which the build
checks. A file is accepted only if it
validates against the results schema and its provenance is complete: versions of the
package, torch and torchattacks, the data's and the checkpoint's sha256, and the git commit of
a clean checkout, in which git tracks every file of the evaluated submission, unedited, and,
unless the submission is a pinned built-in, a run whose defense ran in the sandbox.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from benchmark.defenses.isolation import BUILTIN_SHA256
from benchmark.errors import LedgerError, ResultsError
from benchmark.leaderboard.ledger import (
    changed_after_publication,
    file_sha256,
    ledger_for_append,
    missing_after_publication,
    record_publication,
)
from benchmark.results.conformance import ranked_run_problems
from benchmark.results.corruption_protocols import CURRENT_CORRUPTION_PROTOCOL
from benchmark.results.naming import result_path
from benchmark.results.protocols import CURRENT_PROTOCOL, track_protocol
from benchmark.results.schema import read_result
from benchmark.results.transfer import SCHEMA as TRANSFER_SCHEMA
from benchmark.results.transfer import read_transfer, transfer_file

REQUIRED_VERSIONS = ("medrobustbench", "torch", "torchattacks")


def provenance_problems(doc: dict) -> list[str]:
    """What a results document lacks to be published (empty: complete)."""
    problems = []
    versions = doc.get("versions") or {}
    problems += [f"versions.{k}" for k in REQUIRED_VERSIONS if not versions.get(k)]
    if not (doc.get("data") or {}).get("sha256"):
        problems.append("data.sha256")
    if not (doc.get("model") or {}).get("checkpoint_sha256"):
        problems.append("model.checkpoint_sha256")
    git = doc.get("git") or {}
    if not git.get("commit"):
        problems.append("git.commit")
    elif git.get("dirty"):
        problems.append("git.dirty (the run used uncommitted code)")
    # `git.dirty` looks at tracked files only: a submission folder git does not track (or an
    # edited one) shows in the defense's file list, recorded since that list exists.
    files = (doc.get("defense") or {}).get("files") or []
    uncommitted = [f["path"] for f in files if not f.get("tracked") or f.get("modified")]
    if uncommitted:
        problems.append(f"defense.files (the submission's {', '.join(uncommitted)} not committed)")
    problems += isolation_problems(doc)
    return problems


def isolation_problems(doc: dict) -> list[str]:
    """A submission that is not a pinned built-in must have run in the sandbox. Results from
    before the record existed say nothing and are not judged. The record guards against an
    unsandboxed run published by mistake; it is the submitter's file, so the check that a
    stranger's numbers hold is the maintainer's re-run of the bundle, in the sandbox."""
    defense = doc.get("defense") or {}
    isolation = defense.get("isolation")
    if not isolation or isolation.get("mode") == "sandbox":
        return []
    if BUILTIN_SHA256.get(str(defense.get("id"))) == defense.get("sha256"):
        return []
    return [
        "defense.isolation (a submission that is not a pinned built-in ran unsandboxed; "
        "evaluate it with --isolation sandbox)"
    ]


def add_result(path: Path, root: Path, *, exploratory: bool = False) -> tuple[Path, bool]:
    """Copy ``path`` into the published set under ``root`` and record it in the ledger;
    returns the target and whether it was newly added (False: the identical file is already
    published, and nothing changes).

    A file already at its place under ``root`` but not in the ledger (``bench evaluate --out``
    wrote it there) is published in place. The ledger must be intact, and a folder with
    published files must have one (``bench leaderboard ledger --init``).

    A run that is not a conformant run of the current protocol of its track (full test split,
    the protocol's attacks and budgets, its recorded id, version and sha256; a run of an older
    version is conformant to that version only) could only ever be listed as exploratory: it
    is refused unless ``exploratory`` says that is what is meant.
    """
    if _is_transfer_matrix(path):
        return add_transfer(path, root)
    doc = read_result(path)
    problems = provenance_problems(doc)
    if problems:
        raise ResultsError(
            f"{path} cannot be published: incomplete provenance ({', '.join(problems)}); "
            "re-run the evaluation from a clean checkout"
        )
    off_protocol = ranked_run_problems(doc)
    current = track_protocol(CURRENT_PROTOCOL, (doc.get("defense") or {}).get("kind"))
    if off_protocol and not exploratory:
        raise ResultsError(
            f"{path} is not a protocol run ({'; '.join(off_protocol)}); run `bench evaluate "
            f"--protocol {current.id}` (or --corruptions {CURRENT_CORRUPTION_PROTOCOL.id}) "
            "for a ranked entry, or pass --exploratory to publish it unranked"
        )
    target = result_path(root, doc)  # refuses path components that are not plain names
    return _publish(path, root, target, doc.get("created_at"))


def _is_transfer_matrix(path: Path) -> bool:
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False  # read_result says what is wrong with it
    return isinstance(doc, dict) and doc.get("schema") == TRANSFER_SCHEMA


def add_transfer(path: Path, root: Path) -> tuple[Path, bool]:
    """Publish a transfer matrix (``bench transfer``) like a results file: checked
    (:func:`~benchmark.results.transfer.read_transfer`), computed from committed code, placed
    at ``<root>/<dataset>/transfer/<protocol>_<time>.json`` and recorded in the ledger."""
    matrix = read_transfer(path)
    git = matrix.doc.get("git") or {}
    if not git.get("commit") or git.get("dirty"):
        raise ResultsError(
            f"{path} cannot be published: computed from uncommitted code (git.dirty) or without "
            "a commit; compute it again from a clean checkout"
        )
    target = transfer_file(root, matrix.dataset, matrix.protocol, matrix.doc["created_at"])
    return _publish(path, root, target, matrix.doc["created_at"])


def _publish(path: Path, root: Path, target: Path, created_at: str | None) -> tuple[Path, bool]:
    """Copy ``path`` to ``target`` under ``root`` (never over other bytes) and record it."""
    if not target.resolve().is_relative_to(root.resolve()):
        raise ResultsError(f"{path} would be published outside {root}; the file is malformed")
    rel = target.relative_to(root).as_posix()
    lines = ledger_for_append(root)
    listed = {line.path: line for line in lines}.get(rel)
    digest = file_sha256(path)
    if target.exists():
        if file_sha256(target) != digest:
            raise ResultsError(
                f"{target} is already published with different content; published files are "
                "immutable: re-run to get a new file name"
            )
        if listed is not None and listed.sha256 != digest:
            raise LedgerError([changed_after_publication(target, listed.sha256, digest)])
        if listed is not None:
            return target, False
        # Written into the results folder by `bench evaluate --out`: published in place.
    elif listed is not None:
        raise LedgerError([missing_after_publication(target, listed.seq)])
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".json.tmp")
        shutil.copyfile(path, tmp)
        tmp.replace(target)
    record_publication(root, lines, rel, digest, created_at)
    return target, True
