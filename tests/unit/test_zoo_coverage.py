"""The zoo's target (issue 22) and the zoo page's section saying how far the cards cover it."""

from __future__ import annotations

from pathlib import Path

from benchmark.reports.zoo_coverage import coverage_rows, render_coverage
from benchmark.training.recipes import (
    MEDMNIST_ARCHS,
    ROBUST_DEFENSES,
    SEEDS,
    SPARE_SEEDS,
    recipe_model_id,
    standard_config,
    zoo_target,
)


def test_the_target_is_five_architectures_two_on_ham_and_the_boards_robust_recipes():
    targets = zoo_target()
    standard = [t for t in targets if t.kind == "standard"]
    robust = [t for t in targets if t.kind == "robust"]
    assert len(standard) == 3 * len(MEDMNIST_ARCHS) + 2 == 17
    assert {t.arch for t in standard if t.dataset == "ham10000_220"} == {"resnet18", "resnet50"}
    # five defenses on three sets, and PneumoniaMNIST's TRADES beta = 1 entry
    assert len(robust) == 3 * len(ROBUST_DEFENSES) + 1 == 16
    assert "resnet18_pneumoniamnist_28px_trades_beta=1,steps=7" in {t.label for t in robust}
    ids = [mid for t in targets for _, mid, _ in t.seeds]
    assert len(ids) == len(set(ids)) == 3 * 33
    for t in targets:
        assert tuple(s for s, _, _ in t.seeds) == SEEDS
        for seed, mid, config in t.seeds:
            assert recipe_model_id(config) == mid and config.seed == seed
            if t.kind == "robust":  # a fine-tune of the standard model of its own seed
                base = standard_config(t.dataset, t.arch, seed)
                assert config.init_from == recipe_model_id(base)
    retina = {t.label for t in robust if t.dataset == "retinamnist"}
    assert "resnet18_retinamnist_28px_pgd_at_eps=0.00784313725490196,steps=7" in retina


def _card(
    mid: str,
    *,
    recipe: str = "published",
    balanced: float | None = 0.7,
    minutes: float | None = 10.0,
) -> dict:
    test = {"acc": {"value": 0.8, "ci95": [0.7, 0.9]}}
    val = {}
    if balanced is not None:
        ci = [balanced - 0.1, balanced + 0.1]
        test["balanced_acc"] = {"value": balanced, "ci95": ci, "classes": 2}
        val["balanced_acc"] = {"value": balanced, "ci95": ci, "classes": 2}
    return {
        "model_id": mid,
        "recipe_kind": recipe,
        "metrics": {"test": test, "val": val},
        "training_time_seconds": 60 * (minutes or 0.1),
        "environment": (
            {"device": "cuda"} if minutes is None else {"device": "cpu", "cpu_capability": "AVX512"}
        ),
    }


def _check(card):
    return [] if card["recipe_kind"] == "published" else [("epochs", 2, 12)]


def test_coverage_counts_only_the_recipe_and_flags_collapse_and_unchecked_seeds():
    targets = [t for t in zoo_target() if t.label == "resnet18_breastmnist_28px"]
    targets += [t for t in zoo_target() if t.label == "resnet18_pneumoniamnist_28px_mpadvt"]
    std = [mid for _, mid, _ in targets[0].seeds]
    mp = [mid for _, mid, _ in targets[1].seeds]
    cards = [
        _card(std[0], minutes=10.0),
        _card(std[1], balanced=0.5, minutes=20.0),  # interval holds chance: collapsed
        _card(std[2], balanced=None, minutes=None),  # no balanced accuracy; GPU-trained
        _card(mp[0], recipe="earlier"),  # the 2-epoch fine-tune under the recipe's id
    ]
    std_row, mp_row = coverage_rows(cards, targets, _check)
    assert std_row["trained"] == [0, 1, 2] and std_row["missing"] == []
    assert std_row["collapsed"] == {1: ["val", "test"]} and std_row["unchecked"] == [2]
    assert std_row["cpu_minutes"] == 15.0  # the GPU-trained seed is not a CPU cost
    assert std_row["cpu_kernels"] == ["AVX512"]  # the speed the minutes were measured at
    # A robust recipe's missing seeds are planned on its spares (s3-s5).
    assert mp_row["trained"] == [] and mp_row["missing"] == [3, 4, 5]
    assert mp_row["another"] == [0] and mp_row["unrecorded"] == []
    assert mp_row["cpu_minutes"] is None
    # A missing seed's cost is named with the kernels it was measured at, not as this machine's.
    short = {**std_row, "trained": [0, 1], "missing": [2]}
    (summary,) = [x for x in render_coverage([short]) if x.startswith("- Standard")]
    assert summary.endswith("take ~0.2 h at their trained seeds' speed (CPU kernels AVX512).")

    lines = render_coverage([std_row, mp_row])
    text = "\n".join(lines)
    # A complete kind says so, not "~0.0 h" for the seeds it does not miss.
    complete = "- Standard: 3 of 3 checkpoints trained; 1 of 1 recipes have all their seeds."
    assert f"{complete} None is missing." in lines
    assert "- Robust: 0 of 3 checkpoints trained; 0 of 1 recipes have all their seeds." in text
    assert "3 more have no seed to go by" in text
    assert (
        "| `resnet18_breastmnist_28px` | standard | s0, s1, s2 | - | "
        "s1 **collapsed (val, test)**; s2 not checked | 15 (AVX512) |"
    ) in lines
    assert (
        "| `resnet18_pneumoniamnist_28px_mpadvt` | robust | - | s3, s4, s5 (s0: another "
        "recipe's model under the id) | - | - |"
    ) in lines


