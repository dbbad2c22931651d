"""Versioned protocols: pure data, hashed, and the conformance check that gates ranking."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from benchmark.results.conformance import protocol_problems
from benchmark.results.protocols import (
    CURRENT_PROTOCOL,
    MRB_LINF_ADAPTIVE_V1,
    MRB_LINF_ADAPTIVE_V2,
    MRB_LINF_V1,
    MRB_LINF_V2,
    PROTOCOLS,
    autoattack_subattacks,
    superseded_by,
    track_protocol,
)

ROOT = Path(__file__).resolve().parents[2]
#: The clean confusion matrix's labels of a BreastMNIST run: the run's class count.
BINARY = {"clean": {"confusion_matrix": {"labels": ["malignant", "normal, benign"]}}}


def aa_config(version: str = "standard", k: int = 2, steps: int = 100) -> dict:
    """An ``autoattack_ref`` block's config as the attack records it: its parameters and the
    reference's version, sub-attacks and their budgets."""
    subs = {
        name: {"n_queries": 5000} if name == "square" else {"n_iter": steps}
        for name in autoattack_subattacks(version, k)
    }
    return {
        "params": {"n_queries": 5000, "steps": steps, "version": version},
        "reference": {"version": version, "attacks_to_run": list(subs), "subattacks": subs},
    }


def _conformant() -> dict:
    """A minimal document shaped as a conformant mrb_linf_v2 run of BreastMNIST."""
    blocks = [
        {"attack": attack, "eps": eps, "cell_id": f"aa_{i}", "config": aa_config()}
        for i, (attack, eps, _) in enumerate(MRB_LINF_V2.cells())
    ]
    blocks += _sanity_blocks()
    return {
        "protocol": MRB_LINF_V2.record(),
        "data": {"split": "test", "n": 156, "n_split": 156},
        "attacks": blocks,
        "metrics": copy.deepcopy(BINARY),
        "sanity_checks": [{"name": "large_eps_pgd", "status": "pass"}],
    }


def _pgd10_block(tm: str | None = None) -> dict:
    """The PGD-10 at 64/255 sanity cell (version 1's only one)."""
    return {
        "attack": "pgd",
        "eps": 64 / 255,
        "cell_id": "pgd_eps64-255_steps10",
        "threat_model": tm,
        "config": {"params": {"steps": 10, "alpha": 0.0627, "random_start": True}},
    }


def _sanity_blocks(tm: str | None = None) -> list[dict]:
    """The PGD-10 and APGD-CE-100 at 64/255 sanity cells a version-2 run adds to each pass."""
    return [
        _pgd10_block(tm),
        {
            "attack": "apgd_ce",
            "eps": 64 / 255,
            "cell_id": "apgd_ce_eps64-255_steps100",
            "threat_model": tm,
            "config": {"params": {"steps": 100, "n_restarts": 1}},
        },
    ]


def test_the_protocol_is_registered_hashed_and_torch_free():
    assert PROTOCOLS.get("mrb_linf_v2") is MRB_LINF_V2
    assert MRB_LINF_V2.board_ids() == ["linf-2-255", "linf-8-255"]
    assert len(MRB_LINF_V2.sha256) == 64
    assert json.loads(json.dumps(MRB_LINF_V2.resolved()))["attacks"][0]["params"] == {
        "n_queries": 5000,
        "steps": 100,
    }
    code = "import sys, benchmark.results.protocols; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_conformant_run_has_no_problems_and_each_gap_is_named():
    doc = _conformant()
    assert protocol_problems(doc) == []
    subset = copy.deepcopy(doc)
    subset["data"]["n"] = 100
    assert protocol_problems(subset) == [
        "images: 100 of the 156 test images, not the whole test split"
    ]
    cheap = copy.deepcopy(doc)
    cheap["attacks"][1]["config"]["params"]["n_queries"] = 500
    cheap["attacks"][1]["config"]["reference"]["subattacks"]["square"]["n_queries"] = 500
    cheap["attacks"][1]["cell_id"] = "autoattack_ref_eps8-255_n_queries500"
    missing, extra = protocol_problems(cheap)
    assert missing.startswith("missing autoattack_ref at 8/255")
    assert extra.startswith("extra attack: autoattack_ref_eps8-255_n_queries500")
    # An attack beyond the protocol's would lower the worst case the board ranks by.
    more = copy.deepcopy(doc)
    more["attacks"].append({"attack": "pgd", "eps": 8 / 255, "cell_id": "pgd_eps8-255"})
    assert protocol_problems(more) == [
        "extra attack: pgd_eps8-255 (white-box) is not a cell of mrb_linf_v2; a conformant run "
        "has no others"
    ]
    for unchecked in ("not_applicable", None):  # the sanity attack must have run and passed
        no_sanity = copy.deepcopy(doc)
        no_sanity["sanity_checks"] = [{"name": "large_eps_pgd", "status": unchecked}]
        assert protocol_problems(no_sanity) == [
            "the sanity attacks (PGD-10 and APGD-CE-100 at 64/255) did not all run or their "
            "check is not recorded"
        ]
    # Both sanity attacks must have run: PGD-10 alone (version 1's) is not enough.
    pgd_only = copy.deepcopy(doc)
    pgd_only["attacks"] = [b for b in doc["attacks"] if b["attack"] != "apgd_ce"]
    assert protocol_problems(pgd_only) == [
        "the sanity attacks (PGD-10 and APGD-CE-100 at 64/255) did not all run or their "
        "check is not recorded"
    ]
    other = copy.deepcopy(doc)
    other["protocol"]["sha256"] = "0" * 64
    assert "protocol recorded as" in protocol_problems(other)[0]
    preprocessing = copy.deepcopy(doc)
    preprocessing["defense"] = {"kind": "preprocessing"}
    assert "adaptive track" in protocol_problems(preprocessing)[0]
    assert protocol_problems({"data": {}}) == [
        "no protocol: the run was not made with bench evaluate --protocol"
    ]


