"""Render the model zoo's cards as the Markdown table of ``docs/model_zoo.md``.

The page is generated from the cards (``bench zoo report``), never edited by hand, so every
number on it comes from a training run and carries the checkpoint's sha256. The cards are the
zoo's or the committed copies of them (``leaderboard/zoo/cards``): the page reads the same
fields from both, so it does not depend on where a card came from.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from benchmark.metrics.balanced import collapsed_splits
from benchmark.reports.base import mean_sd
from benchmark.reports.base import pct as _pct
from benchmark.reports.medmnist_v2 import render_comparison
from benchmark.reports.zoo_coverage import RecipeCheck, coverage_rows, render_coverage
from benchmark.results.cards import recipe_of, recipe_signature
from benchmark.results.cost import device_text
from benchmark.results.naming import eps_label
from benchmark.results.provenance import mkl_branch

if TYPE_CHECKING:  # the zoo loads torch; the report only reads the entries' cards
    from benchmark.models.cards import PublishedCard
    from benchmark.models.zoo import ZooEntry
    from benchmark.training.recipes import TargetRecipe

    #: A card to report: a zoo entry's, or a committed one.
    Carded: TypeAlias = ZooEntry | PublishedCard


def _device(card: dict) -> str:
    return device_text(card["environment"], kernels=True)


def _selected_epoch(card: dict) -> dict:
    """The history row of the epoch the card's selection rule kept (empty if absent)."""
    rows = [h for h in card.get("history", []) if h.get("epoch") == card["best_epoch"]]
    return rows[0] if rows else {}


def _val_pct(row: dict, key: str) -> str:
    return "n/a" if row.get(key) is None else f"{100 * row[key]:.1f}"


def _balanced_cell(card: dict) -> str:
    """The test balanced accuracy with its interval, marked where a split's interval contains
    chance; ``-`` for a card without it."""
    b = card["metrics"]["test"].get("balanced_acc")
    if not isinstance(b, dict):
        return "-"
    ci = b.get("ci95")
    numbers = [b.get("value"), *(ci if isinstance(ci, list) else [])]
    if len(numbers) != 3 or not all(
        isinstance(v, (int, float)) and math.isfinite(v) for v in numbers
    ):
        return "malformed"  # a committed card is untrusted input
    collapsed = collapsed_splits(card)
    return _pct(b) + (f" **collapsed ({', '.join(collapsed)})**" if collapsed else "")


def _defense_flags(card: dict) -> str:
    """The ``bench train`` flags that reproduce a robust model's recipe."""
    r = card["recipe"]
    flags = f" --defense {r['defense']}"
    for key, value in sorted(r.get("defense_params", {}).items()):
        flags += f" --defense-param {key}={value}"
    flags += f" --lr {r['lr']}"
    if "select_eps" in r:
        eps = eps_label(r["select_eps"])
        flags += f" --select robust --select-eps {eps} --select-steps {r['select_steps']}"
    if r.get("init_from"):
        flags += f" --init-from {r['init_from']}"
    return flags