def test_spare_seeds_stand_in_for_a_robust_recipes_missing_ones():
    """Any three seeds of a robust recipe count, its own or its spares (whose starting models
    any machine can train); the shortfall is planned on the spares, and a fourth seed adds
    nothing missing."""
    (target,) = [t for t in zoo_target() if t.label.startswith("resnet18_retinamnist_28px_mart")]
    assert [s for s, _, _ in target.spares] == list(SPARE_SEEDS)
    for seed, mid, config in target.spares:
        base = standard_config(target.dataset, target.arch, seed)
        assert config.init_from == recipe_model_id(base) and mid.startswith("resnet18_retina")
    ids = {s: mid for s, mid, _ in (*target.seeds, *target.spares)}

    def row(*seeds: int) -> dict:
        (r,) = coverage_rows([_card(ids[s]) for s in seeds], [target], _check)
        return r

    assert row(0)["trained"] == [0] and row(0)["missing"] == [3, 4]
    assert row(0, 1, 3)["trained"] == [0, 1, 3] and row(0, 1, 3)["missing"] == []
    assert row(3, 5)["missing"] == [4]
    assert row(0, 1, 2, 3)["missing"] == []
    # A standard recipe has no spares: its own seeds are the ones missing.
    (std,) = [t for t in zoo_target() if t.label == "resnet18_retinamnist_28px"]
    assert std.spares == ()
    (r,) = coverage_rows([], [std], _check)
    assert r["missing"] == [0, 1, 2]


def test_every_sensitivity_entry_is_a_parameter_its_recipe_allows():
    """A sensitivity entry's parameters must be ones a card may set beside the recipe's
    (SENSITIVITY_PARAMS), else no model of it could ever count as trained."""
    from benchmark.training.recipes import SENSITIVITY_ENTRIES, SENSITIVITY_PARAMS

    assert SENSITIVITY_ENTRIES
    for entries in SENSITIVITY_ENTRIES.values():
        for defense, params in entries:
            assert set(params) <= set(SENSITIVITY_PARAMS.get(defense, ())), (defense, params)


def test_coverage_of_the_committed_cards_with_the_real_recipe_check():
    from benchmark.models.cards import read_cards
    from benchmark.training.recipes import card_recipe_mismatches

    root = Path(__file__).resolve().parents[2]
    cards = [c.card for c in read_cards(root / "leaderboard" / "zoo" / "cards")]
    rows = {r["label"]: r for r in coverage_rows(cards, zoo_target(), card_recipe_mismatches)}
    # BreastMNIST's 2/255 PGD-AT recipe has its three seeds; PneumoniaMNIST's MPAdvT s0 is the
    # earlier 2-epoch fine-tune under the recipe's id, which does not count.
    pgd = rows["resnet18_breastmnist_28px_pgd_at_eps=0.00784313725490196,steps=7"]
    assert pgd["trained"] == [0, 1, 2] and pgd["missing"] == [] and not pgd["collapsed"]
    mp = rows["resnet18_pneumoniamnist_28px_mpadvt"]
    assert mp["trained"] == [] and mp["another"] == [0] and mp["unrecorded"] == []
    # The committed page says what these cards say.
    page = (root / "docs" / "model_zoo.md").read_text()
    assert "\n".join(render_coverage(list(rows.values()))) in page
