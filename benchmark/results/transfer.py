"""The transfer threat model: a dataset's transfer matrix, its protocol and its file.

An attacker without access to a deployed model crafts adversarial examples on a model of their
own and submits them (MDDA Sec. 4.3, "cross-architectural" attacks; Papernot et al. 2017).
The transfer matrix of a dataset answers, for every pair, how well the examples crafted on
*source* (a zoo checkpoint, white-box on that checkpoint alone) fool *target* (a board entry:
a checkpoint with its defense, scored exactly as its protocol run scores it, worst of its
draws for a randomized defense).

One versioned protocol fixes every number of a matrix (:data:`MRB_TRANSFER_V1`): the whole
test split, the budget and the transfer attacks with their published settings. A cell's
figure is the accuracy of the target on the examples of the source, per attack and worst over
the attacks (an image counts as correct only if it survives every attack), with n, a Wilson
95 % interval and the per-image outcomes, so anyone can recompute it. The file lives at
``<results root>/<dataset>/transfer/<protocol id>.json``; results walkers skip ``transfer/``
folders (:func:`~benchmark.results.diagnostics.results_files`), because a matrix is not a
results file.

Pure data and numpy (no torch): the evaluation writes the document
(:mod:`benchmark.evaluation.transfer_matrix`), the leaderboard reads it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.errors import ResultsError
from benchmark.results.naming import eps_label
from benchmark.results.outcomes import read_labels, read_outcomes

TRANSFER = "transfer"
"""The folder of a dataset's transfer matrices, beside its suites (one of
:data:`~benchmark.results.naming.SIDE_FOLDERS`)."""
SCHEMA = "medrobustbench-transfer-1"
"""Version of the transfer-matrix file format."""


@dataclass(frozen=True)
class TransferProtocol:
    """A versioned transfer protocol.

    Attributes:
        id: protocol id (its major version is part of it).
        version: full version; any change to what it resolves to bumps it.
        eps: the L-inf budget on the [0, 1] pixel scale.
        attacks: ``(attack id, parameters)`` of every transfer attack, at its published budget.
        split: the split scored, always whole.
        description: one line.
        reference: where the attacks and their settings come from.
    """

    id: str
    version: str
    eps: float
    attacks: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]
    split: str = "test"
    description: str = ""
    reference: str = ""

    def resolved(self) -> dict[str, Any]:
        """The protocol as JSON data (what its sha256 covers)."""
        return {
            "id": self.id,
            "version": self.version,
            "norm": "linf",
            "eps": eps_label(self.eps),
            "split": self.split,
            "images": "all",
            "attacks": [{"attack": a, "params": dict(p)} for a, p in self.attacks],
        }

    @property
    def sha256(self) -> str:
        """sha256 of :meth:`resolved` as canonical JSON."""
        blob = json.dumps(self.resolved(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def record(self) -> dict[str, str]:
        """The ``protocol`` block of a matrix computed under this protocol."""
        return {"id": self.id, "version": self.version, "sha256": self.sha256}


MRB_TRANSFER_V1 = TransferProtocol(
    id="mrb_transfer_v1",
    version="1.0",
    eps=8 / 255,
    attacks=(
        ("mifgsm", (("steps", 10), ("decay", 1.0))),
        (
            "difgsm",
            (("steps", 10), ("decay", 1.0), ("resize_rate", 0.9), ("diversity_prob", 0.5)),
        ),
    ),
    description="Transfer at L-inf 8/255 on the full test split: MI-FGSM and M-DI2-FGSM "
    "(10 iterations, step eps/10, momentum 1.0) crafted white-box on each source checkpoint, "
    "scored on every board entry; an image counts only if it survives both",
    reference="Dong et al. 2018 (MI-FGSM: 10 iterations, mu = 1.0, step eps/T), Sec. 4; "
    "Xie et al. 2019 (M-DI2-FGSM: resize 0.9, p = 0.5, with momentum), Sec. 3-4; MDDA "
    "(mdda_wang2023.md) Sec. 4.3 for the cross-architecture setting",
)
"""The transfer protocol of the boards: the two attacks built for transferability, at the
8/255 board's budget."""

TRANSFER_PROTOCOLS = {MRB_TRANSFER_V1.id: MRB_TRANSFER_V1}


def transfer_file(
    results_root: Path, dataset: str, protocol: TransferProtocol, created_at: str
) -> Path:
    """Where the matrix of ``dataset`` under ``protocol`` computed at ``created_at`` is kept:
    ``<root>/<dataset>/transfer/<protocol id>_<created_at as 20261206t024500z>.json``. Like a
    results file it is never overwritten: a recomputed matrix is a new file, the site shows
    the newest of each protocol, and the ledger records each one."""
    stamp = created_at.replace(":", "").replace("-", "").lower()
    if not _PLAIN.fullmatch(dataset) or not _PLAIN.fullmatch(stamp):
        raise ResultsError(f"dataset {dataset!r} or time {created_at!r} is not a plain name")
    return Path(results_root) / dataset / TRANSFER / f"{protocol.id}_{stamp}.json"


