"""Retraining published models from their committed cards (``bench zoo rebuild``)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.device import ISA_ENV
from benchmark.errors import CheckpointError, ConfigError
from benchmark.models.zoo import ModelZoo
from benchmark.results.cards import read_cards, read_rebuild_records, rebuild_record_name
from benchmark.training.rebuild import (
    RebuildStep,
    check_kernels,
    config_from_card,
    plan_rebuild,
    rebuild,
)
from benchmark.training.reproducibility import (
    expected_gaps,
    host_isa_of,
    mkl_branch,
    reproducibility_gaps,
    weight_gaps,
)
from benchmark.training.selection import selection_description

COMMITTED = Path(__file__).resolve().parents[2] / "leaderboard" / "zoo" / "cards"


def _committed() -> list[dict]:
    return [c.card for c in read_cards(COMMITTED)]


def test_every_committed_card_reads_back_into_its_run() -> None:
    """Each published card's recipe gives back a config whose fields and selection rule are the
    recipe's own: what `bench zoo rebuild` retrains is what the card records."""
    cards = _committed()
    assert len(cards) >= 50
    for card in cards:
        rec = card["recipe"]
        config = config_from_card(card)
        fields = dataclasses.asdict(config)
        for key in ("dataset", "arch", "epochs", "batch_size", "lr", "gamma", "seed"):
            assert fields[key] == rec[key], (card["model_id"], key)
        assert fields["size"] == rec["size"] and list(config.milestones) == rec["milestones"]
        assert config.defense == rec["defense"] and config.init_from == rec["init_from"]
        assert config.defense_params == rec["defense_params"]
        assert selection_description(config) == rec["selection"]
        assert config.device == "cpu"  # every published card was trained on the CPU
    robust = config_from_card(
        next(c for c in cards if c["model_id"] == "resnet18_breastmnist_28px_s0_pgd_at_steps=7")
    )
    assert robust.selection_rule == "robust" and robust.select_eps == pytest.approx(8 / 255)
    plain = config_from_card(
        next(c for c in cards if c["model_id"] == "resnet18_breastmnist_28px_s0")
    )
    assert plain.selection_rule == "auc"


def test_unreadable_recipes_are_refused() -> None:
    card = json.loads((COMMITTED / "resnet18_breastmnist_28px_s0.json").read_text())
    with pytest.raises(ConfigError, match="has no recipe"):
        config_from_card({**card, "recipe": None})
    with pytest.raises(ConfigError, match="lacks select_steps"):
        config_from_card(
            {**card, "recipe": {k: v for k, v in card["recipe"].items() if k != "select_steps"}}
        )
    with pytest.raises(ConfigError, match="selection rule"):
        config_from_card({**card, "recipe": {**card["recipe"], "selection": "best test accuracy"}})


def test_plan_trains_the_starting_model_first_unless_the_zoo_has_it(tmp_path: Path) -> None:
    cards = _committed()
    robust = "resnet18_breastmnist_28px_s1_pgd_at_steps=7"
    zoo = ModelZoo(tmp_path / "zoo")
    steps = plan_rebuild([robust], cards, zoo)
    assert [(s.model_id, s.requested) for s in steps] == [
        ("resnet18_breastmnist_28px_s1", False),
        (robust, True),
    ]
    assert [s.threads for s in steps] == [1, 1] and steps[0].estimate_seconds > 60
    # The zoo holds the starting model with the published weights: it is not retrained ...
    start = next(c for c in cards if c["model_id"] == "resnet18_breastmnist_28px_s1")
    folder = zoo.folder(start["model_id"])
    folder.mkdir(parents=True)
    (folder / "card.json").write_text(json.dumps(start))
    (folder / "model.pt").write_bytes(b"weights")
    assert [s.model_id for s in plan_rebuild([robust], cards, zoo)] == [robust]
    # ... but other weights under that id are not the published model.
    other = {**start, "checkpoint": {**start["checkpoint"], "sha256": "0" * 64}}
    (folder / "card.json").write_text(json.dumps(other))
    assert len(plan_rebuild([robust], cards, zoo)) == 2
    # Wildcards select among the committed ids; a pattern that matches nothing is an error.
    pattern = "resnet18_breastmnist_28px_s[012]"
    ids = [s.model_id for s in plan_rebuild([pattern], cards, ModelZoo(tmp_path / "z2"))]
    assert ids == [f"resnet18_breastmnist_28px_s{i}" for i in range(3)]
    with pytest.raises(ConfigError, match="no committed card matches 'nope_\\*'"):
        plan_rebuild(["nope_*"], cards, zoo)