def _reproduce(card: dict) -> str:
    """Where and how the card's model was trained, and the command that trains it again."""
    r = card["recipe"]
    git = card["git"]
    commit = str(git["commit"])[:10] + (" with uncommitted local changes" if git["dirty"] else "")
    robust = card.get("defense") is not None
    cmd = (
        f"bench train --dataset {card['dataset']} --arch {card['arch']} --size "
        f"{card['image_size']} --epochs {r['epochs']} --seed {r['seed']}"
        + (_defense_flags(card) if robust else "")
    )
    env = card["environment"]
    variables = env.get("cpu_isa_env") or {}
    pinned = variables.get("ATEN_CPU_CAPABILITY")
    if env["device"] == "cpu" and pinned:
        # The variables act when the process starts; an earlier pin's are not today's.
        prefix = " ".join(f"{k}={v}" for k, v in sorted(variables.items()))
        cmd = f"{prefix} {cmd} --cpu-isa {pinned}"
    if env["device"] == "cpu":
        kernels = env.get("cpu_capability")
        branch = mkl_branch(env) if pinned else None
        where = ""
        if not pinned and env.get("cpu"):
            # Unpinned, the kernels are also the CPU's choice (oneDNN, MKL): name the CPU.
            where = f", unpinned, on a CPU like {env['cpu']}"
        elif pinned and branch != "COMPATIBLE":
            # MKL honours a branch other than COMPATIBLE on Intel CPUs only.
            where = (
                f", on a CPU of the same vendor as {env.get('cpu') or 'the card (not recorded)'}"
                f" (MKL's branch was {branch or 'unknown'}: MKL_CBWR={variables.get('MKL_CBWR')}"
                " is honoured on Intel CPUs only)"
            )
        exact = (
            "bit-identical on CPU with the same torch build, thread count "
            f"({env['num_threads']}) and CPU kernels "
            + (f"({kernels})" if kernels else "(not recorded by this card)")
            + where
        )
    else:
        exact = (
            f"trained on {_device(card)}: seeded, but CUDA kernels are not bit-deterministic, "
            "so a rerun gives a close, not identical, checkpoint"
        )
    loss = f"defense {r['defense']}" if robust else r["loss"]
    return (
        f"- `{card['model_id']}`: {r['optimizer']} lr {r['lr']}, batch {r['batch_size']}, "
        f"{r['epochs']} epochs, lr x{r['gamma']} at epochs {r['milestones_epochs']}, "
        f"{loss}, seed {r['seed']}, torch {card['environment']['torch']}, "
        f"trained {card['created_at']} at commit {commit}. Reproduce: `{cmd}` ({exact}; "
        f"`bench zoo rebuild {card['model_id']}` runs it from this card and checks the sha256)."
    )


def _rebuilt(records: Sequence[dict[str, Any]], cards: dict[str, dict]) -> list[str]:
    """The section of retrain records: per model, whether `bench zoo rebuild` gave the card's
    checkpoint back, with what threads and kernels, in how long, and why not where it did not.
    Only records of the page's models are listed; one of an earlier card of the id (another
    published sha256) says so."""
    records = [r for r in records if r["model_id"] in cards]  # of the models on this page
    if not records:
        return []
    lines = [
        "",
        "## Retrained from the cards",
        "",
        "`bench zoo rebuild ID` retrains a model from its committed card alone (recipe, seed,",
        "thread count, CPU kernels; a fine-tuned model after the model it starts from) and",
        "compares the checkpoint's sha256 with the card's. Records: `benchmarks/records/rebuild/`.",
        "",
        "| model id | sha256 | threads, kernels, CPU | train time | retrained | note |",
        "|---|---|---|---|---|---|",
    ]
    for rec in sorted(records, key=lambda r: r["model_id"]):
        card = cards[rec["model_id"]]
        outcome = "identical" if rec["identical"] else f"differs (`{rec['rebuilt_sha256'][:16]}`)"
        notes = list(rec["gaps"])
        if card["checkpoint"]["sha256"] != rec["published_sha256"]:
            notes.append("a record of an earlier card of this id")
        if not rec["identical"] and not rec["gaps"]:
            notes.append("nothing known explains it")
        ran, pub = rec["rebuilt"], rec["published"]
        machine = ("cpu", "cpu_host_isa")
        said = any(g.startswith("unpinned CPU kernels") for g in rec["gaps"])
        if ran.get("cpu") and not said and any(pub.get(k) != ran.get(k) for k in machine):
            if pub.get("cpu_host_isa"):
                notes.append(
                    f"the card was trained on another machine ({pub.get('cpu')}, "
                    f"{pub['cpu_host_isa']})"
                )
            elif pub.get("cpu") == ran.get("cpu"):
                notes.append(
                    f"the card's machine ({pub.get('cpu')}) did not record its widest kernels"
                )
            else:
                notes.append(
                    f"the card was trained on another machine ({pub.get('cpu')}, its widest "
                    "kernels not recorded)"
                )
        if not rec["identical"] and ran.get("test_acc") is not None:
            published = rec["published"].get("test_acc")
            card_acc = "" if published is None else f" (the card's {100 * published:.1f} %)"
            notes.append(f"test ACC {100 * ran['test_acc']:.1f} %{card_acc}")
        note = "; ".join(notes) or "-"
        minutes = float(ran.get("training_time_seconds") or rec["seconds"]) / 60
        on = f", {ran['cpu']} ({ran.get('cpu_host_isa')})" if ran.get("cpu") else ""
        lines.append(
            f"| `{rec['model_id']}` | `{rec['published_sha256'][:16]}` | "
            f"{ran.get('num_threads', '?')}, {ran.get('cpu_capability') or '?'} "
            f"({rec['cpu_isa']}){on} | {minutes:.1f} min | {outcome}, {rec['created_at'][:10]} | "
            f"{note} |"
        )
    return lines


