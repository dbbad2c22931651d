"""The model zoo: checkpoints with their model cards, verified by sha256 on load.

Layout: ``<zoo>/<model_id>/model.pt`` (a ``state_dict`` saved with ``torch.save``) and
``<zoo>/<model_id>/card.json`` (the model card, which records the checkpoint's sha256).
``<model_id>`` is ``<arch>_<dataset>_<size>px_s<seed>`` (``_<defense>`` appended for robust
models). Loading recomputes the sha256, refuses a mismatch, and reads the weights with
``torch.load(..., weights_only=True)`` so a checkpoint can never run code.
"""

from __future__ import annotations

import io
import json
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmark import paths
from benchmark.errors import CheckpointError
from benchmark.hashing import file_digest
from benchmark.models.base import ImageClassifier, build_model
from benchmark.results.cards import CARD_SCHEMA
from benchmark.results.io import atomic_write_bytes, atomic_write_json

logger = logging.getLogger(__name__)

CHECKPOINT = "model.pt"
CARD = "card.json"


def model_id(arch: str, dataset: str, size: int, seed: int, defense: str | None = None) -> str:
    """The zoo id of a trained model (``resnet18_pneumoniamnist_28px_s0``)."""
    base = f"{arch}_{dataset}_{size}px_s{seed}"
    return f"{base}_{defense}" if defense else base


@dataclass(frozen=True)
class ZooEntry:
    """A model found in the zoo: its folder and parsed card."""

    path: Path
    card: dict[str, Any]

    @property
    def checkpoint(self) -> Path:
        """Path of the checkpoint file."""
        return self.path / CHECKPOINT

    @property
    def model_id(self) -> str:
        """The model's zoo id."""
        return str(self.card["model_id"])


class ModelZoo:
    """A folder of trained models (``--zoo``, ``$BENCH_ZOO_DIR`` or the per-user cache)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = paths.zoo_dir(root)

    def folder(self, mid: str) -> Path:
        """Folder of the model ``mid`` (may not exist)."""
        return self.root / mid

    def exists(self, mid: str) -> bool:
        """True when both the checkpoint and the card of ``mid`` are present."""
        return (self.folder(mid) / CARD).is_file() and (self.folder(mid) / CHECKPOINT).is_file()

    def save(self, model: ImageClassifier, card: dict[str, Any]) -> ZooEntry:
        """Store ``model``'s weights and ``card`` (completed with the checkpoint's sha256).

        The checkpoint is written first, then the card: a card on disk always describes a
        complete checkpoint.
        """
        mid = card["model_id"]
        folder = self.folder(mid)
        buf = io.BytesIO()
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        torch.save(state, buf)
        atomic_write_bytes(folder / CHECKPOINT, buf.getvalue())
        full = dict(card)
        full["schema"] = CARD_SCHEMA
        full["checkpoint"] = {
            "file": CHECKPOINT,
            "sha256": file_digest(folder / CHECKPOINT),
            "bytes": (folder / CHECKPOINT).stat().st_size,
        }
        atomic_write_json(folder / CARD, full)
        logger.info("saved %s to %s", mid, folder)
        return ZooEntry(folder, full)

    def entry(self, mid: str) -> ZooEntry:
        """Read and check the card of ``mid`` (not the weights).

        Raises:
            CheckpointError: the model is not in the zoo or its card is unreadable.
        """
        folder = self.folder(mid)
        card_path = folder / CARD
        if not card_path.is_file():
            raise CheckpointError(
                f"model '{mid}' not found in zoo {self.root}; train it with `bench train` "
                "(or pass --train-if-missing) or point --zoo/BENCH_ZOO_DIR at the right zoo"
            )
        try:
            card = json.loads(card_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(
                f"model card {card_path} is unreadable ({exc}); delete {folder} and retrain"
            ) from exc
        if card.get("schema") != CARD_SCHEMA or card.get("model_id") != mid:
            raise CheckpointError(
                f"model card {card_path} is not a {CARD_SCHEMA} card for '{mid}'; "
                f"delete {folder} and retrain"
            )
        return ZooEntry(folder, card)

    def load(
        self, mid: str, *, device: torch.device | str = "cpu", expect: dict[str, Any] | None = None
    ) -> tuple[ImageClassifier, ZooEntry]:
        """Load model ``mid`` after verifying its checkpoint against its card.

        Args:
            mid: zoo id.
            device: where to put the model.
            expect: card fields that must match (e.g. ``{"dataset": ..., "arch": ...}``);
                a dotted key reaches into a nested field (``"defense.id"``).

        Raises:
            CheckpointError: missing model, sha256 mismatch, unreadable weights, weights that
                do not fit the architecture, or a card that does not match ``expect``.
        """
        entry = self.entry(mid)
        card = entry.card
        for key, value in (expect or {}).items():
            found: Any = card
            for part in key.split("."):
                found = found.get(part) if isinstance(found, dict) else None
            if found != value:
                raise CheckpointError(
                    f"model card of '{mid}' has {key}={found!r} but {value!r} was "
                    f"expected; retrain it with `bench train`"
                )
        ckpt = entry.checkpoint
        if not ckpt.is_file():
            raise CheckpointError(f"checkpoint {ckpt} is missing; retrain '{mid}' with bench train")
        expected = card.get("checkpoint", {}).get("sha256")
        actual = file_digest(ckpt)
        if actual != expected:
            raise CheckpointError(
                f"checkpoint {ckpt} has sha256 {actual[:16]}... but its card says "
                f"{str(expected)[:16]}...: the file is corrupt or was replaced; delete "
                f"{entry.path} and retrain with `bench train`"
            )
        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
            raise CheckpointError(
                f"checkpoint {ckpt} cannot be read safely ({str(exc).splitlines()[0]}); "
                "retrain it with `bench train`"
            ) from exc
        model = build_model(
            card["arch"],
            in_channels=int(card["in_channels"]),
            num_classes=int(card["num_classes"]),
            image_size=int(card["image_size"]),
            multi_label=bool(card["multi_label"]),
        )
        try:
            model.load_state_dict(state, strict=True)
        except (RuntimeError, TypeError, AttributeError) as exc:
            raise CheckpointError(
                f"checkpoint {ckpt} does not fit architecture '{card['arch']}' "
                f"({str(exc).splitlines()[0]}); retrain it with `bench train`"
            ) from exc
        model.eval()
        return model.to(device), entry

    def list(self) -> list[ZooEntry]:
        """Every readable model card in the zoo, sorted by id."""
        if not self.root.is_dir():
            return []
        out = []
        for card_path in sorted(self.root.glob(f"*/{CARD}")):
            try:
                out.append(self.entry(card_path.parent.name))
            except CheckpointError as exc:
                logger.warning("skipping %s: %s", card_path.parent, exc)
        return out