def test_gaps_name_what_prevents_a_bit_identical_retrain() -> None:
    card = json.loads((COMMITTED / "resnet18_breastmnist_28px_s0.json").read_text())
    env = card["environment"]
    here = {"torch": env["torch"], "cpu_capability": env["cpu_capability"]}
    assert reproducibility_gaps(card, here) == []
    assert "torch" in reproducibility_gaps(card, {**here, "torch": "2.9.1+cpu"})[0]
    (gap,) = reproducibility_gaps(card, {**here, "cpu_capability": "AVX2"})
    assert "CPU kernels AVX512 in the card, AVX2 here" in gap
    # Pinned kernels make the CPU's own capability irrelevant.
    isa = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}
    pinned = {**card, "environment": {**env, "cpu_isa_env": isa}}
    same_cpu = {**here, "cpu": env["cpu"], "cpu_capability": "AVX2", "cpu_isa_env": isa}
    assert reproducibility_gaps(pinned, same_cpu) == []
    # MKL honours MKL_CBWR=AVX2 on Intel CPUs only: where a CPU is not named, that is open.
    (mkl,) = reproducibility_gaps(pinned, {**same_cpu, "cpu": None})
    assert mkl.startswith("MKL's branch: the card's MKL_CBWR=AVX2 is honoured on Intel CPUs only")
    assert weight_gaps(pinned, {**same_cpu, "cpu": None}) == []
    # Kernel variables that differ from the card's (here a partial pin), no thread count or no
    # commit in the card: each is a reason the weights may differ.
    partial = {**here, "cpu_isa_env": {"ONEDNN_MAX_CPU_ISA": "AVX2"}}
    assert "kernel variables {} in the card" in reproducibility_gaps(card, partial)[0]
    bare = {**card, "environment": {k: v for k, v in env.items() if k != "num_threads"}}
    assert reproducibility_gaps(bare, here) == ["the card does not record its thread count"]
    unknown = {**card, "git": {"commit": "unknown", "dirty": False}}
    assert reproducibility_gaps(unknown, here) == ["the card does not record the code's commit"]
    gpu = {**card, "environment": {**env, "device": "cuda:0"}}
    assert "GPU training is not bit-reproducible" in reproducibility_gaps(gpu, here)[0]
    robust = json.loads(
        (COMMITTED / "resnet18_breastmnist_28px_s0_pgd_at_steps=7.json").read_text()
    )
    assert "submission's folder differs" in reproducibility_gaps(robust, here, "f" * 64)[0]
    assert reproducibility_gaps(robust, here, robust["defense"]["sha256"]) == []


