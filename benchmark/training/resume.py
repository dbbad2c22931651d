"""Resumable training: the end-of-epoch state of an unfinished run, saved and restored.

After every epoch but the last, the run's whole state (weights, optimiser, learning-rate
schedule, the data-order, global and defense random streams, the history and the best model so
far) is written atomically to ``<zoo>/.partial/<model id>.pt``. A run started again with the
same fingerprint (recipe, data, starting model, defense parameters and selection rule version)
continues from there and ends with the same weights as an uninterrupted run (on CPU).
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmark.datasets.base import ImageSplit
from benchmark.defenses.base import Defense
from benchmark.models.zoo import ModelZoo
from benchmark.results.io import atomic_write_bytes
from benchmark.training.config import TrainConfig
from benchmark.training.loop import TrainingRun
from benchmark.training.selection import SELECTION_VERSION, BestEpoch

logger = logging.getLogger(__name__)

PARTIAL_DIR = ".partial"
"""Zoo sub-folder of the end-of-epoch states of unfinished training runs."""


def partial_path(zoo: ModelZoo, mid: str) -> Path:
    """Where the unfinished run of model ``mid`` keeps its last end-of-epoch state."""
    return zoo.root / PARTIAL_DIR / f"{mid}.pt"


@dataclass
class RunState:
    """What a run carries from one epoch to the next, besides the model and the optimiser.

    Attributes:
        best: the best epoch so far and its weights.
        history: one record per finished epoch (loss and validation scores).
        resumed: the epochs the run resumed at, each with the git commit that resumed it.
        epoch: the last finished epoch (0 before the first).
        seconds: training time so far (a resumed run's clock continues from it).
    """

    best: BestEpoch
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed: list[dict[str, Any]] = field(default_factory=list)
    epoch: int = 0
    seconds: float = 0.0


def run_fingerprint(
    config: TrainConfig,
    size: int,
    splits: dict[str, ImageSplit],
    init: dict[str, Any] | None,
    defense: Defense | None,
    defense_sha256: str | None = None,
) -> str:
    """What a saved state must match to be resumed: the recipe (the device aside), the image
    size, the data, the starting model, the defense's parameters and submission sha256 (its
    code: a changed defense does not resume a run the old one began) and the selection rule."""
    return json.dumps(
        {
            "config": {k: v for k, v in asdict(config).items() if k != "device"},
            "size": size,
            "data": {s: sp.sha256 for s, sp in splits.items()},
            "init": init,
            "defense": defense.params if defense is not None else None,
            **({"defense_sha256": defense_sha256} if defense_sha256 else {}),
            "selection_version": SELECTION_VERSION,
        },
        sort_keys=True,
        default=str,
    )


def save_partial(
    path: Path,
    fingerprint: str,
    state: RunState,
    run: TrainingRun,
) -> None:
    """Write the run's end-of-epoch state atomically (a crash mid-write keeps the old one)."""
    device, defense = run.device, run.defense
    blob = {
        "fingerprint": fingerprint,
        "epoch": state.epoch,
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "generator": run.generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        **({"cuda_rng": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {}),
        "defense_rng": defense.rng_state() if defense is not None else {},
        "history": state.history,
        "best": list(state.best.key),
        "best_epoch": state.best.epoch,
        "best_state": state.best.state,
        "resumed": state.resumed,
        "seconds": state.seconds,
    }
    buf = io.BytesIO()
    torch.save(blob, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_partial(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """The saved state of an interrupted run with the same fingerprint, else None (a
    different recipe, different data or an unreadable file start the run afresh)."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file: start afresh
        logger.warning("ignoring unreadable partial training state %s (%s)", path, exc)
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        logger.warning(
            "ignoring the partial training state %s: it is of a different recipe, data or "
            "starting model; this run starts afresh and replaces it",
            path,
        )
        return None
    return state


def restore_partial(
    saved: dict[str, Any],
    state: RunState,
    run: TrainingRun,
    git: dict[str, Any],
) -> None:
    """Put a state read by :func:`load_partial` back into ``run``'s objects and ``state``
    (in place); the run continues at the epoch after the saved one, and ``state.resumed``
    records that epoch with the ``git`` commit that resumed it."""
    run.model.load_state_dict(saved["model"])
    run.model.to(memory_format=run.memory_format)
    run.optimizer.load_state_dict(saved["optimizer"])
    run.scheduler.last_epoch = int(saved["epoch"])
    run.scheduler._last_lr = [g["lr"] for g in run.optimizer.param_groups]  # type: ignore[attr-defined]
    run.generator.set_state(saved["generator"])
    torch.set_rng_state(saved["torch_rng"])
    if run.device.type == "cuda" and "cuda_rng" in saved:
        torch.cuda.set_rng_state(saved["cuda_rng"], run.device)
    if run.defense is not None:
        run.defense.set_rng_state(saved["defense_rng"])
    state.history = list(saved["history"])
    state.best.key, state.best.epoch = tuple(saved["best"]), int(saved["best_epoch"])
    state.best.state = saved["best_state"]
    state.epoch, state.seconds = int(saved["epoch"]), float(saved["seconds"])
    state.resumed = [*saved["resumed"], {"epoch": state.epoch + 1, "git": git}]