def test_autoattack_must_be_the_reference_version_the_protocol_fixes():
    """The protocol's steps and queries do not pin AutoAttack: a convergence-version,
    APGD-CE-only or rand-version block at the same budget, or a sub-attack that ran fewer
    iterations than recorded, would rank a weaker attack beside full AutoAttack runs."""
    for version in ("convergence", "rand"):
        doc = _conformant()
        doc["attacks"][0]["config"] = aa_config(version)
        assert protocol_problems(doc) == [
            f"aa_0 (white-box): AutoAttack version '{version}', not 'standard'"
        ]
    apgd_only = _conformant()
    apgd_only["attacks"][0]["config"]["reference"]["attacks_to_run"] = ["apgd-ce"]
    assert protocol_problems(apgd_only) == [
        "aa_0 (white-box): sub-attacks ['apgd-ce'], not the reference's "
        "['apgd-ce', 'apgd-dlr', 'fab', 'square'] for 2 classes"
    ]
    short = _conformant()
    short["attacks"][1]["config"]["reference"]["subattacks"]["fab"]["n_iter"] = 10
    assert protocol_problems(short) == [
        "aa_1 (white-box): fab ran n_iter=10, not the protocol's 100"
    ]
    five = _conformant()  # K = 5 (RetinaMNIST) needs APGD-T and FAB-T, not the binary set
    five["metrics"]["clean"]["confusion_matrix"]["labels"] = list("abcde")
    assert protocol_problems(five) == [
        f"aa_{i} (white-box): sub-attacks ['apgd-ce', 'apgd-dlr', 'fab', 'square'], not the "
        "reference's ['apgd-ce', 'apgd-t', 'fab-t', 'square'] for 5 classes"
        for i in (0, 1)
    ]
    unrecorded = _conformant()
    del unrecorded["attacks"][0]["config"]["reference"]["subattacks"]
    assert protocol_problems(unrecorded) == [
        f"aa_0 (white-box): {name}'s {key} is not recorded"
        for name, key in (
            ("apgd-ce", "n_iter"),
            ("apgd-dlr", "n_iter"),
            ("fab", "n_iter"),
            ("square", "n_queries"),
        )
    ]
    unknown = _conformant()
    del unknown["metrics"]
    assert protocol_problems(unknown)[0].endswith("records no class count to check its sub-attacks")
    # On the adaptive track a randomized defense's adaptive pass runs the rand version, and
    # the standard version there would be a different (untested for EOT) attack.
    rand = _adaptive_doc(True)
    assert protocol_problems(rand) == []
    for block in rand["attacks"]:
        if block["attack"] == "autoattack_ref" and block["threat_model"] == "adaptive":
            block["config"] = aa_config("standard")
    assert [p.split(": ")[1] for p in protocol_problems(rand)] == [
        "AutoAttack version 'standard', not 'rand'"
    ] * 2


