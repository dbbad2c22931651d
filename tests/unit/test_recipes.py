"""The published recipes (``benchmark.training.recipes``) against the committed model cards,
and the protocol campaign that trains and evaluates with them
(``benchmarks/protocol_campaign.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from benchmark.errors import ConfigError
from benchmark.training.config import TrainConfig
from benchmark.training.recipes import (
    SEEDS,
    format_mismatches,
    recipe_mismatches,
    recipe_model_id,
    robust_config,
    robust_params,
    standard_config,
    standard_departures,
)

ROOT = Path(__file__).resolve().parents[2]
CARDS = ROOT / "leaderboard" / "zoo" / "cards"
RETINA_2_255 = "eps=0.00784313725490196,steps=7"


def _differences(card_recipe: dict[str, Any], config: Any) -> list[str]:
    return format_mismatches(recipe_mismatches(card_recipe, config))


def _card(mid: str) -> dict[str, Any]:
    return json.loads((CARDS / f"{mid}.json").read_text())


def test_every_committed_standard_card_was_trained_with_its_published_recipe():
    checked = 0
    for path in sorted(CARDS.glob("*.json")):
        card = json.loads(path.read_text())
        r = card["recipe"]
        if r.get("defense"):
            continue
        config = standard_config(r["dataset"], r["arch"], r["seed"])
        assert recipe_model_id(config) == card["model_id"]
        assert _differences(r, config) == [], card["model_id"]
        checked += 1
    assert checked >= 20


@pytest.mark.parametrize(
    ("mid", "defense", "seed"),
    # Every committed RetinaMNIST 2/255 PGD-7 card (seed 0 of each defense at least).
    [
        (p.stem, d, s)
        for d in ("pgd_at", "trades", "mart")
        for s in SEEDS
        for p in CARDS.glob(f"resnet18_retinamnist_28px_s{s}_{d}_{RETINA_2_255}.json")
    ],
)
def test_the_retinamnist_2_255_cards_are_the_published_robust_recipe(mid, defense, seed):
    config = robust_config("retinamnist", defense, seed=seed)
    assert recipe_model_id(config) == mid
    assert _differences(_card(mid)["recipe"], config) == []


def test_an_older_recipe_is_named_field_by_field():
    card = _card("resnet18_retinamnist_28px_s0_pgd_at_steps=3")["recipe"]
    diff = _differences(card, robust_config("retinamnist", "pgd_at"))
    assert [d.split(":")[0] for d in diff] == [
        "epochs",
        "defense_params",
        "select_eps",
        "selection",
    ]
    assert "card 5 != recipe 12" in diff[0]


def test_a_card_selected_by_another_rule_is_not_the_recipe():
    config = robust_config("retinamnist", "pgd_at", seed=1)
    card = dict(_card(f"resnet18_retinamnist_28px_s1_pgd_at_{RETINA_2_255}")["recipe"])
    card["selection"] = "best validation AUC (ties: validation ACC)"
    assert [d.split(":")[0] for d in _differences(card, config)] == ["selection"]


def test_robust_params_name_the_model_and_refuse_an_unknown_defense():
    assert robust_params("pneumoniamnist", "pgd_at") == {"steps": 7}
    assert robust_params("breastmnist", "pgd_at") == {"steps": 7, "eps": 2 / 255}
    assert robust_params("retinamnist", "trades") == {"steps": 7, "eps": 2 / 255}
    assert robust_params("pneumoniamnist", "mpadvt") == {}
    config = robust_config("pneumoniamnist", "trades", seed=2, extra_params={"beta": 1})
    assert recipe_model_id(config) == "resnet18_pneumoniamnist_28px_s2_trades_beta=1,steps=7"
    assert config.init_from == "resnet18_pneumoniamnist_28px_s2" and config.epochs == 12
    assert config.select_eps == pytest.approx(8 / 255)
    with pytest.raises(ConfigError, match="no robust recipe for defense 'jpeg'"):
        robust_params("breastmnist", "jpeg")
    with pytest.raises(ConfigError, match="no published recipe for dataset 'cifar10'"):
        standard_config("cifar10")


def test_the_campaign_runs_seed_0_first_and_the_other_seeds_last(campaign):
    camp = campaign
    todo = camp.jobs(["breastmnist", "retinamnist"], ["deterministic", "adaptive", "transfer"])
    names = [j.name for j in todo]
    assert names[:2] == ["breastmnist__undefended", "breastmnist__pgd_at"]
    first_other = next(i for i, j in enumerate(todo) if j.seed != 0)
    assert all(j.seed == 0 for j in todo[:first_other])
    assert {j.seed for j in todo[first_other:]} == {1, 2}
    assert all(j.protocol == "mrb_linf_v2" for j in todo[first_other:])
    assert "retinamnist__maadvt__s2" in names and "breastmnist__transfer" in names
    robust = next(j for j in todo if j.name == "retinamnist__trades__s1")
    assert [recipe_model_id(c) for c in robust.train_configs] == [
        "resnet18_retinamnist_28px_s1",
        f"resnet18_retinamnist_28px_s1_trades_{RETINA_2_255}",
    ]
    assert robust.defense_params() == {"steps": 7, "eps": 2 / 255}
    jpeg = next(j for j in todo if j.name == "retinamnist__jpeg")
    assert [recipe_model_id(c) for c in jpeg.train_configs] == ["resnet18_retinamnist_28px_s0"]


def test_the_campaign_refuses_a_zoo_model_of_another_recipe(campaign, tmp_path):
    camp = campaign
    older = _card("resnet18_retinamnist_28px_s0_mpadvt")  # 5 epochs; the recipe is now 12
    standard = _card("resnet18_retinamnist_28px_s0")
    cards = {c["model_id"]: c for c in (older, standard)}
    zoo = SimpleNamespace(
        exists=lambda mid: mid in cards,
        entry=lambda mid: SimpleNamespace(card=cards[mid]),
    )
    job = camp.Job("retinamnist", "mrb_linf_v2", "mpadvt")
    with pytest.raises(ConfigError, match=r"mpadvt was trained with another recipe \(epochs"):
        camp._ensure_models(job, zoo, tmp_path, [])


def test_a_campaign_resumes_only_jobs_done_for_the_same_models(campaign, tmp_path):
    camp = campaign
    todo = camp.jobs(["breastmnist"], ["deterministic"], seeds=(0,))
    pgd, mpadvt, undefended = (
        next(j for j in todo if j.name == f"breastmnist__{n}")
        for n in ("pgd_at", "mpadvt", "undefended")
    )
    (tmp_path / "r.json").write_text("{}")
    current = pgd.protocol
    records = [
        {
            "job": pgd.name,
            "status": "done",
            "result": "r.json",
            "models": camp._models(pgd),
            "protocol": current,
        },
        # an older campaign's record: no model ids (its mpadvt was a shorter fine-tune)
        {"job": mpadvt.name, "status": "done", "result": "r.json", "protocol": current},
        {
            "job": undefended.name,
            "status": "done",
            "result": "r.json",
            "models": ["resnet18_breastmnist_28px_s0"],
            "checkpoints": {"resnet18_breastmnist_28px_s0": "aa" * 32},
            "protocol": current,
        },
    ]
    (tmp_path / "campaign.json").write_text(json.dumps({"jobs": records}))
    assert camp._done(tmp_path, todo) == {pgd.name, undefended.name}
    # A job done under an older protocol version is not done under the current one.
    older = [{**r, "protocol": "mrb_linf_v1"} if r["job"] == pgd.name else r for r in records]
    (tmp_path / "campaign.json").write_text(json.dumps({"jobs": older}))
    assert current == "mrb_linf_v2" and camp._done(tmp_path, todo) == {undefended.name}
    (tmp_path / "campaign.json").write_text(json.dumps({"jobs": records}))
    standard = _card("resnet18_breastmnist_28px_s0")  # other weights than the record's
    zoo = SimpleNamespace(
        exists=lambda mid: mid == standard["model_id"],
        entry=lambda mid: SimpleNamespace(card=standard),
    )
    assert camp._done(tmp_path, todo, zoo) == {pgd.name}


def test_the_campaign_trains_and_evaluates_ham10000_at_its_recipe_size(campaign, monkeypatch):
    import benchmark.evaluation as evaluation

    camp = campaign
    (job,) = camp.jobs(["ham10000_220"], ["deterministic"], seeds=(1,))[:1]
    assert camp._models(job) == ["resnet18_ham10000_220_128px_s1"]
    assert job.train_configs[0].size == 128
    seen = {}

    def fake_evaluate(config, **kwargs):
        seen["size"] = config.resolved_size
        raise RuntimeError("stop here")

    monkeypatch.setattr(evaluation, "evaluate", fake_evaluate)
    monkeypatch.setattr(camp, "_ensure_models", lambda *a, **k: None)
    monkeypatch.setattr(camp, "_checkpoint", lambda zoo, mid: None)
    record = camp.run_job(job, out=Path("."), zoo=None, cache=None, data_dir=Path("."))
    assert seen == {"size": 128} and record["status"] == "failed"


def test_the_zoo_page_says_which_robust_models_are_the_published_recipe():
    from benchmark.models.cards import read_cards
    from benchmark.reports.base import mean_sd
    from benchmark.reports.zoo import recipe_text, render_zoo_markdown
    from benchmark.training.recipes import card_recipe_mismatches

    ids = [
        f"resnet18_retinamnist_28px_s0_pgd_at_{RETINA_2_255}",
        "resnet18_retinamnist_28px_s0_pgd_at_steps=3",
        "resnet18_pneumoniamnist_28px_s0_trades_beta=1,steps=3",
    ]
    cards = [c for c in read_cards(CARDS) if c.model_id in ids]
    page = render_zoo_markdown(cards, recipe_check=card_recipe_mismatches)
    rows = {line.split("`")[1]: line for line in page.splitlines() if line.startswith("| `")}
    assert rows[ids[0]].endswith("| published |")
    assert rows[ids[1]].endswith("| earlier: 5 epochs, PGD-3, eps 8/255, selected at 4/255 |")
    assert rows[ids[2]].endswith("| earlier: 2 epochs, PGD-3, selected at 4/255 |")
    assert recipe_text(None) == "-"
    assert "| checkpoint sha256 | recipe |" not in render_zoo_markdown(cards)
    assert "| checkpoint sha256 | recipe |" in page
    # Standard models are checked against their dataset's standard recipe too.
    import copy

    standard = next(c for c in read_cards(CARDS) if c.model_id == "resnet18_breastmnist_28px_s0")
    longer = copy.deepcopy(standard)
    longer.card["recipe"].update(epochs=100, lr=0.01)
    for entry, cell in ((standard, "published"), (longer, "earlier: 100 epochs, lr 0.01")):
        page = render_zoo_markdown([entry], recipe_check=card_recipe_mismatches)
        (row,) = [line for line in page.splitlines() if "_s0` | breastmnist |" in line]
        assert row.endswith(f"| {cell} |")
    # Beside each checkpoint, its recipe's test ACC over the seeds (here the three seeds).
    seeds = [c for c in read_cards(CARDS) if c.model_id.startswith("resnet18_breastmnist_28px_s")]
    seeds = [c for c in seeds if c.card.get("defense") is None]
    accs = [c.card["metrics"]["test"]["acc"]["value"] for c in seeds]
    page = render_zoo_markdown(seeds)
    rows = [line for line in page.splitlines() if "| breastmnist | 28 | resnet18 |" in line]
    assert len(rows) == len(seeds) >= 3
    assert all(f" | {mean_sd(accs)} ({len(seeds)}) | " in row for row in rows)


def test_a_card_is_compared_by_the_defense_parameters_in_force():
    """A weakened inner attack (step size, start) or MPAdvT budget is a departure even where
    the id's overrides match; TRADES beta is the one parameter an entry may set as its own."""
    import copy

    from benchmark.training.recipes import card_recipe_mismatches

    base = _card(f"resnet18_retinamnist_28px_s0_pgd_at_{RETINA_2_255}")
    assert card_recipe_mismatches(base) == []
    for change in ({"alpha": 1e-6}, {"start": "none"}):
        card = copy.deepcopy(base)
        card["defense"]["params"].update(change)
        (found,) = [m for m in card_recipe_mismatches(card) if m[0] == "defense_params"]
        assert found[1] == change
    mpadvt = copy.deepcopy(_card("resnet18_retinamnist_28px_s0_mpadvt"))
    mpadvt["recipe"]["epochs"] = 12
    assert card_recipe_mismatches(mpadvt) == []
    mpadvt["defense"]["params"]["eps_high"] = 0.001
    assert [m[0] for m in card_recipe_mismatches(mpadvt)] == ["defense_params"]
    beta = _card("resnet18_pneumoniamnist_28px_s0_trades_beta=1,steps=3")
    (found,) = [m for m in card_recipe_mismatches(beta) if m[0] == "defense_params"]
    assert found[1] == {"steps": 3}  # beta = 1 is the entry's own, not a departure


def test_a_standard_training_that_is_not_the_recipe_names_its_departures():
    """``bench train`` warns where its defaults (100 epochs, the dataset's size) are not the
    zoo recipe's: HAM10000 at its default 64 px and 100 epochs departs in both."""
    assert standard_departures(standard_config("ham10000_220", "resnet18", 1)) == []
    departures = standard_departures(
        TrainConfig(dataset="ham10000_220", arch="resnet18", epochs=100)
    )
    assert departures == ["--epochs 100 (the recipe's: 30)", "--size 64 (the recipe's: 128)"]
    robust = robust_config("breastmnist", "pgd_at", "resnet18", 0)
    assert standard_departures(robust) == []  # a robust config has its own recipe