def _recipe_groups(entries: Sequence[Carded]) -> dict[str, list[dict]]:
    """The cards per recipe, labelled by the recipe's name (the model id without its seed).
    Seeds pair only within one recipe: the same id pattern with another recipe (an earlier,
    shorter fine-tune of MPAdvT, whose id names no epochs) is a group of its own, its label
    naming how it differs."""
    by_signature: dict[tuple[str, str], list[dict]] = {}
    for e in entries:
        key = (recipe_of(e.card), recipe_signature(e.card.get("recipe")) or "")
        by_signature.setdefault(key, []).append(e.card)
    groups: dict[str, list[dict]] = {}
    for (name, signature), cards in by_signature.items():
        others = [sig for n, sig in by_signature if n == name and sig != signature]
        label = f"{name} ({_recipe_difference(signature, others)})" if others else name
        groups[label] = cards
    return groups


def _spread_by_checkpoint(groups: dict[str, list[dict]]) -> dict[tuple[str, str], str]:
    """Per checkpoint (model id, sha256), its recipe's test ACC over the seeds, for the
    ``recipe ACC`` column beside it: ``84.6 ± 0.6 (3)``."""
    out = {}
    for cards in groups.values():
        text = f"{mean_sd([c['metrics']['test']['acc']['value'] for c in cards])} ({len(cards)})"
        for c in cards:
            out[(c["model_id"], c["checkpoint"]["sha256"])] = text
    return out


def _seed_spread(groups: dict[str, list[dict]]) -> list[str]:
    """The table of test scores per recipe over its seeds (mean ± sample sd)."""
    lines = [
        "",
        "## Seeds: test scores per recipe",
        "",
        "Each recipe's checkpoints differ only in their seed (initialisation and data order).",
        "Mean ± sample standard deviation over the seeds, in percent; a gap between two recipes",
        "smaller than their spread is training noise, not a difference between them. A recipe",
        "with one seed has no spread yet.",
        "",
        "| recipe | seeds | test ACC | test AUC |",
        "|---|---|---|---|",
    ]
    for recipe, cards in sorted(groups.items()):
        seeds = ", ".join(str(c["seed"]) for c in sorted(cards, key=lambda c: c["seed"]))
        acc = [c["metrics"]["test"]["acc"]["value"] for c in cards]
        auc = [c["metrics"]["test"]["auc"]["value"] for c in cards]
        lines.append(f"| `{recipe}` | {seeds} | {mean_sd(acc)} | {mean_sd(auc)} |")
    return lines


def _recipe_difference(signature: str, others: list[str]) -> str:
    """The recipe fields in which ``signature`` differs from the ``others`` of its id pattern
    (:func:`~benchmark.results.cards.recipe_signature`), with its values: ``epochs 5``."""
    if not signature:
        return "recipe not recorded"
    mine = json.loads(signature)
    theirs = [json.loads(o) for o in others if o]
    keys = sorted(set(mine).union(*theirs))
    differ = [k for k in keys if any(t.get(k) != mine.get(k) for t in theirs)]
    return ", ".join(f"{k} {mine.get(k)}" for k in differ) or "recipe not recorded"