def test_published_runs_are_conformant_protocol_runs_or_say_they_have_none():
    """Every published evaluation run (transfer matrices have their own check) is either a
    conformant run of the protocol it records, or records none (published exploratory)."""
    runs = [
        p
        for p in sorted((ROOT / "leaderboard" / "results").rglob("*.json"))
        if "transfer" not in p.parent.parts
    ]
    with_protocol = 0
    for path in runs:
        doc = json.loads(path.read_text())
        if doc.get("protocol"):
            with_protocol += 1
            assert protocol_problems(doc) == [], path
        else:
            assert protocol_problems(doc) == [
                "no protocol: the run was not made with bench evaluate --protocol"
            ], path
    assert with_protocol >= 1 and len(runs) > 100


def test_a_published_protocol_run_can_be_replanned_from_its_file():
    """`bench transfer` and `bench diagnose` re-plan a board entry from its results file; a
    protocol run's config must come back (the protocol refuses --no-sanity-attack, so the
    replay used to fail on every protocol run), without the sanity cells."""
    from benchmark.evaluation.replay import config_from_result

    runs = sorted((ROOT / "leaderboard" / "results").rglob("mrb_linf_*.json"))
    assert runs
    for path in runs:
        doc = json.loads(path.read_text())
        config = config_from_result(doc, "cpu")
        assert config.protocol == doc["protocol"]["id"] and not config.sanity_attack
        cells = {(c.attack, c.eps) for c in config.attacks}
        assert cells == {(a, e) for a, e, _ in PROTOCOLS.get(config.protocol).cells()}


def test_evaluate_with_a_protocol_takes_its_cells_and_refuses_what_it_fixes():
    from benchmark.errors import ConfigError, UnknownNameError
    from benchmark.evaluation import EvaluationConfig

    config = EvaluationConfig.from_options(
        dataset="breastmnist", arch="tiny_cnn", protocol="mrb_linf_v2"
    )
    assert config.suite == "mrb_linf_v2" and config.n_examples is None and config.sanity_attack
    assert [(c.attack, c.eps, c.param_dict) for c in config.attacks] == MRB_LINF_V2.cells()
    assert "protocol" not in config.record(defense_id=None, model_id="m", device="cpu")
    for extra in (
        {"attacks": "pgd"},
        {"eps": ["8/255"]},
        {"attack_params": ["steps=5"]},
        {"n_examples": 100},
        {"split": "val"},
        {"sanity_attack": False},
    ):
        with pytest.raises(ConfigError, match="--protocol mrb_linf_v2 fixes the attacks"):
            EvaluationConfig.from_options(
                dataset="breastmnist", arch="tiny_cnn", protocol="mrb_linf_v2", **extra
            )
    with pytest.raises(UnknownNameError, match="unknown protocol 'mrb'"):
        EvaluationConfig.from_options(dataset="breastmnist", arch="tiny_cnn", protocol="mrb")


def test_protocol_time_bounds_follow_the_budget():
    from benchmark.evaluation.estimate import gradient_runs, protocol_time_bounds

    assert gradient_runs(2) == (3, 12)  # APGD-CE, APGD-margin, FAB; 2 x (3 + 3) restarts
    assert gradient_runs(3) == (4, 12)  # APGD-CE, APGD-DLR, FAB-T with 2 targets
    assert gradient_runs(5) == (9, 14)  # APGD-CE, APGD-T and FAB-T with 4 targets each
    # 156 binary images, 1 ms forward, 3 ms forward+backward per image.
    b = protocol_time_bounds(MRB_LINF_V1, 156, 2, 1e-3, 3e-3)
    # lower: APGD-CE (100 steps) on every image at both budgets, and the PGD-10 sanity attack
    sanity = 156 * 10 * 3e-3
    assert b.low == pytest.approx(2 * 156 * 100 * 3e-3 + sanity)
    # upper: 3 gradient sub-attacks + 12 convergence runs of 100 steps, Square 5000 queries
    assert b.high == pytest.approx(2 * 156 * ((3 + 12) * 100 * 3e-3 + 5000 * 1e-3) + sanity)
    assert b.text() == "between 98 s and 49 min"
    # Version 2 adds APGD-CE-100 to the sanity attacks.
    b2 = protocol_time_bounds(MRB_LINF_V2, 156, 2, 1e-3, 3e-3)
    assert b2.low - b.low == pytest.approx(156 * 100 * 3e-3)
    # A plan's own sanity budget (EOT draws of a randomized defense's adaptive pass) counts.
    b3 = protocol_time_bounds(MRB_LINF_V2, 156, 2, 1e-3, 3e-3, sanity_budget=(2200, 0))
    assert b3.low - b.low == pytest.approx(156 * (2200 - 10) * 3e-3)