_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def transfer_files(results_root: Path) -> list[Path]:
    """Every transfer-matrix file under ``results_root`` (``<dataset>/transfer/*.json``),
    sorted: what the ledger records besides the results files."""
    root = Path(results_root)
    return sorted(p for p in root.glob(f"*/{TRANSFER}/*.json") if p.is_file())


@dataclass(frozen=True)
class TransferCell:
    """One (source, target) cell read back from a matrix file.

    Attributes:
        source: index into the matrix's sources.
        target: index into its targets.
        own: whether the source is the target's own checkpoint (a white-box attack on the
            undefended or robust model, not a transfer).
        correct: per-image outcomes, worst case (True: right clean and under every attack).
        per_attack: attack id -> per-image outcomes.
    """

    source: int
    target: int
    own: bool
    correct: np.ndarray
    per_attack: dict[str, np.ndarray]

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean()) if self.correct.size else float("nan")


@dataclass(frozen=True)
class TransferMatrix:
    """A transfer-matrix file, read and checked (:func:`read_transfer`)."""

    doc: dict[str, Any]
    cells: tuple[TransferCell, ...]
    labels: np.ndarray

    @property
    def dataset(self) -> str:
        return self.doc["dataset"]

    @property
    def sources(self) -> list[dict[str, Any]]:
        return self.doc["sources"]

    @property
    def targets(self) -> list[dict[str, Any]]:
        return self.doc["targets"]

    @property
    def n(self) -> int:
        return int(self.doc["data"]["n"])

    @property
    def protocol(self) -> TransferProtocol:
        return TRANSFER_PROTOCOLS[self.doc["protocol"]["id"]]

    def cell(self, source: int, target: int) -> TransferCell | None:
        return next((c for c in self.cells if (c.source, c.target) == (source, target)), None)

    def worst_transfer(self, target_key: str) -> tuple[TransferCell, dict[str, Any]] | None:
        """The transfer cell of the entry ``target_key`` with the lowest accuracy over the
        sources that are not its own checkpoint, and that source (None: not in the matrix)."""
        index = next((i for i, t in enumerate(self.targets) if t["key"] == target_key), None)
        if index is None:
            return None
        cells = [c for c in self.cells if c.target == index and not c.own]
        if not cells:
            return None
        worst = min(cells, key=lambda c: (c.accuracy, c.source))
        return worst, self.sources[worst.source]


