"""The evaluation configuration: its checks, the command line's option rules and what it
records, through the public API (no data, no model)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from benchmark.attacks.presets import AttackCell, resolve_attack_cells
from benchmark.errors import ConfigError, UnknownNameError
from benchmark.evaluation import EvaluationConfig
from benchmark.params import parse_params

ROOT = Path(__file__).resolve().parents[2]


def _config(**kw) -> EvaluationConfig:
    return EvaluationConfig(**{"dataset": "breastmnist", "arch": "tiny_cnn", **kw})


def _options(**kw) -> EvaluationConfig:
    return EvaluationConfig.from_options(**{"dataset": "breastmnist", "arch": "tiny_cnn", **kw})


def test_a_protocol_refuses_a_subset_seed_and_names_the_option():
    with pytest.raises(ConfigError, match=r"drop --subset-seed \(or leave out --protocol"):
        EvaluationConfig.from_options(
            dataset="breastmnist", arch="tiny_cnn", protocol="mrb_linf_v2", subset_seed=3
        )


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"batch_size": 0}, "--batch-size must be a positive integer or auto, got 0"),
        ({"batch_size": "big"}, "--batch-size must be a positive integer or auto, got 'big'"),
        ({"batch_size": True}, "--batch-size must be a positive integer or auto, got True"),
        (
            {"defense": "median_filter", "threat_models": ["white-box"]},
            "--threat-model must be oblivious and/or adaptive, got white-box; transfer and "
            "black_box come from the attacks",
        ),
        (
            {"defense": "median_filter", "threat_models": []},
            "--threat-model must be oblivious and/or adaptive, got ;",
        ),
        ({"adaptive_gradient": "foo"}, "--adaptive-gradient must be exact or bpda, got 'foo'"),
        (
            {"adaptive_gradient": "bpda"},
            "--adaptive-gradient bpda applies to a preprocessing defense (--defense ID)",
        ),
        (
            {"adaptive_gradient": "bpda", "defense": "median_filter"},
            "--adaptive-gradient bpda needs --threat-model adaptive",
        ),
        ({"n_examples": 0}, "--n-examples must be >= 1, got 0"),
        ({"subset_seed": 1}, "--subset-seed needs --n-examples"),
        ({"corruption_reference": "m"}, "--corruption-reference needs --corruptions"),
    ],
)
def test_validate_names_the_problem_and_the_fix(kw, message):
    with pytest.raises(ConfigError) as info:
        _config(**kw).validate()
    text = str(info.value)
    assert text.startswith(message) and "\n" not in text


def test_validate_accepts_a_good_config_and_refuses_unknown_ids():
    _config(batch_size="auto", defense="x", threat_models=["oblivious", "adaptive"]).validate()
    with pytest.raises(UnknownNameError, match="did you mean 'breastmnist'"):
        _config(dataset="breastmnis").validate()
    with pytest.raises(UnknownNameError, match="tiny_cn"):
        _config(arch="tiny_cn").validate()


def test_threat_models_without_a_defense_are_not_checked():
    config = _config(threat_models=["adaptive"], attacks=[AttackCell.make("fgsm", "8/255")])
    config.validate()
    assert config.threat_model == "white-box" and config.pass_threat_models == ["white-box"]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"batch_size": "0"}, "--batch-size must be a positive integer or auto, got '0'"),
        ({"batch_size": " ABC "}, "--batch-size must be a positive integer or auto, got 'abc'"),
        ({"eps": ["8/255"]}, "--eps and --attack-param need --attacks"),
        ({"attack_params": ["steps=3"]}, "--eps and --attack-param need --attacks"),
        (
            {"attacks": "fgsm", "attack_params": ["pgd.steps=3"]},
            "--attack-param names attacks not in the run: ['pgd']",
        ),
        (
            {"attacks": "fgsm", "attack_params": ["steps"]},
            "invalid --attack-param 'steps'; write ATTACK.NAME=VALUE",
        ),
        ({"attacks": "fgsm", "eps": ["8/x"]}, "invalid eps '8/x'; write it as 8/255 or 0.03"),
        ({"corruption_reference": "m"}, "--corruption-reference needs --corruptions"),
        ({"defense_params": ["n"]}, "--param 'n' must look like name=value"),
        ({"executor": "dask"}, "--executor must be local or ray, got 'dask'"),
        (
            {"executor": "ray", "use_cache": False},
            "--executor ray hands work over through the cache: drop --no-cache",
        ),
        ({"n_examples": -1}, "--n-examples must be >= 1, got -1"),
    ],
)
def test_from_options_refuses_bad_options_in_one_line(kw, message):
    with pytest.raises(ConfigError) as info:
        _options(**kw)
    assert str(info.value) == message or str(info.value).startswith(message)


def test_from_options_builds_the_config_the_cli_describes():
    config = _options(
        attacks="fgsm,pgd",
        eps=["2/255,8/255"],
        attack_params=["steps=3"],
        defense="median_filter",
        defense_params=["size=5", "mode=reflect"],
        threat_models=["oblivious,adaptive"],
        corruptions="quick",
        batch_size=" Auto",
        size=64,
    )
    assert config.suite == "custom" and config.batch_size == "auto"
    assert [c.cell_id for c in config.attacks] == [
        "fgsm_eps2-255",
        "pgd_eps2-255_steps3",
        "fgsm_eps8-255",
        "pgd_eps8-255_steps3",
    ]
    assert config.defense_params == {"size": 5, "mode": "reflect"}
    assert config.threat_models == ["oblivious", "adaptive"]
    assert config.corruption_suite == "quick" and config.corruptions is not None
    assert config.resolved_size == 64 and _options().resolved_size == 28
    assert _options().batch_size == 256 and _options().attacks == []


def test_attack_overrides_bare_names_apply_where_they_exist():
    suite, cells = resolve_attack_cells("fgsm,pgd", ["8/255"], ["steps=4", "pgd.alpha=0.01"])
    assert suite == "custom"
    assert cells[0] == AttackCell.make("fgsm", "8/255")  # FGSM has no steps: left alone
    assert cells[1] == AttackCell.make("pgd", "8/255", steps=4, alpha=0.01)
    # ATTACK.NAME wins over a bare NAME, and is kept as given (checked when the attack is built)
    _, cells = resolve_attack_cells("pgd", [], ["steps=4", "pgd.steps=7", "pgd.nope=1"])
    assert cells[0].param_dict == {"steps": 7, "nope": 1}
    assert resolve_attack_cells(None) == (None, [])
    with pytest.raises(ConfigError, match="cannot be combined with the preset 'quick'"):
        resolve_attack_cells("quick", ["8/255"])
    with pytest.raises(UnknownNameError, match="unknown attack or preset 'pgdd'"):
        resolve_attack_cells("pgdd")


def test_parse_params_reads_json_values_and_keeps_text():
    assert parse_params(["n=100", "noise=gaussian", " k =[1, 2]", "flag=true"]) == {
        "n": 100,
        "noise": "gaussian",
        "k": [1, 2],
        "flag": True,
    }
    for bad in ("n", "=3", " =3"):
        with pytest.raises(ConfigError, match="must look like name=value"):
            parse_params([bad])


def test_record_is_the_resolved_config_block():
    config = _options(attacks="fgsm", defense="submissions/median_filter", corruptions="quick")
    record = config.record(defense_id="median_filter", model_id="m", device="cpu")
    assert list(record) == [
        "dataset",
        "arch",
        "split",
        "seed",
        "batch_size",
        "device",
        "defense",
        "defense_params",
        "threat_models",
        "eot_samples",
        "adaptive_gradient",
        "attacks",
        "suite",
        "n_examples",
        "subset_seed",
        "sanity_attack",
        "corruption_suite",
        "corruption_reference",
        "draws",
        "image_size",
        "model_id",
        "threat_model",
    ]
    assert record["defense"] == "median_filter" and record["attacks"] == ["fgsm_eps8-255"]
    assert record["image_size"] == 28 and record["threat_model"] == "oblivious"
    assert record["device"] == "cpu" and record["corruption_suite"] == "quick"


def test_train_config_is_the_recipe_for_this_model():
    tc = _config(seed=3, device="cpu").train_config(epochs=2)
    assert (tc.dataset, tc.arch, tc.size, tc.seed, tc.device) == (
        "breastmnist",
        "tiny_cnn",
        28,
        3,
        "cpu",
    )
    assert (tc.epochs, tc.batch_size, tc.lr) == (2, 128, 1e-3)


def test_executors_do_not_import_the_runner():
    """A worker rebuilds the plan; it needs neither the runner nor the results document."""
    source = (ROOT / "benchmark" / "evaluation" / "executors.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    assert "benchmark.evaluation.plan" in imported
    assert not imported & {"benchmark.evaluation.runner", "benchmark.evaluation.document"}