def test_a_protocol_run_logs_its_time_range_before_any_attack(
    tiny_models, shared_data, caplog, tmp_path, monkeypatch
):
    import logging

    from benchmark import paths
    from benchmark.evaluation import EvaluationConfig
    from benchmark.evaluation.cache import AdversarialCache
    from benchmark.evaluation.estimate import log_protocol_estimate
    from benchmark.evaluation.plan import build_plan

    config = EvaluationConfig.from_options(
        dataset="breastmnist", arch="tiny_cnn", protocol="mrb_linf_v2"
    )
    plan = build_plan(
        config,
        data_dir=shared_data,
        zoo=tiny_models["zoo"],
        cache=AdversarialCache(enabled=False),
        progress=False,
    )
    # A published run of the protocol on the dataset calibrates the range (its cost is known):
    # here a defended model's, the only kind published in this folder.
    robust = "resnet18_breastmnist_28px_s2__pgd_at__eps=0.00784313725490196,steps=7"
    runs = ROOT / "leaderboard" / "results" / "breastmnist" / "mrb_linf_v2" / robust
    (published,) = sorted(runs.glob("*.json"))
    copy = tmp_path / "breastmnist" / "mrb_linf_v2" / robust / published.name
    copy.parent.mkdir(parents=True)
    copy.write_text(published.read_text())
    monkeypatch.setattr(paths, "PUBLISHED_RESULTS", tmp_path)
    with caplog.at_level(logging.INFO, logger="benchmark.evaluation.estimate"):
        bounds = log_protocol_estimate(plan)
    assert bounds is not None and 0 < bounds.low < bounds.high
    assert "protocol mrb_linf_v2 on 156 images: the attacks will take between" in caplog.text
    assert (
        "published mrb_linf_v2 runs on breastmnist of defended models took 2.3 h on "
        "cpu (1 thread) (1 run) (leaderboard/results); none of an undefended model yet, which "
        "takes less" in caplog.text
    )
    # Version 2's sanity cells, PGD-10 and APGD-CE-100 at 64/255, after the protocol's cells.
    assert [p.cell.cell_id for p in plan.passes if p.sanity] == [
        "pgd_eps64-255_steps10",
        "apgd_ce_eps64-255_steps100",
    ]
    assert plan.passes[-1].sanity and plan.passes[-2].sanity


def test_a_resumed_protocol_run_says_what_the_cache_already_holds(
    tiny_models, shared_data, tmp_path
):
    import torch

    from benchmark.evaluation import EvaluationConfig
    from benchmark.evaluation.cache import AdversarialCache
    from benchmark.evaluation.estimate import resume_progress
    from benchmark.evaluation.plan import build_plan

    cache = AdversarialCache(tmp_path / "cache")
    config = EvaluationConfig.from_options(
        dataset="breastmnist", arch="tiny_cnn", protocol="mrb_linf_v2", batch_size=52
    )
    plan = build_plan(
        config, data_dir=shared_data, zoo=tiny_models["zoo"], cache=cache, progress=False
    )
    assert resume_progress(plan, cache) == []  # a fresh run
    first, second = plan.passes[0], plan.passes[1]
    x = torch.zeros(52, *plan.split.images.shape[1:])
    cache.save_batch(plan.pass_key(first), 0, x, meta={"seconds": 1500.0})
    cache.save_batch(plan.pass_key(first), 1, x)  # stored by older code, without its cost
    whole = torch.zeros(len(plan.split), *plan.split.images.shape[1:])
    cache.save(plan.pass_key(second), whole, {"cell": second.cell.cell_id})
    assert resume_progress(plan, cache) == [
        f"{first.cell.cell_id}: 2 of 3 batches (25 min spent, 1 of unknown cost)",
        f"{second.cell.cell_id}: in the cache",
    ]


