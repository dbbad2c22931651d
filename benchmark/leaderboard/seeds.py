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
(:func:`seed_worst_case`). A board still ranks
checkpoints, not recipes: the seeds' spread says how much of a gap training noise could make.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.errors import CheckpointError
from benchmark.leaderboard.corruption_board import (
    corrupted_images_key,
    corruption_balanced_accuracy,
)
from benchmark.leaderboard.rows import Board
from benchmark.leaderboard.runs import Entry, Run
from benchmark.leaderboard.statuses import collapse_reason, run_problems, unreliable_reason
from benchmark.results.cards import read_cards, recipe_of, recipe_signature, seed_of
from benchmark.results.conformance import corruption_protocol_problems
from benchmark.results.protocols import PROTOCOLS

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


def _seed_groups(
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
    :func:`_seed_groups`). Suites whose shared columns hold no attack are left out; columns are
    the cells every seed's run has."""
    out = []
    for run, found in _seed_groups(entry, entries):
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


@dataclass(frozen=True)
class SeedWorstCase:
    """A board row's ranking figure over its recipe's seeds: the balanced worst case at the
    board's eps of every seed's run that :func:`seed_worst_case` pairs with the row's.

    Attributes:
        suite: the suite of the runs.
        n: images each run scored.
        values: (seed, balanced worst case in [0, 1], note) per seed, ascending; the note
            says why that seed's run would not be ranked (``collapsed``; ``unreliable`` beside
            a protocol row), else it is empty.
        mean, sd: over the seeds (sample standard deviation).
    """

    suite: str
    n: int
    values: tuple[tuple[int, float, str], ...]
    mean: float
    sd: float

    @property
    def seeds(self) -> int:
        return len(self.values)


def _balanced_worst(run: Run, eps: float) -> float | None:
    """The run's lowest balanced worst case at L-inf ``eps`` under its default threat model,
    the one its board row's key takes (None: no worst case at ``eps``, or one without the
    balanced figure)."""
    found = [w.robust_balanced_accuracy for w in run.worst_cases() if w.at_linf(eps)]
    if not found or any(v is None for v in found):
        return None
    return float(min(found))


def _seed_note(run: Run, protocol: bool) -> str:
    """Why a seed's run would not be ranked: collapsed; beside a protocol row also unreliable
    (a screening run lacks convergence evidence by design, and its row is exploratory)."""
    if collapse_reason(run):
        return "collapsed"
    return "unreliable" if protocol and unreliable_reason(run) else ""


def _attack_cells(run: Run) -> frozenset[tuple[str, ...]]:
    """The run's attack cells, sanity cells left out: each cell's attack, norm, eps, resolved
    parameters and threat model (a suite run with another attack list or budget differs)."""
    return frozenset(
        (
            a.attack,
            a.norm,
            repr(round(a.eps, 10)) if a.bounded else "",
            json.dumps(a.params, sort_keys=True, default=str),
            a.threat_model.value,
        )
        for a in run.attacks
        if not a.sanity_only
    )


def seed_worst_case(
    entry: Entry,
    entries: list[Entry],
    eps: float,
    source: Run,
    protocol_row: bool = False,
) -> SeedWorstCase | None:
    """The balanced worst case at ``eps`` over the seeds of ``entry``'s recipe: ``source`` (the
    run the entry's board row comes from) and, per other seed, the newest run that
    :func:`_seed_groups` pairs with it and that holds the same attack cells (attack, budget,
    parameters, threat model). Where the source is a protocol run, the other seeds' runs must
    be conformant runs of its protocol. A seed whose run is collapsed is marked, and beside a
    ranked protocol row (``protocol_row``) one that is unreliable. None:
    fewer than two seeds, or a run without a balanced worst case at ``eps``."""
    cells = _attack_cells(source)
    record = source.doc.get("protocol") or {}
    conform = PROTOCOLS.get(record["id"]) if record.get("id") in PROTOCOLS.list() else None

    def accept(run: Run) -> bool:
        if _attack_cells(run) != cells:
            return False  # a worst case over other attacks (another budget) is not comparable
        return conform is None or not run_problems(run, conform)

    for run, found in _seed_groups(entry, entries, accept):
        if run is not source:
            continue
        values = []
        for seed, r in found.items():
            value = _balanced_worst(r, eps)
            if value is None:
                return None
            note = "" if r is source else _seed_note(r, protocol_row)
            values.append((seed, value, note))
        figures = [v for _, v, _ in values]
        return SeedWorstCase(
            run.suite, run.n, tuple(values), statistics.fmean(figures), statistics.stdev(figures)
        )
    return None


def seed_corruption_figure(entry: Entry, entries: list[Entry], source: Run) -> SeedWorstCase | None:
    """The mean corruption balanced accuracy over the seeds of ``entry``'s recipe, beside a
    corruption-protocol row: ``source`` (the row's run) and, per other seed, the newest
    conformant run of the current corruption protocol on the same corrupted images
    (:func:`~benchmark.leaderboard.corruption_board.corrupted_images_key`). A seed whose run is
    collapsed is marked. None: fewer than two seeds."""
    key = corrupted_images_key(source)

    def accept(run: Run) -> bool:
        return not corruption_protocol_problems(run.doc) and corrupted_images_key(run) == key

    for run, found in _seed_groups(entry, entries, accept):
        if run is not source:
            continue
        values = []
        for seed, r in found.items():
            value = corruption_balanced_accuracy(r.severity)
            if value is None:
                return None
            note = "collapsed" if r is not source and collapse_reason(r) else ""
            values.append((seed, value, note))
        figures = [v for _, v, _ in values]
        return SeedWorstCase(
            run.suite, run.n, tuple(values), statistics.fmean(figures), statistics.stdev(figures)
        )
    return None


def attach_seed_worst_cases(boards: list[Board], entries: list[Entry]) -> None:
    """Give every L-inf board row whose recipe's other seeds ran the row's suite on the same
    images with the same attacks ``row.details["seed_worst"]`` (:class:`SeedWorstCase` at the
    board's eps), and every corruption-protocol row of a corruption board its recipe's
    figure over the seeds that ran the protocol on the same corrupted images
    (:func:`seed_corruption_figure`)."""
    for board in boards:
        if board.kind == "corruptions":
            for row in board.rows:
                if row.protocol and row.source is not None:
                    found = seed_corruption_figure(row.entry, entries, row.source)
                    if found is not None:
                        row.details["seed_worst"] = found
                        board.has_seed_worst = True
            continue
        if board.kind != "linf" or board.eps is None:
            continue
        for row in board.rows:
            if row.source is None:
                continue
            # Seeds are marked unreliable only beside a ranked protocol row (a screening row
            # is exploratory, and every screening run lacks convergence evidence by design).
            found = seed_worst_case(
                row.entry, entries, board.eps, row.source, protocol_row=bool(row.protocol)
            )
            if found is not None:
                row.details["seed_worst"] = found
                board.has_seed_worst = True


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
    "SeedWorstCase",
    "attach_seed_worst_cases",
    "attach_seeds",
    "deployed_card",
    "entry_seeds",
    "recipe_groups",
    "seed_corruption_figure",
    "seed_runs",
    "seed_worst_case",
]
