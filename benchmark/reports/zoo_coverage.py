"""The zoo against its target: for each recipe the zoo should hold
(:func:`benchmark.training.recipes.zoo_target`, three seeds each, of a robust recipe's own seeds
or its spares), which seeds have a card of
that very recipe, which are missing, whether any is collapsed, and what a missing seed costs
on the CPU going by its trained seeds. A section of ``docs/model_zoo.md``, generated from the
cards like the rest of the page, so the page says itself how far the zoo is from done.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from benchmark.metrics.balanced import collapsed_splits

if TYPE_CHECKING:  # the recipes load the registries; the report only reads their fields
    from benchmark.training.recipes import TargetRecipe

#: How a card departs from its published recipe: (field, card value, recipe value) triples, or
#: None where no recipe covers it (:func:`benchmark.training.recipes.card_recipe_mismatches`;
#: passed in, since the recipes load torch and the zoo page reads cards only).
RecipeCheck: TypeAlias = Callable[[dict[str, Any]], "list[tuple[str, Any, Any]] | None"]


def coverage_rows(
    cards: Sequence[dict[str, Any]],
    targets: Sequence[TargetRecipe],
    recipe_check: RecipeCheck,
) -> list[dict[str, Any]]:
    """Per target recipe: ``label``, ``kind``, the ``trained`` seeds (a card with the seed's
    zoo id and no departure from the recipe), the ``missing`` ones, the missing seeds whose id
    holds a model of ``another`` recipe (a departure from it, e.g. an earlier, shorter one) or
    of an ``unrecorded`` one (no recipe covers its card), the trained seeds' ``collapsed``
    splits and those ``unchecked`` (a card without the balanced accuracy), and
    ``cpu_minutes``: the mean
    training time of the trained seeds that ran on the CPU (None without one) and
    ``cpu_kernels``, the CPU kernels those seeds' cards record (AVX512, AVX2...)."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for card in cards:
        by_id.setdefault(str(card["model_id"]), []).append(card)
    rows = []
    for target in targets:
        trained: dict[int, dict[str, Any]] = {}
        another: list[int] = []
        unrecorded: list[int] = []
        for seed, mid, _config in (*target.seeds, *target.spares):
            found = by_id.get(mid, [])
            checks = [recipe_check(c) for c in found]
            mine = [c for c, m in zip(found, checks, strict=True) if m == []]
            if mine:
                trained[seed] = mine[0]
            elif any(m for m in checks):
                another.append(seed)
            elif found:
                unrecorded.append(seed)
        on_cpu = [c for c in trained.values() if c.get("environment", {}).get("device") == "cpu"]
        cpu = [c["training_time_seconds"] / 60 for c in on_cpu]
        rows.append(
            {
                "label": target.label,
                "kind": target.kind,
                "dataset": target.dataset,
                "trained": sorted(trained),
                "missing": _missing(target, trained),
                "another": another,
                "unrecorded": unrecorded,
                "collapsed": {
                    s: collapsed_splits(c) for s, c in trained.items() if collapsed_splits(c)
                },
                "unchecked": sorted(
                    s
                    for s, c in trained.items()
                    if not isinstance(c["metrics"]["test"].get("balanced_acc"), dict)
                ),
                "cpu_minutes": statistics.fmean(cpu) if cpu else None,
                "cpu_kernels": sorted(
                    {str(c["environment"].get("cpu_capability") or "unrecorded") for c in on_cpu}
                ),
            }
        )
    return rows


def _missing(target: TargetRecipe, trained: dict[int, Any]) -> list[int]:
    """The seeds to train: as many as the target wants beyond those trained, of its own seeds
    where it has no spares, else of its spares (they stand in for seeds whose starting models
    only one CPU can retrain, :data:`~benchmark.training.recipes.SPARE_SEEDS`)."""
    short = len(target.seeds) - len(trained)
    pool = target.spares or target.seeds
    return [s for s, _, _ in pool if s not in trained][: max(short, 0)]


def _seeds(seeds: Sequence[int]) -> str:
    return ", ".join(f"s{s}" for s in seeds) or "-"


