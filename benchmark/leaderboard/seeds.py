"""A recipe's seeds on the site: how much of a gap between two entries is training noise.

Every leaderboard row is one checkpoint. The committed model cards
(:mod:`benchmark.results.cards`, ``leaderboard/zoo/cards/``) hold every trained seed of a
recipe (the same model id up to its ``_s<seed>`` part) with its test scores on the whole test
split, so an entry page shows the seeds of the recipe its checkpoint belongs to and the board
shows the clean test accuracy over those seeds (mean and sample standard deviation) beside
the row. Where the recipe's other seeds ran under the same defense, suite and images
(``bench evaluate --subset-seed`` screens every seed on the same subset), the entry page tables
each attack cell's robust accuracy per seed with its mean and sample standard deviation
(:func:`seed_runs`), and the board shows the row's ranking figure, the balanced worst case at
its eps, over those seeds beside the row where their runs hold the same attacks
(:mod:`benchmark.leaderboard.seed_worst`). A board still ranks
checkpoints, not recipes: the seeds' spread says how much of a gap training noise could make.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.errors import CheckpointError
from benchmark.leaderboard.rows import Board
from benchmark.leaderboard.runs import Entry, Run
from benchmark.results.cards import read_cards, recipe_of, recipe_signature, seed_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecipeSeeds:
    """The seeds of one recipe, from the committed cards.

    Attributes:
        recipe: the model id without its seed.
        rows: per seed (ascending): ``seed``, ``model_id``, ``sha256``, test ``acc`` and
            ``auc`` (value and 95 % interval) and ``this`` (the entry's own checkpoint).
        acc_mean, acc_sd, auc_mean, auc_sd: over the seeds (sd None for one seed).
        base_model: the entry is an inference-time defense (preprocessing, wrapper,
            randomized): these are the seeds of its undefended base model, not of the
            defended pipeline, whose clean accuracy differs.
    """

    recipe: str
    rows: tuple[dict[str, Any], ...]
    acc_mean: float
    acc_sd: float | None
    auc_mean: float
    auc_sd: float | None
    base_model: bool = False

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
    own = [c for c in cards if c["model_id"] == mid and c["checkpoint"]["sha256"] == sha]
    if not own:
        return None
    # Seeds of this recipe only: a checkpoint of an earlier recipe may share the id pattern.
    signature = recipe_signature(own[0].get("recipe"))
    cards = [c for c in cards if recipe_signature(c.get("recipe")) == signature]
    try:
        rows = [_seed_row(c, mid) for c in cards]
    except (KeyError, TypeError, ValueError) as exc:  # a card with a null or odd metric
        logger.warning("seeds of %s left off the site: a card is malformed (%r)", recipe, exc)
        return None
    rows.sort(key=lambda r: r["seed"])
    acc = [r["acc"]["value"] for r in rows]
    auc = [r["auc"]["value"] for r in rows]
    kind = entry.defense_block().get("kind")
    return RecipeSeeds(
        recipe,
        tuple(rows),
        statistics.fmean(acc),
        _sd(acc),
        statistics.fmean(auc),
        _sd(auc),
        base_model=kind is not None and kind != "training",
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


@dataclass(frozen=True)
class SeedSuite:
    """One suite that two or more seeds of a recipe ran under the same defense on the same
    images (:func:`seed_runs`).

    Attributes:
        suite: the run folder's suite.
        n: images scored (the same for every seed).
        columns: ``clean`` and every attack cell the seeds' runs share, labelled with its
            threat model (sanity-only cells left out).
        rows: per seed (ascending): ``seed``, ``model_id``, ``path`` (the results file),
            ``values`` (accuracy per column, in [0, 1]) and ``this`` (the entry's own run).
        mean, sd: per column over the seeds (sample standard deviation).
    """

    suite: str
    n: int
    columns: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    mean: tuple[float, ...]
    sd: tuple[float, ...]


#: Config fields two seeds' runs must share besides their suite, so that their attacks are
#: equally strong (the suite's folder name says nothing of EOT draws, scoring draws, passes).
_SAME_SETTING = ("eot_samples", "draws", "threat_models", "adaptive_gradient")


def _setting(run: Run) -> tuple:
    config = run.config
    protocol = (run.doc.get("protocol") or {}).get("sha256")
    return (*(repr(config.get(k)) for k in _SAME_SETTING), protocol)


def _cells(run: Run) -> dict[tuple[str, str], tuple[str, float]]:
    """Accuracy per column of a run, keyed by cell id and threat model (two cells with the
    same label but other parameters stay apart): ``clean`` and each attack cell, with its
    heading."""
    out = {("clean", ""): ("clean", float(run.clean_accuracy.value))}
    for a in run.attacks:
        if not a.sanity_only:
            tm = a.threat_model.value
            out[(a.cell_id, tm)] = (f"{a.label} ({tm})", float(a.robust_accuracy.value))
    return out


def _headings(columns: list[tuple[str, str]], cells: dict) -> tuple[str, ...]:
    """Column headings: the cell label, with its cell id where two columns share a label."""
    labels = [cells[c][0] for c in columns]
    return tuple(
        f"{label} [{c[0]}]" if labels.count(label) > 1 else label
        for label, c in zip(labels, columns, strict=True)
    )


def _deployed_id(entry: Entry) -> str:
    """The model id of the checkpoint ``entry`` deploys ("" when its run names none)."""
    return str((entry.newest().doc.get("model") or {}).get("model_id") or "")


def _deployed_signature(entry: Entry) -> str | None:
    """The recipe signature of the checkpoint ``entry`` deploys, from its run's model card
    block (None when the run records no recipe)."""
    card = (entry.newest().doc.get("model") or {}).get("card") or {}
    return recipe_signature(card.get("recipe"))


def seed_groups(
    entry: Entry, entries: list[Entry], accept: Callable[[Run], bool] | None = None
) -> list[tuple[Run, dict[int, Run]]]:
    """For each run of ``entry`` (by suite), the run per seed of its recipe that matches it:
    the entry's own run, and the newest run of the same suite of every other seed (same
    dataset, defense and parameters, and the same recipe apart from the seed,
    :func:`~benchmark.results.cards.recipe_signature`) scored on the same images
    (:attr:`RunView.images_key`) with the same passes and draws, and passing ``accept``; where
    a seed has two checkpoints (retrained under the same id and recipe), the newest such run.
    Runs that only the entry has are left out."""
    mine = _deployed_id(entry)
    if seed_of(mine) is None:
        return []
    recipe, signature = recipe_of({"model_id": mine}), _deployed_signature(entry)
    siblings = [  # (entry, seed) of every checkpoint of the recipe under the same defense
        (e, seed_of(_deployed_id(e)))
        for e in entries
        if e.dataset == entry.dataset
        and e.defense == entry.defense
        and e.defense_params == entry.defense_params
        and recipe_of({"model_id": _deployed_id(e)}) == recipe
        and _deployed_signature(e) == signature
    ]
    out = []
    for run in sorted(entry.runs, key=lambda r: r.suite):
        images, setting = run.images_key, _setting(run)
        if images is None:
            continue
        # Per seed: (the entry's own?, created_at) of the run kept, and the run.
        found: dict[int, tuple[tuple[bool, str], Run]] = {}
        for sib, seed in siblings:
            same = [
                r
                for r in sib.runs
                if r.suite == run.suite
                and r.images_key == images
                and _setting(r) == setting
                and (sib is entry or accept is None or accept(r))
            ]
            if not same or seed is None:
                continue
            pick = run if sib is entry else max(same, key=lambda r: r.created_at)
            # Two checkpoints of one seed (a retrain under the same id and recipe): the entry's
            # own, else the newest run, whatever order the entries come in.
            rank = (sib is entry, pick.created_at)
            if seed not in found or rank > found[seed][0]:
                found[seed] = (rank, pick)
        if len(found) >= 2:
            out.append((run, {seed: r for seed, (_, r) in sorted(found.items())}))
    return out


def seed_runs(entry: Entry, entries: list[Entry]) -> list[SeedSuite]:
    """The robust figures of ``entry``'s recipe over its seeds, per suite (the runs of
    :func:`seed_groups`). Suites whose shared columns hold no attack are left out; columns are
    the cells every seed's run has."""
    out = []
    for run, found in seed_groups(entry, entries):
        cells = {seed: _cells(r) for seed, r in found.items()}
        first = cells[min(cells)]
        columns = [c for c in first if all(c in v for v in cells.values())]
        if len(columns) < 2:  # clean only: the model cards' seed table says that already
            continue
        rows = tuple(
            {
                "seed": seed,
                "model_id": (r.doc.get("model") or {}).get("model_id"),
                "path": r.path,
                "values": tuple(cells[seed][c][1] for c in columns),
                "this": r is run,
            }
            for seed, r in found.items()
        )
        per_col = [[row["values"][i] for row in rows] for i in range(len(columns))]
        out.append(
            SeedSuite(
                suite=run.suite,
                n=run.n,
                columns=_headings(columns, first),
                rows=rows,
                mean=tuple(statistics.fmean(v) for v in per_col),
                sd=tuple(statistics.stdev(v) for v in per_col),
            )
        )
    return out


def attach_seeds(boards: list[Board], seeds: dict[str, RecipeSeeds | None]) -> None:
    """Give every board row whose entry has seeds ``row.details["seeds"]`` (by entry key)."""
    for board in boards:
        for row in board.rows:
            found = seeds.get(row.entry.key)
            if found is not None:
                row.details["seeds"] = found
                board.has_seeds = True


__all__ = [
    "RecipeSeeds",
    "SeedSuite",
    "attach_seeds",
    "deployed_card",
    "entry_seeds",
    "recipe_groups",
    "seed_groups",
    "seed_runs",
]