def test_unpinned_kernels_depend_on_the_cpu_not_only_on_atens_level() -> None:
    """Unpinned AVX-512 cards trained on an Intel Xeon gave other weights on an AMD EPYC that ATen
    also runs at AVX-512 (oneDNN and MKL choose per CPU): another vendor is a known gap, another
    model of the same vendor leaves the outcome open, and pinned kernels need neither."""
    card = json.loads((COMMITTED / "mobilenet_v2_breastmnist_28px_s0.json").read_text())
    env = card["environment"]
    assert env["cpu"].startswith("Intel") and env["cpu_capability"] == "AVX512"
    here = {"torch": env["torch"], "cpu_capability": "AVX512", "cpu": env["cpu"]}
    assert reproducibility_gaps(card, here) == []
    (gap,) = weight_gaps(card, {**here, "cpu": "AMD EPYC"})
    assert gap.startswith("unpinned CPU kernels on another vendor's CPU (Intel(R) Xeon(R)")
    assert reproducibility_gaps(card, {**here, "cpu": "AMD EPYC"}) == [gap]
    # Where ATen's levels differ already, that is the gap named, not the vendor as well.
    (kernels,) = weight_gaps(card, {**here, "cpu": "AMD EPYC", "cpu_capability": "AVX2"})
    assert kernels.startswith("CPU kernels AVX512 in the card, AVX2 here")
    # "amd64" is the platform's name for any x86-64 CPU, not a vendor.
    assert weight_gaps(card, {**here, "cpu": "amd64"}) == []
    other_xeon = {**here, "cpu": "Intel(R) Xeon(R) Platinum 8480+"}
    assert weight_gaps(card, other_xeon) == []
    (open_gap,) = reproducibility_gaps(card, other_xeon)
    assert "another CPU (Intel(R) Xeon(R) Processor in the card" in open_gap
    # A card with its kernels pinned (trained on an AMD EPYC with AVX2) is judged as its run
    # will be, pinned: on an AMD machine nothing stands in the way; on an Intel one MKL would
    # honour the card's MKL_CBWR=AVX2, which ran MKL's AUTO branch on the AMD EPYC.
    pinned = json.loads((COMMITTED / "mobilenet_v2_breastmnist_28px_s3.json").read_text())
    isa = pinned["environment"]["cpu_isa_env"]
    assert isa == {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    amd = {**here, "cpu": "AMD EPYC", "cpu_capability": "AVX2", "cpu_isa_env": isa}
    assert reproducibility_gaps(pinned, amd) == []
    assert mkl_branch(pinned["environment"]) == "AUTO for AMD"
    (branch,) = weight_gaps(pinned, {**amd, "cpu": "Intel(R) Xeon(R) Processor"})
    assert branch.startswith("MKL's branch is AUTO for AMD in the card (AMD EPYC), AVX2 here")
    # Pinned with MKL's COMPATIBLE branch (bench train --cpu-isa avx2 today), MKL runs the same
    # branch on either vendor's CPU.
    portable = {**isa, "MKL_CBWR": "COMPATIBLE"}
    card3 = {**pinned, "environment": {**pinned["environment"], "cpu_isa_env": portable}}
    assert mkl_branch(card3["environment"]) == "COMPATIBLE"
    for cpu in ("Intel(R) Xeon(R) Processor", "AMD EPYC", None):
        assert reproducibility_gaps(card3, {**amd, "cpu": cpu, "cpu_isa_env": portable}) == []
    # The machine's widest kernels: recorded, else ATen's level of an unpinned run, else unknown.
    assert host_isa_of(env) == "AVX512" and host_isa_of(pinned["environment"]) is None
    assert host_isa_of({**pinned["environment"], "cpu_host_isa": "AVX512"}) == "AVX512"


def test_one_rebuild_process_sets_the_kernel_variables_its_cards_recorded() -> None:
    """A pinned group runs with its cards' own variables (an older card's MKL_CBWR=AVX2 as
    well as today's COMPATIBLE), never two sets in one process; unpinned cards need none."""
    card = json.loads((COMMITTED / "mobilenet_v2_breastmnist_28px_s3.json").read_text())
    step = RebuildStep(card["model_id"], card, config_from_card(card), 1, "avx2")
    assert check_kernels([step, step]) == ("avx2", card["environment"]["cpu_isa_env"])
    newer = {**card, "environment": {**card["environment"], "cpu_isa_env": ISA_ENV["avx2"]}}
    other = RebuildStep("m_s4", newer, config_from_card(newer), 1, "avx2")
    with pytest.raises(ConfigError, match="pinned their CPU kernels with different variables"):
        check_kernels([step, other])
    assert check_kernels([]) == ("native", {})


def test_a_record_made_on_another_machine_never_takes_the_cards_own_name() -> None:
    """The record of a retrain on the card's kind of machine is ``<id>.json``; one made on
    another CPU (same kernels and torch) is named after that machine, and a record from before
    the machine was recorded keeps its name."""
    side = {"cpu_capability": "AVX2", "torch": "2.14.1+cu130"}
    card = {**side, "cpu": "AMD EPYC", "cpu_host_isa": None}
    rec = {"model_id": "m_s3", "published": card, "rebuilt": {**card, "cpu_host_isa": None}}
    assert rebuild_record_name(rec) == "m_s3.json"
    elsewhere = {**rec, "rebuilt": {**card, "cpu_host_isa": "AVX512"}}
    assert rebuild_record_name(elsewhere) == "m_s3@avx2_amd-epyc-avx512_torch2.14.1-cu130.json"
    xeon = {**card, "cpu": "Intel(R) Xeon(R) Processor", "cpu_host_isa": "AVX512"}
    other_kernels = {**rec, "published": xeon, "rebuilt": {**card, "cpu_host_isa": "AVX2"}}
    assert rebuild_record_name(other_kernels) == "m_s3@avx2_amd-epyc-avx2_torch2.14.1-cu130.json"
    old = {"model_id": "m_s0", "published": side, "rebuilt": {**side, "cpu_capability": "X"}}
    assert rebuild_record_name(old) == "m_s0@x_torch2.14.1-cu130.json"
    assert rebuild_record_name({**old, "rebuilt": side}) == "m_s0.json"


def test_rebuild_reproduces_a_card_and_reports_a_mismatch(
    tiny_models, shared_data, tmp_path
) -> None:
    """A tiny model retrained from its card alone (fresh zoo, the card's thread count) has the
    card's sha256; a card that claims other weights is reported as differing with nothing to
    explain it (exit code 1), and a zoo holding other weights under the id is not overwritten."""
    source: ModelZoo = tiny_models["zoo"]
    card = source.entry("tiny_cnn_breastmnist_28px_s0").card
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "tiny_cnn_breastmnist_28px_s0.json").write_text(json.dumps(card))
    zoo, records = tmp_path / "zoo", tmp_path / "records"
    args = ["zoo", "rebuild", "tiny_cnn_*", "--cards", str(cards), "--zoo", str(zoo)]
    args += ["--data-dir", str(shared_data), "--records", str(records)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "estimate  1 models" in result.output
    assert (
        f"identical tiny_cnn_breastmnist_28px_s0  sha256 {card['checkpoint']['sha256'][:12]}"
        in result.output
    )
    rec = json.loads((records / "tiny_cnn_breastmnist_28px_s0.json").read_text())
    assert rec["identical"] and rec["expected_identical"] and rec["gaps"] == []
    assert rec["published"]["test_acc"] == rec["rebuilt"]["test_acc"]
    assert rec["threads"] == card["environment"]["num_threads"]
    # The zoo page lists the record beside the card it reproduces.
    page = tmp_path / "zoo.md"
    report = ["zoo", "report", "--zoo", str(zoo), "--cards", str(cards), "--results", ""]
    result = CliRunner().invoke(app, [*report, "--rebuilds", str(records), "--out", str(page)])
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert "## Retrained from the cards" in text
    row = next(x for x in text.splitlines() if x.startswith("| `tiny_cnn_breastmnist_28px_s0` | `"))
    assert f"`{card['checkpoint']['sha256'][:16]}` | {rec['threads']}, " in row
    assert "| identical, " in row and row.endswith("| - |")
    # An identical retrain on another machine (a pinned card's check) is named after that
    # machine, beside the card's own check, and the page says which CPUs the two ran on.
    assert rec["rebuilt"]["cpu"] == rec["published"]["cpu"]
    moved = {**rec, "rebuilt": {**rec["rebuilt"], "cpu": "Elsewhere CPU", "cpu_host_isa": "Z9"}}
    (records / rebuild_record_name(moved)).write_text(json.dumps(moved))
    result = CliRunner().invoke(app, [*report, "--rebuilds", str(records), "--out", str(page)])
    assert result.exit_code == 0, result.output
    (other,) = [x for x in page.read_text().splitlines() if ", Elsewhere CPU (Z9) |" in x]
    assert other.startswith("| `tiny_cnn_breastmnist_28px_s0` |") and "| identical, " in other
    published_on = f"({rec['published']['cpu']}, {rec['published']['cpu_host_isa']})"
    assert other.endswith(f"| the card was trained on another machine {published_on} |")
    (records / rebuild_record_name(moved)).unlink()
    # A card that did not record its machine's widest kernels (a pinned card from before the
    # field) on the same CPU model: not called another machine, only unrecorded.
    unsure = {**rec, "published": {**rec["published"], "cpu_host_isa": None}}
    (records / rebuild_record_name(unsure)).write_text(json.dumps(unsure))
    result = CliRunner().invoke(app, [*report, "--rebuilds", str(records), "--out", str(page)])
    assert result.exit_code == 0, result.output
    cpu = rec["published"]["cpu"]
    assert f"| the card's machine ({cpu}) did not record its widest kernels |" in page.read_text()
    (records / rebuild_record_name(unsure)).unlink()
    # A malformed record is refused before the page is written.
    (records / "tiny_cnn_breastmnist_28px_s1.json").write_text(json.dumps({**rec, "model_id": "x"}))
    result = CliRunner().invoke(app, [*report, "--rebuilds", str(records), "--out", str(page)])
    assert result.exit_code != 0 and "names it x.json" in result.output
    (records / "tiny_cnn_breastmnist_28px_s1.json").unlink()
    # The retrain was installed: the zoo holds the published checkpoint and card (its
    # provenance is the original training's, not the retrain's) ...
    assert ModelZoo(zoo).entry("tiny_cnn_breastmnist_28px_s0").card == card
    ModelZoo(zoo).load("tiny_cnn_breastmnist_28px_s0")
    # ... and a card claiming other weights is a mismatch nothing explains.
    liar = {**card, "checkpoint": {**card["checkpoint"], "sha256": "a" * 64}}
    (cards / "tiny_cnn_breastmnist_28px_s0.json").write_text(json.dumps(liar))
    with pytest.raises(ConfigError, match="other than the published ones"):
        rebuild(
            plan_rebuild(["tiny_cnn_*"], [liar], ModelZoo(zoo))[0], ModelZoo(zoo), lambda c, z: None
        )
    shutil.rmtree(zoo)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert (
        "differs   tiny_cnn_breastmnist_28px_s0" in result.output
        and "no known cause" in result.output
    )
    rec = json.loads((records / "tiny_cnn_breastmnist_28px_s0.json").read_text())
    assert not rec["identical"] and rec["rebuilt_sha256"] == card["checkpoint"]["sha256"]
    # A retrain that is not the published checkpoint is not installed; it stays to inspect.
    assert not ModelZoo(zoo).exists("tiny_cnn_breastmnist_28px_s0")
    kept = ModelZoo(zoo / ".rebuild" / "tiny_cnn_breastmnist_28px_s0")
    assert kept.exists("tiny_cnn_breastmnist_28px_s0")
    # A record whose verdict contradicts its own sha256s is refused on read.
    (records / "tiny_cnn_breastmnist_28px_s0.json").write_text(
        json.dumps({**rec, "identical": True})
    )
    with pytest.raises(CheckpointError, match="contradicts itself"):
        read_rebuild_records(records)


def _fine_tuned_tiny(tiny_models, shared_data, tmp_path: Path):
    """A zoo holding the tiny BreastMNIST model and a 1-epoch PGD-AT fine-tune of it (the
    fine-tune's entry returned beside the zoo)."""
    from benchmark.training import TrainConfig, train_model

    source = ModelZoo(tmp_path / "source")
    shutil.copytree(
        tiny_models["zoo"].folder("tiny_cnn_breastmnist_28px_s0"),
        source.folder("tiny_cnn_breastmnist_28px_s0"),
    )
    tuned = train_model(
        TrainConfig(
            dataset="breastmnist",
            arch="tiny_cnn",
            epochs=1,
            lr=1e-4,
            defense="pgd_at",
            defense_params={"steps": 1},
            select_steps=1,
            init_from="tiny_cnn_breastmnist_28px_s0",
        ),
        data_dir=shared_data,
        zoo=source,
        progress=False,
    )
    return source, tuned


def test_rebuild_of_a_fine_tune_trains_its_start_first(tiny_models, shared_data, tmp_path) -> None:
    """A robust fine-tune's card alone, in a fresh zoo: its starting model is retrained first
    from its own card, then the fine-tune starts from that verified copy; both are the
    published checkpoints and both are installed."""
    source, tuned = _fine_tuned_tiny(tiny_models, shared_data, tmp_path)
    cards = tmp_path / "cards"
    cards.mkdir()
    for entry in source.list():
        (cards / f"{entry.model_id}.json").write_text(json.dumps(entry.card))
    zoo = tmp_path / "zoo"
    args = ["zoo", "rebuild", tuned.model_id, "--cards", str(cards), "--zoo", str(zoo)]
    result = CliRunner().invoke(
        app, [*args, "--data-dir", str(shared_data), "--records", str(tmp_path / "rec")]
    )
    assert result.exit_code == 0, result.output
    lines = [x for x in result.output.splitlines() if x.startswith(("identical", "differs"))]
    assert [x.split()[:2] for x in lines] == [
        ["identical", "tiny_cnn_breastmnist_28px_s0"],
        ["identical", tuned.model_id],
    ]
    assert "(fine-tuned from by a requested model)" in result.output
    rebuilt = ModelZoo(zoo)
    assert rebuilt.entry(tuned.model_id).card["checkpoint"] == tuned.card["checkpoint"]
    assert not (zoo / ".rebuild").exists() or not any((zoo / ".rebuild").iterdir())


def test_rebuild_restores_missing_models_and_rescores_old_cards(
    tiny_models, shared_data, tmp_path
) -> None:
    """``--missing`` retrains only what the zoo lacks as published, and an identical retrain
    of a card written before cards recorded the balanced accuracy gets it added (with a
    ``rescored`` record), so the zoo page can tell whether the model collapsed."""
    card = tiny_models["zoo"].entry("tiny_cnn_breastmnist_28px_s0").card
    old = json.loads(json.dumps(card))
    for split in ("val", "test"):
        old["metrics"][split].pop("balanced_acc", None)
    old.pop("rescored", None)
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "tiny_cnn_breastmnist_28px_s0.json").write_text(json.dumps(old))
    zoo = tmp_path / "zoo"
    args = ["zoo", "rebuild", "tiny_cnn_*", "--cards", str(cards), "--zoo", str(zoo)]
    args += ["--data-dir", str(shared_data), "--records", "", "--missing"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "have      0 matching models" in result.output
    assert "rescored: val balanced_acc, test balanced_acc  tiny_cnn_breastmnist_28px_s0" in (
        result.output
    )
    restored = ModelZoo(zoo).entry("tiny_cnn_breastmnist_28px_s0").card
    for split in ("val", "test"):
        assert restored["metrics"][split]["balanced_acc"] == card["metrics"][split]["balanced_acc"]
        assert restored["metrics"][split]["acc"] == old["metrics"][split]["acc"]
    assert restored["rescored"][-1]["added"] == ["val balanced_acc", "test balanced_acc"]
    # The zoo now holds it as published: --missing has nothing to do, the plain form retrains.
    steps = plan_rebuild(["tiny_cnn_*"], [old], ModelZoo(zoo), missing_only=True)
    assert steps == []
    result = CliRunner().invoke(app, [*args, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "have      1 matching models" in result.output
    assert "estimate  0 models" in result.output
    assert len(plan_rebuild(["tiny_cnn_*"], [old], ModelZoo(zoo))) == 1


def test_plan_says_before_any_work_what_this_machine_cannot_reproduce() -> None:
    """On a machine whose kernels are not the card's, the plan names the gap of every
    committed card trained with unpinned kernels, and a fine-tune of such a model inherits it
    (it can start only from the published weights)."""
    cards = _committed()
    robust = "resnet18_breastmnist_28px_s1_pgd_at_steps=7"
    steps = plan_rebuild([robust], cards, ModelZoo(Path("/nonexistent-zoo")))
    env = steps[0].card["environment"]
    same = {"torch": env["torch"], "cpu_capability": env["cpu_capability"]}
    assert expected_gaps(steps, same) == {s.model_id: [] for s in steps}
    gaps = expected_gaps(steps, {**same, "cpu_capability": "NEON"})
    base, tuned = gaps["resnet18_breastmnist_28px_s1"], gaps[robust]
    assert base == [
        f"CPU kernels {env['cpu_capability']} in the card, NEON here (the card's kernels were "
        "not pinned)"
    ]
    assert tuned == [
        *base,
        "starts from 'resnet18_breastmnist_28px_s1', whose retrain cannot be identical here",
    ]
    # What a card does not record (here the code's commit) leaves the outcome open: it is no
    # reason to skip (this card's committed retrain record is identical).
    uncommitted = "resnet18_retinamnist_28px_s0_pgd_at_eps=0.00784313725490196,steps=7"
    steps_u = plan_rebuild([uncommitted], cards, ModelZoo(Path("/nonexistent-zoo")))
    card_u = steps_u[-1].card
    assert card_u["git"]["commit"] == "unknown"
    assert "the card does not record the code's commit" in reproducibility_gaps(card_u, same)
    assert expected_gaps(steps_u, same) == {s.model_id: [] for s in steps_u}
    # A card that pinned its kernels is judged with its variables set, as its run will be.
    isa = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}
    pinned = dataclasses.replace(
        steps[0], card={**steps[0].card, "environment": {**env, "cpu_isa_env": isa}}, cpu_isa="avx2"
    )
    assert expected_gaps([pinned], {**same, "cpu_capability": "AVX512"}) == {pinned.model_id: []}


def test_rebuild_refuses_what_cannot_be_identical_unless_asked(
    tiny_models, shared_data, tmp_path
) -> None:
    """A card whose kernels this machine does not run is refused before any work (no record,
    nothing trained); with --allow-differ it is retrained for comparison, reported as differing
    for that known reason (exit 0), not installed, and its fine-tune is skipped, not crashed."""
    source, tuned = _fine_tuned_tiny(tiny_models, shared_data, tmp_path)
    cards = tmp_path / "cards"
    cards.mkdir()
    for entry in source.list():
        card = entry.card
        if entry.model_id == "tiny_cnn_breastmnist_28px_s0":
            # Trained on a CPU with other kernels, which gave other weights.
            card = {
                **card,
                "environment": {**card["environment"], "cpu_capability": "ZEN9"},
                "checkpoint": {**card["checkpoint"], "sha256": "b" * 64},
            }
        (cards / f"{entry.model_id}.json").write_text(json.dumps(card))
    zoo, records = tmp_path / "zoo", tmp_path / "records"
    args = ["zoo", "rebuild", tuned.model_id, "--cards", str(cards), "--zoo", str(zoo)]
    args += ["--data-dir", str(shared_data), "--records", str(records)]
    result = CliRunner().invoke(app, [*args, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "expect    0 of 2 identical on this machine; 2 cannot be" in result.output
    assert "cannot be identical here: CPU kernels ZEN9 in the card" in result.output
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    assert "2 of 2 planned models cannot be retrained identical on this machine" in result.output
    assert "--allow-differ" in result.output
    assert not records.exists() and not zoo.exists()  # refused before any work
    # Beside a model it can reproduce, those it cannot are skipped and named at the end.
    other = tiny_models["zoo"].entry("tiny_cnn_breastmnist_28px_s1").card
    (cards / "tiny_cnn_breastmnist_28px_s1.json").write_text(json.dumps(other))
    result = CliRunner().invoke(app, [*args, "tiny_cnn_breastmnist_28px_s1"])
    assert result.exit_code != 0
    assert "skipped   tiny_cnn_breastmnist_28px_s0: cannot be identical" in result.output
    assert "identical tiny_cnn_breastmnist_28px_s1" in result.output
    assert "2 of 3 planned models cannot be retrained identical" in result.output
    assert ModelZoo(zoo).exists("tiny_cnn_breastmnist_28px_s1")
    assert sorted(p.name for p in records.iterdir()) == ["tiny_cnn_breastmnist_28px_s1.json"]
    shutil.rmtree(records)
    result = CliRunner().invoke(app, [*args, "--allow-differ"])
    assert result.exit_code == 0, result.output
    assert "differs   tiny_cnn_breastmnist_28px_s0" in result.output
    skipped = f"skipped   {tuned.model_id}: starts from 'tiny_cnn_breastmnist_28px_s0'"
    assert skipped in result.output
    assert "CPU kernels ZEN9 in the card" in result.output.split("differs   ")[1]
    # The record of a retrain on other kernels than the card's is named after them, so it
    # never replaces the record of a retrain on the card's own kind of machine.
    (path,) = records.iterdir()
    rec = json.loads(path.read_text())
    kernels = rec["rebuilt"]["cpu_capability"].lower()
    assert path.name.startswith(f"tiny_cnn_breastmnist_28px_s0@{kernels}_")
    assert rec["rebuilt"]["cpu"] and path.name == rebuild_record_name(rec)
    assert not rec["identical"] and not rec["expected_identical"] and "ZEN9" in rec["gaps"][0]
    assert [r["model_id"] for r in read_rebuild_records(records)] == [rec["model_id"]]
    # The zoo page lists it with what the retrain scored beside the card's figure.
    page = tmp_path / "zoo.md"
    report = ["zoo", "report", "--zoo", str(zoo), "--cards", str(cards), "--results", ""]
    result = CliRunner().invoke(app, [*report, "--rebuilds", str(records), "--out", str(page)])
    assert result.exit_code == 0, result.output
    row = next(
        x
        for x in page.read_text().splitlines()
        if x.startswith("| `tiny_cnn_breastmnist_28px_s0`") and "| differs (" in x
    )
    acc = 100 * rec["rebuilt"]["test_acc"]
    assert f"| differs (`{rec['rebuilt_sha256'][:16]}`), " in row
    assert row.endswith(f"; test ACC {acc:.1f} % (the card's {acc:.1f} %) |")  # same weights
    path.rename(records / "tiny_cnn_breastmnist_28px_s0.json")
    with pytest.raises(CheckpointError, match="names it "):
        read_rebuild_records(records)
    # A card predicted to differ whose retrain gives its sha256 after all (its kernels were
    # claimed, not real) is installed, and its fine-tune then runs from it.
    base = json.loads((cards / "tiny_cnn_breastmnist_28px_s0.json").read_text())
    base["checkpoint"] = tiny_models["zoo"].entry("tiny_cnn_breastmnist_28px_s0").card["checkpoint"]
    (cards / "tiny_cnn_breastmnist_28px_s0.json").write_text(json.dumps(base))
    fresh = tmp_path / "zoo2"
    again = [*args[:6], str(fresh), *args[7:9], "--records", "", "--allow-differ"]
    result = CliRunner().invoke(app, again)
    assert result.exit_code == 0, result.output
    assert "identical tiny_cnn_breastmnist_28px_s0" in result.output
    assert f"identical {tuned.model_id}" in result.output and "skipped" not in result.output
    assert ModelZoo(fresh).exists(tuned.model_id)
    store = ModelZoo(zoo)
    assert not store.exists("tiny_cnn_breastmnist_28px_s0") and not store.exists(tuned.model_id)
