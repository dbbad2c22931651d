"""Add to an older model card the split metrics that cards record since it was written.

Cards written before session 22 have ACC and AUC per split but not the balanced accuracy,
from which the zoo page tells a collapsed model (:func:`benchmark.training.card.split_metrics`).
Rescoring predicts the card's validation and test splits with its own checkpoint (loaded
against its sha256), on the data the card names (its sha256 too), checks that the recomputed
ACC and AUC, values and intervals, are the card's to the last digit (AUC reads every
probability; else the code, the kernels or the data changed since, and nothing is written),
and adds only the missing metrics, with a ``rescored`` record of what, when and at
which commit. Nothing the card already says is changed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from benchmark.datasets.base import load_split
from benchmark.device import pick_device
from benchmark.errors import CheckpointError, DataError
from benchmark.models.inference import predict
from benchmark.models.zoo import CARD, ModelZoo
from benchmark.results.io import atomic_write_json
from benchmark.results.provenance import git_commit, utc_now
from benchmark.training.card import split_metrics

logger = logging.getLogger(__name__)

SPLITS = ("val", "test")


def missing_metrics(card: dict[str, Any]) -> dict[str, list[str]]:
    """Per split, the metric names a card written now would have and this one lacks (only
    those of a single-label task's balanced accuracy can be missing today)."""
    if card.get("multi_label"):
        return {}
    out = {}
    for split in SPLITS:
        have = (card.get("metrics") or {}).get(split) or {}
        if "balanced_acc" not in have:
            out[split] = ["balanced_acc"]
    return out


def rescore_card(
    zoo: ModelZoo, mid: str, *, data_dir: str | Path | None = None, device: str = "auto"
) -> str:
    """Add the missing split metrics to ``mid``'s card in ``zoo`` (see the module).

    Returns:
        "unchanged" (nothing missing), "n/a (multi-label: no balanced accuracy)" or
        "rescored: val balanced_acc, test balanced_acc".

    Raises:
        CheckpointError: the checkpoint or the data differ from the card's, or the recomputed
            ACC or AUC is not the card's; the card is left as it was.
        DataError: the data the card names is not found (point ``data_dir`` at it).
    """
    entry = zoo.entry(mid)
    if entry.card.get("multi_label"):
        return "n/a (multi-label: no balanced accuracy)"
    todo = missing_metrics(entry.card)
    if not todo:
        return "unchanged"
    model, entry = zoo.load(mid, device=pick_device(device))
    card = entry.card
    added: list[str] = []
    metrics = {}
    for split in SPLITS:
        try:
            data = load_split(
                card["dataset"], split, size=int(card["image_size"]), data_dir=data_dir
            )
        except DataError as exc:
            raise DataError(
                f"{mid}: {str(exc).splitlines()[0].split('; ')[0]}; point --data-dir (or "
                "BENCH_DATA_DIR) at the data the card names"
            ) from exc
        want = ((card.get("data") or {}).get(split) or {}).get("sha256")
        if want != data.sha256 or len(data) != card["data"][split]["n"]:
            raise CheckpointError(
                f"the {split} split of {card['dataset']} here (sha256 {data.sha256[:12]}, "
                f"{len(data)} images) is not the one {mid} was scored on (sha256 "
                f"{str(want)[:12]}); point --data-dir at the card's data"
            )
        new = split_metrics(predict(model, data, seed=int(card["seed"])))
        for name in ("acc", "auc"):  # AUC reads every probability: a strong check
            old = card["metrics"][split].get(name)
            if new[name] != old:
                raise CheckpointError(
                    f"{mid}: the recomputed {split} {name.upper()} {new[name].get('value')} "
                    f"(interval {new[name].get('ci95')}) is not the card's "
                    f"{(old or {}).get('value')} ({(old or {}).get('ci95')}): the code, the "
                    "kernels or the data changed since; card left unchanged"
                )
        metrics[split] = new
    for split, names in todo.items():
        for name in names:
            card["metrics"][split][name] = metrics[split][name]
            added.append(f"{split} {name}")
    if not isinstance(card.get("rescored", []), list):
        raise CheckpointError(f"{mid}: the card's 'rescored' is not a list; card left unchanged")
    card.setdefault("rescored", []).append(
        {"added": added, "created_at": utc_now(), "git": git_commit()}
    )
    atomic_write_json(entry.path / CARD, card)
    logger.info("rescored %s: %s", mid, ", ".join(added))
    return "rescored: " + ", ".join(added)


__all__ = ["missing_metrics", "rescore_card"]
