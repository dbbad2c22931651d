"""The zoo report's spread of a recipe's test scores over its seeds."""

from __future__ import annotations

from pathlib import Path

from benchmark.models.zoo import ZooEntry
from benchmark.reports.zoo import _recipe_groups, _seed_spread, recipe_of


def _card(mid: str, seed: int, acc: float, auc: float) -> ZooEntry:
    metrics = {"test": {"acc": {"value": acc}, "auc": {"value": auc}}}
    return ZooEntry(Path(mid), {"model_id": mid, "seed": seed, "metrics": metrics})


def test_recipes_and_their_spread_over_seeds():
    assert recipe_of({"model_id": "resnet18_breastmnist_28px_s1_pgd_at"}) == (
        "resnet18_breastmnist_28px_pgd_at"
    )
    assert recipe_of({"model_id": "resnet18_breastmnist_28px_s12"}) == "resnet18_breastmnist_28px"
    assert recipe_of({"model_id": "vit_s16_ham10000_220_128px_s2_pgd_at"}) == (
        "vit_s16_ham10000_220_128px_pgd_at"
    )
    entries = [
        _card("resnet18_breastmnist_28px_s0", 0, 0.80, 0.90),
        _card("resnet18_breastmnist_28px_s1", 1, 0.84, 0.86),
        _card("resnet18_breastmnist_28px_s2", 2, 0.88, 0.88),
        _card("resnet18_breastmnist_28px_s0_pgd_at", 0, 0.70, 0.75),
    ]
    rows = [line for line in _seed_spread(_recipe_groups(entries)) if line.startswith("| `")]
    # mean 84.0, sample sd 4.0 (ACC); mean 88.0, sd 2.0 (AUC); one seed: no spread
    assert rows == [
        "| `resnet18_breastmnist_28px` | 0, 1, 2 | 84.0 ± 4.0 | 88.0 ± 2.0 |",
        "| `resnet18_breastmnist_28px_pgd_at` | 0 | 70.0 | 75.0 |",
    ]


def test_seeds_pair_only_within_one_recipe_under_an_id_pattern():
    """An earlier, shorter MPAdvT fine-tune shares the id pattern of the 12-epoch recipe (its
    id names no epochs): the table keeps the two recipes apart and says how they differ."""
    entries = []
    for seed, epochs, acc in ((0, 5, 0.53), (1, 12, 0.40), (2, 12, 0.44)):
        e = _card(f"resnet18_retinamnist_28px_s{seed}_mpadvt", seed, acc, 0.7)
        e.card["recipe"] = {"arch": "resnet18", "epochs": epochs, "defense": "mpadvt"}
        entries.append(e)
    rows = [line for line in _seed_spread(_recipe_groups(entries)) if line.startswith("| `")]
    assert rows == [
        "| `resnet18_retinamnist_28px_mpadvt (epochs 12)` | 1, 2 | 42.0 ± 2.8 | 70.0 ± 0.0 |",
        "| `resnet18_retinamnist_28px_mpadvt (epochs 5)` | 0 | 53.0 | 70.0 |",
    ]


def test_published_checkpoints_without_a_card_are_listed_from_their_results(tmp_path):
    import json

    from benchmark.reports.zoo import render_zoo_markdown
    from benchmark.results.cards import models_named_by_results

    folder = tmp_path / "results" / "d" / "suite" / "m"
    folder.mkdir(parents=True)
    doc = {
        "config": {"dataset": "pneumoniamnist", "arch": "resnet18"},
        "environment": {"device": "cuda"},
        "model": {
            "model_id": "resnet18_pneumoniamnist_28px_s0_mart_steps=3",
            "checkpoint_sha256": "ab" * 32,
            "card": {
                "epochs": 2,
                "best_epoch": 2,
                "training_time_hours": 0.0012,
                "recipe": {"device": "cuda"},
            },
        },
    }
    for i in range(2):
        (folder / f"r{i}.json").write_text(json.dumps(doc))
    (folder / "broken.json").write_text("{not json")
    found = models_named_by_results(tmp_path / "results")
    assert list(found) == [("resnet18_pneumoniamnist_28px_s0_mart_steps=3", "ab" * 32)]
    page = render_zoo_markdown([], uncarded=found)
    row = next(line for line in page.splitlines() if "mart_steps=3" in line)
    assert row == (
        "| `resnet18_pneumoniamnist_28px_s0_mart_steps=3` | pneumoniamnist | resnet18 | 2 (2) | "
        f"cuda | 0.001 | 2 | `{'ab' * 8}` |"
    )
