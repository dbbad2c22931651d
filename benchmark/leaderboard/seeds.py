"""A recipe's seeds on the site: how much of a gap between two entries is training noise.

Every leaderboard row is one checkpoint. The committed model cards
(:mod:`benchmark.results.cards`, ``leaderboard/zoo/cards/``) hold every trained seed of a
recipe (the same model id up to its ``_s<seed>`` part) with its test scores on the whole test
split, so an entry page shows the seeds of the recipe its checkpoint belongs to and the board
shows the clean test accuracy over those seeds (mean and sample standard deviation) beside
the row. The robust figures of the other seeds are not shown: they exist only where a seed was
evaluated, and a board ranks checkpoints, not recipes.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.errors import CheckpointError
from benchmark.leaderboard.rows import Board
from benchmark.leaderboard.runs import Entry
from benchmark.results.cards import read_cards, recipe_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecipeSeeds:
    """The seeds of one recipe, from the committed cards.

    Attributes:
        recipe: the model id without its seed.
        rows: per seed (ascending): ``seed``, ``model_id``, ``sha256``, test ``acc`` and
            ``auc`` (value and 95 % interval) and ``this`` (the entry's own checkpoint).
        acc_mean, acc_sd, auc_mean, auc_sd: over the seeds (sd None for one seed).
    """

    recipe: str
    rows: tuple[dict[str, Any], ...]
    acc_mean: float
    acc_sd: float | None
    auc_mean: float
    auc_sd: float | None

    @property
    def n(self) -> int:
        return len(self.rows)


def recipe_groups(cards_folder: Path | None) -> dict[str, list[dict[str, Any]]]:
    """The committed cards of ``cards_folder`` grouped by recipe (empty without a folder; a
    malformed card is reported and the seeds are left off the site)."""
    if cards_folder is None or not Path(cards_folder).is_dir():
        return {}
    try:
        cards = read_cards(cards_folder)
    except CheckpointError as exc:
        logger.warning("seeds left off the site: %s", exc)
        return {}
    groups: dict[str, list[dict[str, Any]]] = {}
    for c in cards:
        groups.setdefault(recipe_of(c.card), []).append(c.card)
    return groups


def _sd(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def entry_seeds(entry: Entry, groups: dict[str, list[dict[str, Any]]]) -> RecipeSeeds | None:
    """The seeds of the recipe of ``entry``'s deployed checkpoint (None: no committed card of
    it, or the card's checkpoint is not the entry's)."""
    model = entry.newest().doc.get("model") or {}
    mid, sha = model.get("model_id"), model.get("checkpoint_sha256")
    if not mid:
        return None
    recipe = recipe_of({"model_id": mid})
    cards = groups.get(recipe, [])
    if not any(c["model_id"] == mid and c["checkpoint"]["sha256"] == sha for c in cards):
        return None
    try:
        rows = [_seed_row(c, mid) for c in cards]
    except (KeyError, TypeError, ValueError) as exc:  # a card with a null or odd metric
        logger.warning("seeds of %s left off the site: a card is malformed (%r)", recipe, exc)
        return None
    rows.sort(key=lambda r: r["seed"])
    acc = [r["acc"]["value"] for r in rows]
    auc = [r["auc"]["value"] for r in rows]
    return RecipeSeeds(
        recipe, tuple(rows), statistics.fmean(acc), _sd(acc), statistics.fmean(auc), _sd(auc)
    )


def _metric(block: dict[str, Any]) -> dict[str, Any]:
    """A card metric as numbers (``value``, ``ci95``); raises on anything else."""
    low, high = (float(v) for v in block["ci95"])
    return {"value": float(block["value"]), "ci95": (low, high)}


def _seed_row(card: dict[str, Any], mid: str) -> dict[str, Any]:
    test = card["metrics"]["test"]
    return {
        "seed": int(card["seed"]),
        "model_id": str(card["model_id"]),
        "sha256": str(card["checkpoint"]["sha256"]),
        "acc": _metric(test["acc"]),
        "auc": _metric(test["auc"]),
        "this": card["model_id"] == mid,
    }


def deployed_card(entry: Entry, groups: dict[str, list[dict[str, Any]]]) -> dict[str, Any] | None:
    """The committed card of ``entry``'s deployed checkpoint (same id and sha256), if any."""
    model = entry.newest().doc.get("model") or {}
    mid, sha = model.get("model_id"), model.get("checkpoint_sha256")
    for card in groups.get(recipe_of({"model_id": mid}), []) if mid else []:
        if card["model_id"] == mid and card["checkpoint"]["sha256"] == sha:
            return card
    return None


def attach_seeds(boards: list[Board], seeds: dict[str, RecipeSeeds | None]) -> None:
    """Give every board row whose entry has seeds ``row.details["seeds"]`` (by entry key)."""
    for board in boards:
        for row in board.rows:
            found = seeds.get(row.entry.key)
            if found is not None:
                row.details["seeds"] = found
                board.has_seeds = True


__all__ = ["RecipeSeeds", "attach_seeds", "deployed_card", "entry_seeds", "recipe_groups"]