def _check_cell(row: dict[str, Any]) -> str:
    parts = [
        f"s{s} **collapsed ({', '.join(splits)})**"
        for s, splits in sorted(row["collapsed"].items())
    ]
    if row["unchecked"]:
        parts.append(f"{_seeds(row['unchecked'])} not checked")
    if not parts:
        return "none collapsed" if row["trained"] else "-"
    return "; ".join(parts)


def _missing_cell(row: dict[str, Any]) -> str:
    text = _seeds(row["missing"])
    notes = []
    if row["another"]:
        notes.append(f"{_seeds(row['another'])}: another recipe's model under the id")
    if row["unrecorded"]:
        notes.append(f"{_seeds(row['unrecorded'])}: a model whose card no recipe covers")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def render_coverage(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The zoo page's section: a summary per kind, then one line per target recipe."""
    lines = [
        "",
        "## Against the zoo's target",
        "",
        "The target (`zoo_target` in `benchmark/training/recipes.py`, issue 22): the standard",
        "recipe of ResNet-18, ResNet-50, VGG-16, DenseNet-121 and MobileNetV2 on the three",
        "MedMNIST sets and of ResNet-18 and ResNet-50 on `ham10000_220` at 128 px, and every",
        "robust recipe of the boards (ResNet-18), three seeds each. A robust seed fine-tunes",
        "the standard model of its seed; the published ResNet-18 ones of s0-s2 were trained",
        "with unpinned kernels on an Intel Xeon and no other machine can retrain them, so a",
        "robust recipe's missing seeds are planned on the spare seeds s3-s5 (their standard",
        "models trained with `--cpu-isa avx2`), and any three seeds count. A seed counts where the",
        "page's cards (the committed ones, and the local zoo's where it made the page) hold",
        "one of that very recipe (`recipe` above says published): a model of another recipe",
        "under the same id, e.g. an earlier, shorter fine-tune, does not. `collapse check`:",
        "the trained seeds whose validation or test",
        "balanced accuracy interval contains chance, and those whose card predates the field.",
        "`CPU min per seed`: the mean training time of the recipe's seeds trained on the CPU,",
        "the cost of each missing seed on a CPU like theirs (`-` where none was): their CPU",
        "kernels are named, as a CPU with other kernels trains at another speed.",
        "",
    ]
    for kind in ("standard", "robust"):
        mine = [r for r in rows if r["kind"] == kind]
        if not mine:
            continue
        done = sum(len(r["trained"]) for r in mine)
        total = done + sum(len(r["missing"]) for r in mine)
        complete = sum(1 for r in mine if not r["missing"])
        minutes = sum(len(r["missing"]) * r["cpu_minutes"] for r in mine if r["cpu_minutes"])
        unknown = sum(len(r["missing"]) for r in mine if r["missing"] and not r["cpu_minutes"])
        kernels = sorted(
            {k for r in mine if r["missing"] and r["cpu_minutes"] for k in r["cpu_kernels"]}
        )
        head = (
            f"- {kind.capitalize()}: {done} of {total} checkpoints trained; {complete} of "
            f"{len(mine)} recipes have all their seeds."
        )
        if done == total:
            lines.append(head + " None is missing.")
            continue
        lines.append(
            f"{head} The missing seeds of recipes with a "
            f"CPU-trained seed take ~{minutes / 60:.1f} h at their trained seeds' speed"
            + (f" (CPU kernels {', '.join(kernels)})" if kernels else "")
            + (f"; {unknown} more have no seed to go by." if unknown else ".")
        )
    lines += [
        "",
        "| recipe | kind | trained | missing | collapse check | CPU min per seed |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        minutes = (
            "-"
            if r["cpu_minutes"] is None
            else f"{r['cpu_minutes']:.0f} ({', '.join(r['cpu_kernels'])})"
        )
        lines.append(
            f"| `{r['label']}` | {r['kind']} | {_seeds(r['trained'])} | {_missing_cell(r)} | "
            f"{_check_cell(r)} | {minutes} |"
        )
    return lines