def read_transfer(path: Path) -> TransferMatrix:
    """Read a transfer-matrix file and check it (it is untrusted input to the site): schema, a
    known protocol whose sha256 it records, the whole split, a well-formed record of every
    field a page shows, exactly one cell per (source, target) pair with the protocol's
    attacks, ``own`` equal to "the source is the target's checkpoint", and per-image outcomes
    whose means are the stored accuracies and whose worst case is the target's clean outcomes
    AND those of every attack.

    Raises:
        ResultsError: unreadable, another schema, or any inconsistency (one line).
    """
    where = Path(path).name
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ResultsError(f"{where}: not a readable transfer matrix ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ResultsError(f"{where}: not a {SCHEMA} file; recompute it with bench transfer")
    record = doc.get("protocol")
    protocol = TRANSFER_PROTOCOLS.get(str(record.get("id"))) if isinstance(record, dict) else None
    if protocol is None or record != protocol.record():
        raise ResultsError(
            f"{where}: protocol {record} is not a registered transfer protocol; recompute it "
            "with bench transfer"
        )
    try:
        return _read(doc, protocol, where)
    except ResultsError:
        raise
    except Exception as exc:  # any malformed part: one line, never a crash of the reader
        raise ResultsError(f"{where}: malformed transfer matrix ({exc!r})") from exc


def _need(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ResultsError(f"{what} is missing or of the wrong type")
    return value


def _read(doc: dict[str, Any], protocol: TransferProtocol, where: str) -> TransferMatrix:
    data = _need(doc.get("data"), dict, f"{where}: data")
    n = _need(data.get("n"), int, f"{where}: data.n")
    if n < 1 or n != data.get("n_split") or data.get("split") != protocol.split:
        raise ResultsError(f"{where}: {n} of {data.get('n_split')} images, not the whole split")
    _need(doc.get("dataset"), str, f"{where}: dataset")
    _need(doc.get("created_at"), str, f"{where}: created_at")
    cost = _need(doc.get("cost"), dict, f"{where}: cost")
    for key in ("craft_seconds", "score_seconds"):
        _need(cost.get(key), (int, float), f"{where}: cost.{key}")
    _need(cost.get("device"), str, f"{where}: cost.device")
    _need(doc.get("environment"), dict, f"{where}: environment")
    _need(doc.get("git"), dict, f"{where}: git")
    _need(doc.get("left_out"), list, f"{where}: left_out")
    labels = read_labels(data.get("labels"), n)
    if labels is None:
        raise ResultsError(f"{where}: the labels of the images are missing")
    sources = _need(doc.get("sources"), list, f"{where}: sources")
    for i, src in enumerate(sources):
        _need(src, dict, f"{where}: source {i}")
        for key in ("id", "arch", "checkpoint_sha256"):
            _need(src.get(key), str, f"{where}: source {i} {key}")
        if src.get("defense") is not None:
            _need(src["defense"], dict, f"{where}: source {i} defense")
            _need(src["defense"].get("id"), str, f"{where}: source {i} defense id")
    targets = _need(doc.get("targets"), list, f"{where}: targets")
    clean = []
    for j, t in enumerate(targets):
        _need(t, dict, f"{where}: target {j}")
        for key in ("key", "label", "model_id", "checkpoint_sha256"):
            _need(t.get(key), str, f"{where}: target {j} {key}")
        _need(t.get("draws"), int, f"{where}: target {j} draws")
        if t.get("result") is not None:
            result = _need(t["result"], dict, f"{where}: target {j} result")
            for key in ("file", "sha256"):
                _need(result.get(key), str, f"{where}: target {j} result {key}")
        clean.append(_checked(t.get("clean"), n, f"{where}: target {t['key']}"))
    attacks = sorted(a for a, _ in protocol.attacks)
    cells: dict[tuple[int, int], TransferCell] = {}
    for c in _need(doc.get("cells"), list, f"{where}: cells"):
        what = f"{where}: cell {c.get('id') if isinstance(c, dict) else c!r}"
        _need(c, dict, what)
        source = _need(c.get("source"), int, f"{what} source")
        target = _need(c.get("target"), int, f"{what} target")
        if not (0 <= source < len(sources) and 0 <= target < len(targets)):
            raise ResultsError(f"{what} names no source or target")
        if (source, target) in cells:
            raise ResultsError(f"{what}: a second cell for the same source and target")
        per = _need(c.get("per_attack"), dict, f"{what} per_attack")
        if sorted(per) != attacks:
            raise ResultsError(f"{what}: attacks {sorted(per)}, not the protocol's {attacks}")
        per_attack = {a: _checked(per[a], n, f"{what} {a}") for a in attacks}
        worst = _checked(c.get("worst"), n, what)
        if not np.array_equal(worst, np.logical_and.reduce([clean[target], *per_attack.values()])):
            raise ResultsError(
                f"{what}: the worst case is not the target's clean outcomes AND those of every "
                "attack"
            )
        own = sources[source]["checkpoint_sha256"] == targets[target]["checkpoint_sha256"]
        if c.get("own") is not own:
            raise ResultsError(f"{what}: 'own' is {c.get('own')!r}, the checkpoints say {own}")
        cells[(source, target)] = TransferCell(source, target, own, worst, per_attack)
    if len(cells) != len(sources) * len(targets):
        raise ResultsError(
            f"{where}: {len(cells)} cells for {len(sources)} sources x {len(targets)} targets"
        )
    return TransferMatrix(doc, tuple(cells[k] for k in sorted(cells)), labels)


def _checked(block: Any, n: int, what: str) -> np.ndarray:
    """The outcomes of ``block`` (an accuracy scalar with per-image outcomes), checked to
    agree with its stored accuracy and interval."""
    _need(block, dict, what)
    acc = _need(block.get("accuracy"), dict, f"{what} accuracy")
    correct = read_outcomes(_need(block.get("outcomes"), dict, f"{what} outcomes"), n)
    if correct is None:
        raise ResultsError(f"{what}: no per-image outcomes")
    stored = _need(acc.get("value"), (int, float), f"{what} accuracy value")
    ci = _need(acc.get("ci95"), list, f"{what} accuracy ci95")
    if len(ci) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in ci):
        raise ResultsError(f"{what}: accuracy ci95 is not two numbers")
    if not math.isfinite(stored) or abs(stored - float(correct.mean())) > 1e-9:
        raise ResultsError(f"{what}: accuracy {stored} is not the mean of its outcomes")
    if acc.get("n") != n:
        raise ResultsError(f"{what}: accuracy n {acc.get('n')} is not the {n} images")
    return correct


def find_transfer(results_root: Path, dataset: str) -> list[Path]:
    """The transfer-matrix files of ``dataset`` under ``results_root`` (sorted; a file name
    sorts by protocol, then by time)."""
    folder = Path(results_root) / dataset / TRANSFER
    return sorted(p for p in folder.glob("*.json") if p.is_file()) if folder.is_dir() else []


__all__ = [
    "MRB_TRANSFER_V1",
    "SCHEMA",
    "TRANSFER",
    "TRANSFER_PROTOCOLS",
    "TransferCell",
    "TransferMatrix",
    "TransferProtocol",
    "find_transfer",
    "read_transfer",
    "transfer_file",
    "transfer_files",
]