def test_version_2_changes_only_the_sanity_attack_and_pairs_tracks_by_version():
    from benchmark.evaluation.protocol_run import sanity_cells

    assert CURRENT_PROTOCOL is MRB_LINF_V2 and MRB_LINF_V2.version == "2.0"
    # Version 1 keeps its sha256, so its published runs stay checkable against it.
    assert MRB_LINF_V1.sha256.startswith("ea18217f8648")
    assert MRB_LINF_ADAPTIVE_V1.sha256.startswith("1e45549f85a4")
    assert [a.attack for a in MRB_LINF_V1.sanity] == ["pgd"]
    for v1, v2 in ((MRB_LINF_V1, MRB_LINF_V2), (MRB_LINF_ADAPTIVE_V1, MRB_LINF_ADAPTIVE_V2)):
        old, new = v1.resolved(), v2.resolved()
        assert new.pop("sanity") == [
            {"attack": "pgd", "params": {"steps": 10}, "eps": "64/255"},
            {"attack": "apgd_ce", "params": {"steps": 100}, "eps": "64/255"},
        ]
        changed = {k for k in old if old[k] != new[k]}
        assert changed == {"id", "version"} and set(old) == set(new)
        assert v1.sha256 != v2.sha256

    def ids(protocol):
        return [c.cell_id for c in sanity_cells(protocol)]

    assert ids(None) == ids("mrb_linf_v1") == ["pgd_eps64-255_steps10"]  # exploratory: PGD-10
    both = ["pgd_eps64-255_steps10", "apgd_ce_eps64-255_steps100"]
    assert ids("mrb_linf_v2") == ids("mrb_linf_adaptive_v2") == both
    # Version 2 supersedes version 1 of the same family; a protocol without a version does not.
    assert superseded_by(MRB_LINF_V1) is MRB_LINF_V2
    assert superseded_by(MRB_LINF_ADAPTIVE_V1) is MRB_LINF_ADAPTIVE_V2
    assert superseded_by(MRB_LINF_V2) is None and superseded_by(MRB_LINF_ADAPTIVE_V2) is None
    assert superseded_by(replace(MRB_LINF_V1, id="tiny")) is None
    # An entry's track partner is the protocol of the same version.
    assert track_protocol(MRB_LINF_V2, "preprocessing") is MRB_LINF_ADAPTIVE_V2
    assert track_protocol(MRB_LINF_V1, "randomized") is MRB_LINF_ADAPTIVE_V1
    assert track_protocol(MRB_LINF_ADAPTIVE_V2, "training") is MRB_LINF_V2
    assert track_protocol(MRB_LINF_ADAPTIVE_V1, None) is MRB_LINF_V1


def test_a_version_1_run_is_not_a_version_2_run():
    """A run made under v1 (PGD-10 sanity cell only) checked against v2 names each
    difference: its record and the missing APGD-CE-100 sanity cell."""
    v1_run = _conformant()
    v1_run["protocol"] = MRB_LINF_V1.record()
    v1_run["attacks"] = [b for b in v1_run["attacks"] if b["attack"] != "apgd_ce"]
    assert protocol_problems(v1_run) == []  # conformant to the protocol it records
    recorded, sanity = protocol_problems(v1_run, MRB_LINF_V2)
    assert recorded.startswith("protocol recorded as") and "mrb_linf_v2 2.0" in recorded
    assert sanity == (
        "the sanity attacks (PGD-10 and APGD-CE-100 at 64/255) did not all run or their check "
        "is not recorded"
    )
    # The v2-shaped run is not a v1 run either.
    assert any(
        p.startswith("extra attack: apgd_ce_eps64-255_steps100")
        for p in protocol_problems(_conformant(), MRB_LINF_V1)
    )


def test_a_training_time_defense_is_attacked_white_box_on_its_robust_model():
    from benchmark.errors import ConfigError
    from benchmark.evaluation import EvaluationConfig

    config = EvaluationConfig.from_options(
        dataset="breastmnist", arch="tiny_cnn", protocol="mrb_linf_v2", defense="pgd_at"
    )
    assert config.threat_models == ["adaptive"]
    with pytest.raises(ConfigError, match="white-box"):
        EvaluationConfig.from_options(
            dataset="breastmnist",
            arch="tiny_cnn",
            protocol="mrb_linf_v2",
            defense="pgd_at",
            threat_models=["oblivious,adaptive"],
        )
    doc = _conformant()
    doc["defense"] = {"kind": "training"}
    doc["config"] = {"threat_models": ["oblivious"]}
    (problem,) = protocol_problems(doc)
    assert "not attacked white-box" in problem
    doc["config"]["threat_models"] = ["adaptive"]
    assert protocol_problems(doc) == []
    # An extra oblivious pass (transferred examples of the standard model) is not the protocol.
    doc["attacks"].append({**doc["attacks"][0], "threat_model": "oblivious", "cell_id": "aa"})
    assert protocol_problems(doc) == [
        "extra pass: aa (oblivious) on a training-time defense, whose protocol attacks only its "
        "robust model"
    ]


