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


def transfer_file(results_root: Path, dataset: str, protocol: TransferProtocol) -> Path:
    """Where the matrix of ``dataset`` under ``protocol`` is kept."""
    return Path(results_root) / dataset / TRANSFER / f"{protocol.id}.json"


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
    """Read a transfer-matrix file and check it: schema, a known protocol whose sha256 it
    records, the whole split, and per-image outcomes whose means are the stored accuracies.

    Raises:
        ResultsError: unreadable, another schema, or inconsistent numbers.
    """
    where = Path(path).name
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{where}: not a readable transfer matrix ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ResultsError(f"{where}: not a {SCHEMA} file; recompute it with bench transfer")
    record = doc.get("protocol") or {}
    protocol = TRANSFER_PROTOCOLS.get(str(record.get("id")))
    if protocol is None or record != protocol.record():
        raise ResultsError(
            f"{where}: protocol {record} is not a registered transfer protocol; recompute it "
            "with bench transfer"
        )
    data = doc.get("data") or {}
    try:
        n = int(data["n"])
        if n != int(data["n_split"]) or data.get("split") != protocol.split:
            raise ResultsError(f"{where}: {n} of {data['n_split']} images, not the whole split")
        labels = read_labels(data.get("labels"), n)
        clean = [_checked(t["clean"], n, f"{where}: target {t['key']}") for t in doc["targets"]]
        cells = []
        for c in doc["cells"]:
            source, target = int(c["source"]), int(c["target"])
            if not (0 <= source < len(doc["sources"]) and 0 <= target < len(clean)):
                raise ResultsError(f"{where}: cell {c['id']} names no source or target")
            per_attack = {
                attack: _checked(block, n, f"{where}: cell {c['id']} {attack}")
                for attack, block in c["per_attack"].items()
            }
            worst = _checked(c["worst"], n, f"{where}: cell {c['id']}")
            if not np.array_equal(
                worst, np.logical_and.reduce([clean[target], *per_attack.values()])
            ):
                raise ResultsError(
                    f"{where}: cell {c['id']}: the worst case is not the target's clean outcomes "
                    "AND those of every attack"
                )
            cells.append(TransferCell(source, target, bool(c["own"]), worst, per_attack))
    except (KeyError, TypeError, ValueError) as exc:
        raise ResultsError(f"{where}: malformed transfer matrix ({exc!r})") from exc
    if labels is None:
        raise ResultsError(f"{where}: the labels of the images are missing")
    return TransferMatrix(doc, tuple(cells), labels)


def _checked(block: dict[str, Any], n: int, what: str) -> np.ndarray:
    """The outcomes of ``block`` (an accuracy scalar with per-image outcomes), checked to
    agree with its stored accuracy."""
    correct = read_outcomes(block.get("outcomes"), n)
    if correct is None:
        raise ResultsError(f"{what}: no per-image outcomes")
    stored = float(block["accuracy"]["value"])
    if abs(stored - float(correct.mean())) > 1e-9 or int(block["accuracy"]["n"]) != n:
        raise ResultsError(f"{what}: accuracy {stored} is not the mean of its outcomes")
    return correct


def find_transfer(results_root: Path, dataset: str) -> list[Path]:
    """The transfer-matrix files of ``dataset`` under ``results_root`` (sorted)."""
    folder = Path(results_root) / dataset / TRANSFER
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


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
]
