"""The results ledger: every published file's sha256 in an append-only, hash-chained log.

``LEDGER.jsonl`` in the results folder holds one line per publication::

    {"added_at":"2026-11-22T03:06:51Z","path":"<dataset>/<suite>/<run folder>/<run_id>.json",
     "prev":"<sha256 of the previous line>","seq":1,"sha256":"<sha256 of the file's bytes>"}

Each line is canonical JSON (sorted keys, no spaces) and ``prev`` is the sha256 of the previous
line's text (64 zeros on the first), so editing, dropping or reordering a line breaks the chain
at the next one; the sha256 of the last line, the *head*, stands for the whole log (the site
shows it). ``added_at`` is the result's own ``created_at``, not the clock, so the same files
give the same ledger on every machine.

:func:`verify_ledger` is what ``bench leaderboard build`` checks before it writes anything: the
chain is intact, every ``*.json`` under the folder is listed with its current sha256 (a file
edited after publication is named), every listed file exists, and none is unlisted (a file
copied in by hand). ``bench leaderboard add`` appends the lines (:func:`record_publication`);
:func:`init_ledger` writes the first ledger of a folder published before the ledger existed.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from benchmark.errors import LedgerError
from benchmark.results.diagnostics import results_files
from benchmark.results.transfer import transfer_files

LEDGER = "LEDGER.jsonl"
"""The ledger's file name, in the results folder's root."""
GENESIS = "0" * 64
"""``prev`` of the first line, and the head of an empty ledger."""
_KEYS = {"seq", "path", "sha256", "prev", "added_at"}


@dataclass(frozen=True)
class LedgerLine:
    """One publication: the file (relative posix path), its sha256, and the chain link."""

    seq: int
    path: str
    sha256: str
    prev: str
    added_at: str | None

    @property
    def text(self) -> str:
        """The canonical text of the line (without the newline)."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @property
    def digest(self) -> str:
        """sha256 of :attr:`text`: the next line's ``prev``."""
        return hashlib.sha256(self.text.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read now (no cache: a tamper check must see the bytes)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def changed_after_publication(path: Path, published: str, now: str) -> str:
    """The problem line of a file whose bytes differ from its ledger line."""
    return (
        f"{path} changed after publication (sha256 {published[:12]} in the ledger, {now[:12]} "
        "now); published files are immutable: restore it from git, and to change a result "
        "re-run the evaluation and publish the new run"
    )


def missing_after_publication(path: Path, seq: int) -> str:
    """The problem line of a published file that is gone."""
    return (
        f"{path} was published (ledger line {seq}) but is missing: published files are never "
        "removed; restore it from git"
    )


def ledger_path(root: Path) -> Path:
    """Where the ledger of the results folder ``root`` lives."""
    return root / LEDGER


def published_files(root: Path) -> list[str]:
    """The published files under ``root``, what the site is built from, as sorted relative
    posix paths: the results files (every ``*.json`` outside the ``diagnostics/`` figure and
    ``transfer/`` matrix folders) and the transfer matrices (``<dataset>/transfer/*.json``)."""
    paths = [*results_files(root), *transfer_files(root)]
    return sorted(p.relative_to(root).as_posix() for p in paths)


def head(lines: list[LedgerLine]) -> str:
    """The head hash: the sha256 of the last line (:data:`GENESIS` when empty)."""
    return lines[-1].digest if lines else GENESIS


def _plain(path: object) -> bool:
    if not isinstance(path, str) or not path.endswith(".json") or "\\" in path:
        return False
    pure = PurePosixPath(path)
    return not pure.is_absolute() and ".." not in pure.parts and pure.as_posix() == path


_HEX = re.compile(r"[0-9a-f]{64}")


def _is_hex(value: object) -> bool:
    return isinstance(value, str) and _HEX.fullmatch(value) is not None


def _parse(root: Path) -> tuple[list[LedgerLine], list[str]]:
    """The ledger's lines and the problems of the log itself (form and chain)."""
    name = ledger_path(root)
    text = name.read_bytes().decode("utf-8", errors="replace")
    problems: list[str] = []
    if text and not text.endswith("\n"):
        problems.append(f"{name} does not end with a newline: its last line was edited")
    lines: list[LedgerLine] = []
    prev, first_seen = GENESIS, {}
    for n, raw in enumerate(text.splitlines(), start=1):
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError:
            obj = None
        ok = isinstance(obj, dict) and set(obj) == _KEYS
        if ok:
            ok = (
                isinstance(obj["seq"], int)
                and _plain(obj["path"])
                and _is_hex(obj["sha256"])
                and _is_hex(obj["prev"])
                and (obj["added_at"] is None or isinstance(obj["added_at"], str))
            )
        if not ok:
            problems.append(f"{name} line {n} is not a ledger line: the ledger was edited")
            prev = hashlib.sha256(raw.encode()).hexdigest()
            continue
        line = LedgerLine(**obj)
        if line.text != raw:
            problems.append(f"{name} line {n} is not in canonical form: the ledger was edited")
        if line.prev != prev:
            problems.append(
                f"{name} line {n} does not follow line {n - 1} (prev {line.prev[:12]}, the "
                f"hash of line {n - 1} is {prev[:12]}): the ledger was edited; restore it from git"
            )
        if line.seq != n:
            problems.append(f"{name} line {n} has seq {line.seq}: the ledger was edited")
        if line.path in first_seen:
            problems.append(
                f"{name} line {n} lists {line.path} again (first on line "
                f"{first_seen[line.path]}): a published file is never replaced"
            )
        first_seen.setdefault(line.path, n)
        lines.append(line)
        prev = hashlib.sha256(raw.encode()).hexdigest()
    return lines, problems


def read_ledger(root: Path) -> list[LedgerLine]:
    """The lines of ``root``'s ledger; raises :class:`LedgerError` if there is none or the log
    itself is damaged (files are not checked: see :func:`verify_ledger`)."""
    if not ledger_path(root).is_file():
        raise LedgerError([f"{ledger_path(root)} does not exist"])
    lines, problems = _parse(root)
    if problems:
        raise LedgerError(problems)
    return lines


def verify_ledger(root: Path) -> list[str]:
    """Every problem of ``root``'s ledger and files, one line each (empty: all published files
    are exactly as published). A missing ledger is a problem."""
    name = ledger_path(root)
    if not name.is_file():
        return [f"{name} does not exist: run `bench leaderboard ledger --init --root {root}` once"]
    lines, problems = _parse(root)
    listed = {}
    for line in lines:
        listed.setdefault(line.path, line)
    on_disk = published_files(root)
    for rel in on_disk:
        line = listed.get(rel)
        if line is None:
            problems.append(
                f"{root / rel} is not in the ledger (not published with `bench leaderboard "
                f"add`): publish it with `bench leaderboard add {root / rel}` or remove it"
            )
            continue
        now = file_sha256(root / rel)
        if now != line.sha256:
            problems.append(changed_after_publication(root / rel, line.sha256, now))
    for rel in sorted(set(listed) - set(on_disk)):
        problems.append(missing_after_publication(root / rel, listed[rel].seq))
    return problems


def _write(root: Path, lines: list[LedgerLine]) -> None:
    """Write the ledger atomically (a temporary file, then a rename)."""
    tmp = ledger_path(root).with_suffix(".jsonl.tmp")
    tmp.write_text("".join(f"{line.text}\n" for line in lines), encoding="utf-8")
    tmp.replace(ledger_path(root))


def ledger_for_append(root: Path) -> list[LedgerLine]:
    """The lines a new publication is appended to: the intact ledger, or none for a folder
    that has no published file yet. Raises :class:`LedgerError` for a damaged ledger, and for
    a folder with published files but no ledger (it needs :func:`init_ledger` first)."""
    if ledger_path(root).is_file():
        return read_ledger(root)
    if root.is_dir() and published_files(root):
        raise LedgerError(
            [
                f"{root} holds published results but no {LEDGER}: run `bench leaderboard "
                f"ledger --init --root {root}` once, then publish"
            ]
        )
    return []


def record_publication(
    root: Path, lines: list[LedgerLine], rel: str, sha256: str, added_at: str | None
) -> LedgerLine:
    """Append the publication of ``root/rel`` (``sha256`` of its bytes) to the ledger, whose
    lines are ``lines`` (:func:`ledger_for_append`, read before the file was copied in)."""
    line = LedgerLine(len(lines) + 1, rel, sha256, head(lines), added_at)
    root.mkdir(parents=True, exist_ok=True)
    _write(root, [*lines, line])
    return line


def _created_at(path: Path) -> str | None:
    try:
        value = json.loads(path.read_bytes()).get("created_at")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def init_ledger(root: Path) -> list[LedgerLine]:
    """Write the first ledger of ``root``: a line for every results file already there, in
    sorted path order. Refused when a ledger exists (it is append-only)."""
    if not root.is_dir():
        raise LedgerError([f"results folder {root} does not exist; pass --root"])
    if ledger_path(root).exists():
        raise LedgerError(
            [f"{ledger_path(root)} exists: the ledger is append-only and written only once"]
        )
    lines: list[LedgerLine] = []
    for rel in published_files(root):
        path = root / rel
        lines.append(
            LedgerLine(len(lines) + 1, rel, file_sha256(path), head(lines), _created_at(path))
        )
    _write(root, lines)
    return lines