def _adaptive_doc(randomized: bool) -> dict:
    """A minimal conformant mrb_linf_adaptive_v2 run: autoattack_ref in both passes, Square
    on the deployed pipeline of a randomized defense, EOT-20 and worst of 5 draws."""
    from benchmark.results.protocols import MRB_LINF_ADAPTIVE_V2 as P

    blocks = []
    for eps in P.budgets:
        for tm in ("oblivious", "adaptive"):
            blocks.append(
                {
                    "attack": "autoattack_ref",
                    "eps": eps,
                    "threat_model": tm,
                    "config": aa_config("rand" if randomized and tm == "adaptive" else "standard"),
                }
            )
        blocks += _sanity_blocks("oblivious") + _sanity_blocks("adaptive")
        if randomized:
            blocks.append(
                {
                    "attack": "square_ref",
                    "eps": eps,
                    "threat_model": "black_box",
                    "config": {"params": {"n_queries": 5000}},
                }
            )
    return {
        "protocol": P.record(),
        "data": {"split": "test", "n": 156, "n_split": 156},
        "attacks": blocks,
        "sanity_checks": [{"name": "large_eps_pgd", "status": "pass"}],
        "metrics": copy.deepcopy(BINARY),
        "config": {"threat_models": ["oblivious", "adaptive"]},
        "defense": {
            "kind": "preprocessing",
            "config": {"randomized": randomized},
            "eot_samples": 20 if randomized else 1,
            "draws": 5 if randomized else 1,
        },
    }


def test_the_adaptive_protocol_fixes_passes_draws_and_names_each_gap():
    from benchmark.errors import ConfigError
    from benchmark.evaluation import EvaluationConfig

    assert MRB_LINF_V1.sha256.startswith("ea18217f8648")  # unchanged by the adaptive fields
    config = EvaluationConfig.from_options(
        dataset="breastmnist", arch="tiny_cnn", protocol=MRB_LINF_ADAPTIVE_V2.id, defense="jpeg"
    )
    assert (config.threat_models, config.eot_samples, config.draws) == (
        ["oblivious", "adaptive"],
        20,
        5,
    )
    for extra in ({"draws": 2}, {"eot_samples": 4}, {"threat_models": ["adaptive"]}):
        with pytest.raises(ConfigError, match="fixes the threat models"):
            EvaluationConfig.from_options(
                dataset="breastmnist",
                arch="tiny_cnn",
                protocol=MRB_LINF_ADAPTIVE_V2.id,
                defense="jpeg",
                **extra,
            )
    with pytest.raises(ConfigError, match="evaluates a defense"):
        EvaluationConfig.from_options(
            dataset="breastmnist", arch="tiny_cnn", protocol=MRB_LINF_ADAPTIVE_V2.id
        )
    for randomized in (False, True):
        assert protocol_problems(_adaptive_doc(randomized)) == []
    one_draw = _adaptive_doc(True)
    one_draw["defense"]["draws"] = 1
    assert protocol_problems(one_draw) == ["scored with 1 draw(s) per image, not the worst of 5"]
    no_square = _adaptive_doc(True)
    no_square["attacks"] = [b for b in no_square["attacks"] if b["attack"] != "square_ref"]
    assert [p.split(" with")[0] for p in protocol_problems(no_square)] == [
        "missing square_ref at 2/255",
        "missing square_ref at 8/255",
    ]
    oblivious_only = _adaptive_doc(False)
    oblivious_only["attacks"] = [
        b for b in oblivious_only["attacks"] if b["threat_model"] != "adaptive"
    ]
    assert all("(adaptive pass)" in p for p in protocol_problems(oblivious_only))
    trained = _adaptive_doc(False)
    trained["defense"]["kind"] = "training"
    assert "deterministic track" in protocol_problems(trained)[0]


def test_a_voting_defense_must_face_the_vote_aimed_attack():
    doc = _adaptive_doc(True)
    doc["defense"]["voting"] = True
    missing = protocol_problems(doc)
    assert [p.split(" with")[0] for p in missing] == [
        "missing apgd_vote at 2/255",
        "missing apgd_vote at 8/255",
    ]
    for eps in (2 / 255, 8 / 255):
        doc["attacks"].append(
            {
                "attack": "apgd_vote",
                "eps": eps,
                "threat_model": "adaptive",
                "config": {"params": {"steps": 100}},
            }
        )
    assert protocol_problems(doc) == []
