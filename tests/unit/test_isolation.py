"""Submissions in the sandbox through the whole evaluation: the isolation modes, hostile
plugins stopped by ``bench evaluate`` before they write anything, a hostile plugin that cannot
fake its score, and the built-ins' numbers identical in and out of the sandbox."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmark.attacks.presets import AttackCell
from benchmark.cli import app
from benchmark.defenses.isolation import (
    BUILTIN_SHA256,
    default_isolation,
    is_builtin,
    open_submission,
)
from benchmark.defenses.sandbox import SandboxError, check_sandbox
from benchmark.defenses.sandbox_proxy import SandboxedSubmission
from benchmark.defenses.submissions import Submission, describe_folder
from benchmark.errors import ConfigError
from benchmark.evaluation import EvaluationConfig, evaluate
from benchmark.evaluation.cache import AdversarialCache


def _sandbox_problem() -> str | None:
    import os

    if os.environ.get("BENCH_REQUIRE_SANDBOX") == "1":
        return None
    try:
        check_sandbox()
    except SandboxError as exc:
        return str(exc)
    return None


ROOT = Path(__file__).resolve().parents[2]
needs_sandbox = pytest.mark.skipif(_sandbox_problem() is not None, reason=str(_sandbox_problem()))

HOSTILE = '''
import os, time
import torch
from benchmark.defenses import Defense, DefenseMeta

{module}

class Hostile(Defense):
    """A hostile test fixture."""
    meta = DefenseMeta(kind="preprocessing", randomized=False, differentiable=False,
                       reference="test", version="1", license="MIT", authors=("t",),
                       name="hostile", paper="none", threat_models=("oblivious", "adaptive"))

    def purify(self, x):
{purify}
'''


def hostile(tmp_path: Path, module: str = "", purify: str = "return x.clone()") -> Path:
    folder = tmp_path / "subs" / "hostile"
    folder.mkdir(parents=True)
    (folder / "submission.toml").write_text('id = "hostile"\nentry = "defense:Hostile"\n')
    body = "\n".join("        " + line for line in purify.splitlines())
    (folder / "defense.py").write_text(HOSTILE.format(module=module, purify=body))
    return folder


def files_under(*roots: Path) -> dict[str, bytes]:
    found = [p for r in roots if r.exists() for p in r.rglob("*") if p.is_file()]
    return {str(p): p.read_bytes() for p in found}


def test_the_isolation_mode_and_the_builtin_pins(monkeypatch, tmp_path):
    monkeypatch.delenv("BENCH_ISOLATION")
    assert default_isolation() == "sandbox"
    monkeypatch.setenv("BENCH_ISOLATION", "builtin")
    assert default_isolation() == "builtin" and default_isolation("none") == "none"
    with pytest.raises(ConfigError, match="isolation 'fast' is not one of sandbox, builtin, none"):
        default_isolation("fast")
    # Every built-in's pin is its folder's digest now (edit a built-in: update the pin).
    for sid, digest in BUILTIN_SHA256.items():
        assert describe_folder(ROOT / "submissions" / sid)[0] == digest, sid
    assert is_builtin(ROOT / "submissions" / "median_filter")
    copy = tmp_path / "median_filter"
    shutil.copytree(ROOT / "submissions" / "median_filter", copy)
    assert is_builtin(copy)  # the same files are the same trusted code
    (copy / "README.md").write_text((copy / "README.md").read_text() + "\nedited\n")
    assert not is_builtin(copy)  # one changed byte: a stranger's code
    builtin = open_submission(ROOT / "submissions" / "median_filter", "builtin")
    assert isinstance(builtin, Submission)
    assert isinstance(open_submission(copy, "none"), Submission)


@needs_sandbox
def test_an_edited_builtin_runs_in_the_sandbox(tmp_path):
    copy = tmp_path / "median_filter"
    shutil.copytree(ROOT / "submissions" / "median_filter", copy)
    (copy / "README.md").write_text("edited\n")
    with open_submission(copy, "builtin") as sub:
        assert isinstance(sub, SandboxedSubmission)


def _config(**kw) -> EvaluationConfig:
    fields = dict(
        dataset="breastmnist",
        arch="tiny_cnn",
        attacks=[AttackCell.make("pgd", "8/255", steps=3)],
        suite="custom",
        n_examples=24,
        sanity_attack=False,
    )
    return EvaluationConfig(**{**fields, **kw})


@needs_sandbox
def test_a_hostile_plugin_cannot_fake_its_score(tiny_models, shared_data, tmp_path):
    """The issue's exploit: an identity ``purify`` that patches the evaluator's interval
    helper and scoring from inside ``defense.py``. In the sandbox the patches stay there: the
    defense scores exactly what the undefended model scores, and this process is untouched."""
    import benchmark.evaluation.adversarial as adversarial
    import benchmark.metrics.base as metrics

    patch = (
        "import benchmark.metrics.base as m, benchmark.evaluation.adversarial as a\n"
        "m.wilson_interval = lambda *args, **kw: (1.0, 1.0, 1.0)\n"
        "a.correct_mask = lambda *args, **kw: torch.ones(10**4, dtype=torch.bool)"
    )
    folder = hostile(tmp_path, patch)
    before = (metrics.wilson_interval, adversarial.run_cell)
    cache = AdversarialCache(tmp_path / "cache")
    zoo = tiny_models["zoo"]
    plain, _ = evaluate(_config(), data_dir=shared_data, zoo=zoo, cache=cache)
    doc, _ = evaluate(
        _config(defense=str(folder), threat_models=["oblivious", "adaptive"]),
        data_dir=shared_data,
        zoo=zoo,
        cache=cache,
        isolation="sandbox",
    )
    assert (metrics.wilson_interval, adversarial.run_cell) == before
    assert doc["defense"]["isolation"]["mode"] == "sandbox"
    white_box = plain["attacks"][0]
    for block in doc["attacks"]:  # an identity defense: every image as undefended
        assert block["outcomes"] == white_box["outcomes"]
        assert block["metrics"]["robust_accuracy"] == white_box["metrics"]["robust_accuracy"]
    assert doc["metrics"]["clean"]["outcomes"] == plain["metrics"]["clean"]["outcomes"]


@needs_sandbox
@pytest.mark.parametrize(
    ("module", "purify", "expected"),
    [
        ("open('/etc/hostname').read()", "return x.clone()", "FileNotFoundError"),
        ("hoard = bytearray(8 << 30)", "return x.clone()", "out of memory (limit 512 MiB)"),
        (
            "",
            "if x.shape[0] > 3:\n    time.sleep(60)\nreturn x.clone()",
            "no answer within the wall-time limit of 4 s",
        ),
        ("", "return x[:, :1, :4]", "purify returned float32 of shape"),
        ("", "return x.double()", "purify returned float64 of shape"),
        (
            "",
            "if x.shape[0] > 3:\n    return x[:1]\nreturn x.clone()",
            "purify returned float32 of shape [1, 1, 28, 28]",
        ),
    ],
    ids=["read-outside", "memory", "sleep-in-the-run", "shape", "dtype", "shape-in-the-run"],
)
def test_bench_evaluate_stops_a_hostile_plugin_and_writes_nothing(
    tiny_models, shared_data, tmp_path, module, purify, expected
):
    """Each one is stopped with one line, at validation or in the middle of the run (the last
    ones behave on the suite's small batches), and the run writes no results."""
    folder = hostile(tmp_path, module, purify)
    out, cache = tmp_path / "results", tmp_path / "cache"
    watched = (out, folder.parent, Path(tiny_models["zoo"].root))
    before = files_under(*watched)
    args = ["evaluate", "-d", "breastmnist", "-m", "tiny_cnn", "--defense", str(folder)]
    args += ["--attacks", "fgsm", "--eps", "8/255", "--n-examples", "8", "--no-sanity-attack"]
    args += ["--zoo", str(tiny_models["zoo"].root), "--data-dir", str(shared_data)]
    args += ["--out", str(out), "--cache-dir", str(cache), "--isolation", "sandbox"]
    args += ["--sandbox-limit", "memory_mib=512", "--sandbox-limit", "wall_seconds=4"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert files_under(*watched) == before
    assert not list(out.rglob("*.json")) if out.exists() else True


@needs_sandbox
def test_builtins_give_the_same_numbers_in_and_out_of_the_sandbox(
    tiny_models, shared_data, tmp_path
):
    """A preprocessing defense (BPDA), a randomized one (EOT, worst of draws) and the voting
    one (votes, the smoothed path, the vote report) on a small cell: every per-image outcome,
    the defense's config and its vote report are identical."""
    zoo = tiny_models["zoo"]
    cases = [
        ("median_filter", {}, 1),
        ("random_resize_pad", {}, 2),
        ("medrdf", {"n": 20, "attack_copies": 2, "batch": 64}, 2),
    ]
    for sid, params, draws in cases:
        config = _config(
            defense=str(ROOT / "submissions" / sid),
            defense_params=params,
            threat_models=["oblivious", "adaptive"],
            eot_samples=2,
            draws=draws,
            n_examples=8,
        )
        docs = {}
        for mode in ("builtin", "sandbox"):
            docs[mode], _ = evaluate(
                config,
                data_dir=shared_data,
                zoo=zoo,
                cache=AdversarialCache(tmp_path / f"cache_{sid}_{mode}"),
                out_dir=tmp_path / f"out_{mode}",
                isolation=mode,
            )
        inside, outside = docs["sandbox"], docs["builtin"]
        assert inside["defense"]["isolation"]["mode"] == "sandbox", sid
        assert outside["defense"]["isolation"]["mode"] == "in-process", sid
        assert inside["defense"]["config"] == outside["defense"]["config"], sid
        assert inside["metrics"]["clean"]["outcomes"] == outside["metrics"]["clean"]["outcomes"]
        for a, b in zip(inside["attacks"], outside["attacks"], strict=True):
            assert a["outcomes"] == b["outcomes"], (sid, a["threat_model"])
        if sid == "medrdf":  # the abstentions came back from the sandbox, and match
            votes_in, votes_out = (d["metrics"]["clean_votes"] for d in (inside, outside))
            for key in ("abstain_rate", "accuracy_of_votes"):
                assert votes_in[key] == votes_out[key], key


def test_publication_refuses_an_unsandboxed_stranger():
    from benchmark.leaderboard.publish import isolation_problems

    pinned = BUILTIN_SHA256["median_filter"]
    in_process = {"mode": "in-process", "requested": "none"}
    stranger = {"defense": {"id": "median_filter", "sha256": "0" * 64, "isolation": in_process}}
    assert isolation_problems(stranger) == [
        "defense.isolation (a submission that is not a pinned built-in ran unsandboxed; "
        "evaluate it with --isolation sandbox)"
    ]
    builtin = {"defense": {"id": "median_filter", "sha256": pinned, "isolation": in_process}}
    sandboxed = {"defense": {"id": "x", "sha256": "0" * 64, "isolation": {"mode": "sandbox"}}}
    legacy = {"defense": {"id": "x", "sha256": "0" * 64}}  # from before the record existed
    assert isolation_problems(builtin) == isolation_problems(sandboxed) == []
    assert isolation_problems(legacy) == isolation_problems({}) == []


@needs_sandbox
def test_robust_training_in_the_sandbox_matches_in_process(
    tiny_models, shared_data, tmp_path, monkeypatch, request
):
    """``bench train --defense`` of a stranger's training defense runs whole in the sandbox
    (data read-only, a staging zoo the only writable folder); the weights that come out are
    those of the same run in process, and the card says where it ran."""
    import torch

    from benchmark.models.zoo import ModelZoo
    from benchmark.training import TrainConfig, train_model
    from benchmark.training.sandboxed import train_isolated

    # The sandbox computes with the threads this process uses now, even where they differ
    # from $OMP_NUM_THREADS (a library call can change them): else its weights differ.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    copy = tmp_path / "subs" / "pgd_at"
    shutil.copytree(ROOT / "submissions" / "pgd_at", copy)
    config = TrainConfig(
        dataset="breastmnist",
        arch="tiny_cnn",
        epochs=1,
        defense=str(copy),
        defense_params={"steps": 1},
        selection="auc",
    )
    here = train_model(config, data_dir=shared_data, zoo=ModelZoo(tmp_path / "a"), progress=False)
    zoo = ModelZoo(tmp_path / "b")
    before = files_under(copy.parent)
    entry = train_isolated(config, isolation="sandbox", data_dir=shared_data, zoo=zoo)
    assert files_under(copy.parent) == before
    assert entry.model_id == here.model_id == "tiny_cnn_breastmnist_28px_s0_pgd_at_steps=1"
    assert entry.card["checkpoint"]["sha256"] == here.card["checkpoint"]["sha256"]
    assert entry.card["trained_in"]["mode"] == "sandbox"
    assert entry.card["git"] == here.card["git"] and entry.card["git"]["commit"] != "unknown"
    assert entry.card["defense"]["sha256"] == here.card["defense"]["sha256"]
    assert not (zoo.root / ".sandbox").exists() or not any((zoo.root / ".sandbox").iterdir())
    zoo.load(entry.model_id)  # the sha256-checked, weights-only load
    # The data folder from $BENCH_DATA_DIR reaches the sandbox too (its environment is clean).
    monkeypatch.setenv("BENCH_DATA_DIR", str(shared_data))
    again = train_isolated(config, isolation="sandbox", data_dir=None, zoo=ModelZoo(tmp_path / "c"))
    assert again.card["checkpoint"]["sha256"] == here.card["checkpoint"]["sha256"]
    # Its evaluation: the robust model attacked here, white-box; the defense's record from
    # the sandbox.
    base = tiny_models["zoo"].folder("tiny_cnn_breastmnist_28px_s0")
    shutil.copytree(base, zoo.folder("tiny_cnn_breastmnist_28px_s0"))
    doc, _ = evaluate(
        _config(defense=str(copy), defense_params={"steps": 1}, n_examples=8),
        data_dir=shared_data,
        zoo=zoo,
        cache=AdversarialCache(tmp_path / "cache"),
        isolation="sandbox",
    )
    assert doc["defense"]["isolation"]["mode"] == "sandbox"
    assert doc["model"]["checkpoint_sha256"] == entry.card["checkpoint"]["sha256"]


@needs_sandbox
def test_a_sandboxed_wrapper_is_differentiated_like_the_original(tiny_models, tmp_path):
    """The VJPs that cross the pipe equal autograd here, for one output differentiated
    several times (FAB's per-class rows use retain_graph), and a graph the sandbox dropped
    is refused with one line."""
    import torch

    from benchmark.defenses.submissions import read_submission
    from benchmark.defenses.templates import write_submission

    folder = write_submission("mirror", "wrapper", tmp_path)
    model = tiny_models["breastmnist"]
    x = torch.rand(4, 1, 28, 28)
    local = read_submission(folder).build().wrap(model)

    def rows(module):
        xg = x.clone().requires_grad_(True)
        out = module(xg)
        first = torch.autograd.grad(out[:, 0].sum(), xg, retain_graph=True)[0]
        second = torch.autograd.grad(out[:, 1].sum(), xg, retain_graph=True)[0]
        again = torch.autograd.grad(out[:, 0].sum(), xg)[0]
        return out.detach(), first, second, again

    with SandboxedSubmission(folder) as sub:
        remote = sub.build().wrap(model)
        for a, b in zip(rows(remote), rows(local), strict=True):
            assert torch.allclose(a, b, atol=1e-6)
        xg = x.clone().requires_grad_(True)
        old = remote(xg)
        for _ in range(20):  # the sandbox keeps the last 16 graphs
            remote(x.clone().requires_grad_(True))
        with pytest.raises(SandboxError, match="no longer holds forward pass"):
            torch.autograd.grad(old.sum(), xg)