def _uncarded(missing: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    """The section of published models whose card is not committed."""
    lines = [
        "",
        "## Published models without a committed card",
        "",
        "Results under `leaderboard/results` evaluated these checkpoints, but their full model",
        "cards were not committed (`bench zoo cards`) before the zoo that held them was gone.",
        "What the results files record of them is below; their validation and test scores and",
        "history are not, so they are left out of the tables above and of the seed spread.",
        "Retraining with the recipe gives a new checkpoint (a new sha256): the published results",
        "can be rechecked only with these weights.",
        "",
        "| model id | dataset | arch | epochs (selected) | device (recipe) | training hours | "
        "results files | checkpoint sha256 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (mid, sha), info in sorted(missing.items()):
        card = info["card"]
        recipe = card.get("recipe") if isinstance(card.get("recipe"), dict) else {}
        hours = card.get("training_time_hours")
        lines.append(
            f"| `{mid}` | {info['dataset']} | {info['arch']} | {card.get('epochs', '-')} "
            f"({card.get('best_epoch', '-')}) | {recipe.get('device', '-')} | "
            f"{f'{hours:.3f}' if isinstance(hours, (int, float)) else '-'} | {info['files']} | "
            f"`{sha[:16]}` |"
        )
    return lines


def _eps_text(value: Any) -> str:
    return eps_label(float(value)) if isinstance(value, (int, float)) else str(value)


def recipe_text(mismatches: list[tuple[str, Any, Any]] | None) -> str:
    """The robust table's ``recipe`` cell: ``published``, ``-`` (no recipe covers the card),
    or what the card's training did instead (``earlier: 5 epochs, PGD-3, selected at 4/255``)."""
    if mismatches is None:
        return "-"
    if not mismatches:
        return "published"
    parts = []
    fields = {name for name, _, _ in mismatches}
    for name, got, _want in mismatches:
        if name == "epochs":
            parts.append(f"{got} epochs")
        elif name == "defense_params":  # the parameters in force that differ, card's values
            got = dict(got or {})
            if "steps" in got:
                parts.append(f"PGD-{got['steps']}")
            if "eps" in got:
                parts.append(f"eps {_eps_text(got['eps'])}")
            parts += [
                f"{k}={'unset' if got[k] is None else got[k]}"
                for k in sorted(got)
                if k not in ("steps", "eps")
            ]
        elif name == "select_eps":
            parts.append(f"selected at {_eps_text(got)}")
        elif name == "select_steps":
            parts.append(f"selection PGD-{got}")
        elif name == "lr":
            parts.append(f"lr {got:g}" if isinstance(got, (int, float)) else f"lr {got}")
        elif name == "selection" and fields & {"select_eps", "select_steps"}:
            continue  # the rule's text differs by the attack already named
        else:
            parts.append(name.replace("_", " "))
    return "earlier: " + ", ".join(parts)


def render_zoo_markdown(
    entries: Sequence[Carded],
    *,
    command: str = "bench zoo report",
    uncarded: dict[tuple[str, str], dict[str, Any]] | None = None,
    recipe_check: RecipeCheck | None = None,
    rebuilds: Sequence[dict[str, Any]] = (),
    targets: Sequence[TargetRecipe] = (),
) -> str:
    """A Markdown page listing every model with its recipe, scores and checksum: standard
    models first, then the robust models of training-time defenses with their selected epoch;
    ``uncarded``: published checkpoints (:func:`~benchmark.results.cards.
    models_named_by_results`) with no card among ``entries``, listed with what their results
    record; ``recipe_check``: where given, the robust table says of each model whether it was
    trained with the published robust recipe (:data:`RecipeCheck`); ``rebuilds``: retrain
    records (:func:`~benchmark.results.cards.read_rebuild_records`), listed in their own
    section; ``targets``: the zoo's target recipes
    (:func:`benchmark.training.recipes.zoo_target`), whose coverage by the cards gets a
    section of its own (it needs ``recipe_check``)."""
    ordered = sorted(entries, key=lambda x: x.model_id)
    standard = [e for e in ordered if e.card.get("defense") is None]
    robust = [e for e in ordered if e.card.get("defense") is not None]
    groups = _recipe_groups(standard + robust)
    spread = _spread_by_checkpoint(groups)

    def _spread_of(card: dict) -> str:
        return spread[(card["model_id"], card["checkpoint"]["sha256"])]

    lines = [
        "# Model zoo",
        "",
        f"Generated by `{command}` from the model cards (`bench zoo cards` commits them to",
        "`leaderboard/zoo/cards/`); do not edit by hand.",
        "Test ACC and AUC are in percent with their 95% confidence intervals (ACC: Wilson,",
        "AUC: percentile bootstrap over test images, 1000 resamples). A standard model keeps the",
        "epoch with the best validation AUC (MedMNIST v2's rule, kept even where that epoch's",
        "model is collapsed, so that the comparison with its Table 3 below holds; such a model",
        "is marked here and no board ranks it); the test split is scored once, on that model.",
        "`recipe test ACC (seeds)`: the test ACC of every checkpoint of the row's recipe (the",
        "same training, another seed), mean ± sample sd, their number in brackets; the row is",
        "one of them. The seed table below gives the AUC too.",
        "`test bal. ACC`: balanced accuracy (mean per-class recall) with its class-stratified",
        "bootstrap interval; **collapsed** where the validation or test interval contains",
        "chance (1/K), the boards' collapse check; `-` for a card written before cards",
        "recorded it (`bench zoo rescore ID` adds it where the zoo holds the checkpoint;",
        "`bench zoo rebuild ID --missing` first retrains a lost one from its card, then adds it).",
    ]
    recipe_col = " recipe |" if recipe_check is not None else ""
    if recipe_check is not None:
        lines += [
            "`recipe`: *published* where the model was trained with its dataset's standard",
            "recipe of `benchmark/training/recipes.py`, else how its training differed.",
        ]
    lines += [
        "",
        "| model id | dataset | size | arch | epochs (best) | val ACC | val AUC | test ACC | "
        "recipe test ACC (seeds) | test AUC | test bal. ACC | train time | device | "
        "checkpoint sha256 |" + recipe_col,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        + ("---|" if recipe_col else ""),
    ]
    for e in standard:
        c = e.card
        m = c["metrics"]
        lines.append(
            f"| `{c['model_id']}` | {c['dataset']} | {c['image_size']} | {c['arch']} | "
            f"{c['epochs']} ({c['best_epoch']}) | {_pct(m['val']['acc'])} | "
            f"{_pct(m['val']['auc'])} | {_pct(m['test']['acc'])} | {_spread_of(c)} | "
            f"{_pct(m['test']['auc'])} | {_balanced_cell(c)} | "
            f"{c['training_time_seconds'] / 60:.1f} min | "
            f"{_device(c)} | `{c['checkpoint']['sha256'][:16]}` |"
            + (f" {recipe_text(recipe_check(c))} |" if recipe_check is not None else "")
        )
    if robust:
        lines += [
            "",
            "## Robust models (training-time defenses)",
            "",
            "Adversarially trained from the standard model named in `init from`. The epoch is",
            "chosen on the validation split by the rule in each card (`recipe.selection`); its",
            "validation balanced accuracy, clean and under the selection attack, is shown in %.",
            "Training time in hours, as MedRDF Table XI reports it.",
        ]
        if recipe_check is not None:
            lines += [
                "`recipe`: *published* where the model was trained with the robust recipe",
                "of `benchmark/training/recipes.py` (PGD-7 at the training eps, 12 epochs from",
                "the standard model, selected under PGD-4 at that eps, at 4/255 for MPAdvT;",
                "the protocol campaign trains it), else how its training differed.",
            ]
        lines += [
            "",
            "| model id | defense | parameters | init from | epochs (selected) | "
            "val bal. clean / attacked | test ACC | recipe test ACC (seeds) | test AUC | "
            "test bal. ACC | hours | device | checkpoint sha256 |" + recipe_col,
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
            + ("---|" if recipe_col else ""),
        ]
        for e in robust:
            c = e.card
            m, d, row = c["metrics"], c["defense"], _selected_epoch(c)
            params = ", ".join(f"{k}={v}" for k, v in sorted(d["params"].items()))
            lines.append(
                f"| `{c['model_id']}` | {d['id']} | {params} | "
                f"{c['recipe'].get('init_from') or 'scratch'} | "
                f"{c['epochs']} ({c['best_epoch']}) | {_val_pct(row, 'val_balanced_acc')} / "
                f"{_val_pct(row, 'val_robust_balanced_acc')} | {_pct(m['test']['acc'])} | "
                f"{_spread_of(c)} | "
                f"{_pct(m['test']['auc'])} | {_balanced_cell(c)} | "
                f"{c['training_time_hours']:.3f} | {_device(c)} | "
                f"`{c['checkpoint']['sha256'][:16]}` |"
                + (f" {recipe_text(recipe_check(c))} |" if recipe_check is not None else "")
            )
    carded = {(e.model_id, e.card["checkpoint"]["sha256"]) for e in ordered}
    missing = {k: v for k, v in (uncarded or {}).items() if k not in carded}
    if missing:
        lines += _uncarded(missing)
    if targets and recipe_check is not None:
        lines += render_coverage(coverage_rows([e.card for e in ordered], targets, recipe_check))
    lines += _seed_spread(groups)
    lines += render_comparison([e.card for e in standard])
    lines += _rebuilt(rebuilds, {e.model_id: e.card for e in ordered})
    lines += ["", "## Recipes and how to reproduce", ""]
    lines += [_reproduce(e.card) for e in standard + robust]
    return "\n".join(lines) + "\n"
