"""Every shipped submission passes the conformance suite; broken ones are refused clearly."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import torch

from benchmark.defenses import DefendedModel, SubmissionError, bpda, load_submission
from benchmark.defenses.conformance import validate_submission
from benchmark.defenses.submissions import list_submissions, read_submission, submission_files
from benchmark.hashing import files_digest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.parent.name for p in (ROOT / "submissions").glob("*/submission.toml"))
#: Smaller settings for the default suite where the full size is slow on a CPU: the checks
#: (shapes, ranges, seeding, declared flags, voting hooks) do not depend on the number of
#: MedRDF votes or of MDDA blocks and TV iterations. The full sizes run in the slow suite.
FAST = {"medrdf": {"n": 64, "batch": 256}, "mdda": {"blocks": 1, "tv_iterations": 2}}


def test_the_baselines_are_shipped():
    assert {
        "bit_depth_reduction",
        "median_filter",
        "gaussian_smoothing",
        "jpeg",
        "random_resize_pad",
    } <= set(SHIPPED)


def _passes_conformance(sid: str, **overrides) -> None:
    sub = read_submission(ROOT / "submissions" / sid)
    names = {c.name for c in validate_submission(sub, **overrides)}
    if sub.meta.kind == "training":
        assert {"metadata", "runs", "loss", "determinism"} <= names
    else:
        assert {"metadata", "runs", "determinism", "declared randomized"} <= names
    if sid == "medrdf":
        assert {"voting soft", "voting votes", "voting abstention"} <= names
    assert (ROOT / "submissions" / sid / "README.md").is_file(), f"{sid} lacks a README"


@pytest.mark.parametrize("sid", SHIPPED)
def test_shipped_submission_passes_conformance(sid):
    _passes_conformance(sid, **FAST.get(sid, {}))


@pytest.mark.slow
@pytest.mark.parametrize("sid", sorted(FAST))
def test_shipped_submission_passes_conformance_at_full_size(sid):
    _passes_conformance(sid)


def test_load_by_id_uses_the_submissions_dir(monkeypatch):
    monkeypatch.setenv("BENCH_SUBMISSIONS_DIR", str(ROOT / "submissions"))
    assert "median_filter" in list_submissions()
    sub = load_submission("median_filter")
    assert sub.params == {"kernel_size": 3} and sub.meta.kind == "preprocessing"
    with pytest.raises(SubmissionError, match="did you mean 'median_filter'"):
        load_submission("median_filtr")


GOOD_CLASS = """
import torch
from benchmark.defenses import Defense, DefenseMeta

class Plugin(Defense):
    meta = DefenseMeta(kind="preprocessing", randomized={randomized}, differentiable={diff},
                       reference="ref", version="1", license="MIT", authors=("me",),
                       name="Broken", paper="none", threat_models=({threat!r},))
    defaults = {{}}

    def purify(self, x):
        {body}
"""
TOML = """id = "{sid}"
entry = "defense:Plugin"
"""


def _write(tmp_path: Path, sid: str, body: str, *, toml: str | None = None, **flags) -> Path:
    folder = tmp_path / sid
    folder.mkdir()
    (folder / "submission.toml").write_text(toml if toml is not None else TOML.format(sid=sid))
    code = GOOD_CLASS.format(
        randomized=flags.get("randomized", False),
        diff=flags.get("diff", False),
        threat=flags.get("threat", "oblivious"),
        body=body,
    )
    (folder / "defense.py").write_text(textwrap.dedent(code))
    return folder


BROKEN = [
    ("nan", "return x * float('nan')", {}, "fails 'finite'"),
    ("shape", "return x[:, :, :-1]", {}, "fails 'shape'"),
    ("range", "return x * 2", {}, "fails 'range'"),
    ("raises", "raise RuntimeError('boom')", {}, "fails 'runs': RuntimeError: boom"),
    ("liar_det", "return (x + 0.01 * torch.rand_like(x)).clamp(0, 1)", {}, "randomized=False"),
    ("liar_rand", "return x", {"randomized": True}, "declared randomized=True"),
    ("liar_diff", "return torch.round(x)", {"diff": True}, "declared differentiable=True"),
    ("batch", "return (x - x.mean() + 0.5).clamp(0, 1)", {}, "fails 'batch independence'"),
    ("dtype", "return x.double()", {}, "fails 'dtype'"),
]


@pytest.mark.parametrize(("sid", "body", "flags", "message"), BROKEN)
def test_broken_behaviour_is_refused(tmp_path, sid, body, flags, message):
    sub = read_submission(_write(tmp_path, sid, body, **flags))
    with pytest.raises(SubmissionError, match=f"submission '{sid}'") as err:
        validate_submission(sub)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_malformed_submissions_are_refused(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(SubmissionError, match=r"submission\.toml is missing"):
        read_submission(folder)
    bad = _write(tmp_path, "badtoml", "return x", toml="id = [unclosed")
    with pytest.raises(SubmissionError, match="not valid TOML"):
        read_submission(bad)
    lacks = _write(tmp_path, "lacks", "return x", toml='id = "lacks"\n')
    with pytest.raises(SubmissionError, match="lacks entry"):
        read_submission(lacks)
    wrong = _write(tmp_path, "wrongclass", "return x")
    (wrong / "submission.toml").write_text(TOML.format(sid="wrongclass").replace("Plugin", "Nope"))
    with pytest.raises(SubmissionError, match="no Defense subclass 'Nope'"):
        read_submission(wrong)
    syntax = _write(tmp_path, "syntax", "return x")
    (syntax / "defense.py").write_text("def broken(:\n")
    with pytest.raises(SubmissionError, match=r"importing defense\.py failed"):
        read_submission(syntax)
    other = _write(tmp_path, "otherid", "return x", toml=TOML.format(sid="else"))
    with pytest.raises(SubmissionError, match="says id 'else' but the folder is 'otherid'"):
        read_submission(other)
    threat = _write(tmp_path, "threat", "return x", threat="psychic")
    with pytest.raises(SubmissionError, match="threat_models 'psychic' unknown; claim a subset"):
        read_submission(threat)


@pytest.mark.parametrize(
    ("key", "line", "fix"),
    [
        ("authors", 'authors = ["me"]', "move 'authors' to the class meta"),
        ("name", 'name = "Broken"', "move 'name' to the class meta"),
        ("paper", 'paper = "none"', "move 'paper' to the class meta"),
        ("license", 'license = "MIT"', "move 'license' to the class meta"),
        ("threat_models", 'threat_models = ["oblivious"]', "move 'threat_models' to the class"),
        ("params", "[params]\nk = 3", "move [params] to the class defaults"),
        ("colour", 'colour = "red"', "unknown key(s) colour; it holds only id and entry"),
    ],
)
def test_a_toml_repeating_the_class_metadata_is_refused(tmp_path, key, line, fix):
    """The class ``meta`` and ``defaults`` are the one source of truth: a submission.toml that
    still carries one of their keys is refused with the key and where it goes."""
    folder = _write(tmp_path, key, "return x", toml=TOML.format(sid=key) + line + "\n")
    with pytest.raises(SubmissionError, match=f"submission '{key}'") as err:
        read_submission(folder)
    assert fix in str(err.value) and "\n" not in str(err.value)


def test_incomplete_class_metadata_is_refused(tmp_path):
    folder = _write(tmp_path, "noname", "return x")
    code = (folder / "defense.py").read_text().replace('name="Broken", paper="none", ', "")
    (folder / "defense.py").write_text(code)
    with pytest.raises(SubmissionError, match=r"Plugin\.meta lacks name, paper; fill them in"):
        read_submission(folder)


def test_the_record_comes_from_the_class_meta(monkeypatch):
    monkeypatch.setenv("BENCH_SUBMISSIONS_DIR", str(ROOT / "submissions"))
    sub = load_submission("medrdf")
    record = sub.record()
    assert record["name"] == sub.meta.name == "MedRDF (salt-and-pepper noise, median filter)"
    assert record["authors"] == list(sub.meta.authors)
    assert record["claimed_threat_models"] == ["oblivious", "adaptive"]
    assert record["paper"].startswith("Xu, Zhang and Zhang, MedRDF")
    assert sub.params == sub.defense_cls.defaults


def test_bpda_uses_the_identity_or_the_approximation_on_the_backward_pass():
    x = torch.tensor([0.2, 0.7], requires_grad=True)
    y = bpda(torch.round, x)
    assert torch.equal(y, torch.tensor([0.0, 1.0]))
    (y * torch.tensor([3.0, 5.0])).sum().backward()
    assert torch.equal(x.grad, torch.tensor([3.0, 5.0]))  # identity: the upstream gradient
    x2 = x.detach().requires_grad_(True)
    bpda(torch.round, x2, lambda z: z**2).sum().backward()
    assert torch.allclose(x2.grad, 2 * x2.detach())  # d/dx of the approximation x^2


def test_defended_model_is_adaptive_only_when_asked():
    sub = read_submission(ROOT / "submissions" / "bit_depth_reduction")
    defense = sub.build(bits=1)
    base = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        base[1].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
    base.multi_label = False
    x = torch.full((1, 1, 2, 2), 0.4, requires_grad=True)
    oblivious = DefendedModel(base, defense)
    oblivious(x)[0, 0].backward()
    assert x.grad is None or x.grad.abs().sum() == 0  # rounding: no gradient
    adaptive = DefendedModel(base, defense, adaptive=True)
    x.grad = None
    out = adaptive(x)
    assert torch.equal(out.detach(), torch.tensor([[0.0, 0.0]]))  # round(0.4) = 0 forward
    out[0, 0].backward()
    assert torch.equal(x.grad.flatten(), torch.tensor([1.0, 0, 0, 0]))  # BPDA identity


def test_forced_bpda_replaces_the_exact_gradient_of_a_differentiable_purifier():
    """``bpda_always`` (the ``--adaptive-gradient bpda`` pass): the purifier still runs
    forward, but its backward pass is the identity instead of autograd through it."""
    sub = read_submission(ROOT / "submissions" / "gaussian_smoothing")
    defense = sub.build()
    assert defense.meta.differentiable
    base = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2, bias=False))
    with torch.no_grad():
        base[1].weight.zero_()
        base[1].weight[0, 27] = 1.0  # reads one interior pixel
    base.multi_label = False
    x = torch.rand(1, 1, 8, 8, requires_grad=True)
    grads = {}
    for always in (False, True):
        x.grad = None
        out = DefendedModel(base, defense, adaptive=True, bpda_always=always)(x)
        assert torch.allclose(out, base(defense.purify(x.detach())))  # same forward pass
        out[0, 0].backward()
        grads[always] = x.grad.clone()
    one_hot = torch.zeros(64)
    one_hot[27] = 1.0
    assert torch.equal(grads[True].flatten(), one_hot)  # identity: the pixel read
    assert grads[False].flatten()[27] < 1 and (grads[False].flatten() > 0).sum() > 1  # the blur


def test_shared_filters():
    from benchmark.defenses.filters import gaussian_blur, median_filter

    x = torch.zeros(1, 1, 15, 15)
    x[0, 0, 7, 7] = 1.0  # an isolated spike: the median removes it, the blur spreads it
    assert median_filter(x, 3).abs().sum() == 0
    blurred = gaussian_blur(x, 1.0)
    assert blurred[0, 0, 7, 7] < 1 and torch.isclose(blurred.sum(), torch.tensor(1.0), atol=1e-5)
    flat = torch.full((1, 3, 8, 8), 0.3)
    assert torch.allclose(gaussian_blur(flat, 2.0), flat) and torch.equal(median_filter(flat), flat)


def _readme_template(name: str) -> str:
    """The code block after ``<!-- {name}-template -->`` in submissions/README.md."""
    text = (ROOT / "submissions" / "README.md").read_text()
    block = text.split(f"<!-- {name}-template -->", 1)[1]
    return block.split("```python\n", 1)[1].split("```", 1)[0]


def _voting_template() -> str:
    """The noise-averaging wrapper template of submissions/README.md."""
    return _readme_template("voting")


@pytest.mark.parametrize(
    ("name", "sid", "kind"),
    [
        ("voting", "noise_vote", "voting"),
        ("wrapper", "mirror_average", "wrapper"),
    ],
)
def test_the_documented_templates_are_what_new_submission_writes(name, sid, kind):
    from benchmark.defenses.templates import render_submission

    assert _readme_template(name) == render_submission(sid, kind)["defense.py"]


def test_the_voting_template_can_be_attacked_at_its_vote():
    from benchmark.defenses.templates import render_submission

    namespace: dict = {}
    exec(render_submission("noise_vote", "voting")["defense.py"], namespace)
    defense = namespace["NoiseVote"](n=12)
    base = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    base.num_classes = 3
    voter = defense.wrap(base)
    assert voter.has_smoothed_vote() and voter.n_votes == 12
    assert defense.abstention_share(12) == 0.5
    assert voter.soft_votes(torch.rand(2, 1, 2, 2)).shape == (2, 3)


def _write_voting(tmp_path: Path, sid: str, code: str) -> Path:
    folder = tmp_path / sid
    folder.mkdir()
    (folder / "submission.toml").write_text(f'id = "{sid}"\nentry = "defense:NoiseVote"\n')
    (folder / "defense.py").write_text(code)
    return folder


def test_the_documented_voting_template_passes_and_is_evaluated_as_a_vote(tmp_path):
    from benchmark.evaluation.defended import EOTModel, voting_module

    sub = read_submission(_write_voting(tmp_path, "noise_vote", _voting_template()))
    names = {c.name for c in validate_submission(sub, n=20)}
    assert {"voting soft", "voting votes", "voting abstention"} <= names
    base = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    base.multi_label, base.num_classes = False, 2
    defended = DefendedModel(base, sub.build(n=20))
    assert voting_module(defended) is defended.inner
    assert EOTModel(defended, samples=8).samples == 1  # soft already averages the noise
    median = read_submission(ROOT / "submissions" / "median_filter").build()
    assert voting_module(DefendedModel(base, median)) is None


BROKEN_VOTING = [
    (
        "always_abstains",
        ("abstain = top[:, 0] == top[:, 1]", "abstain = torch.ones(len(counts), dtype=torch.bool)"),
        "a unanimous vote of 1000 copies must not abstain",
    ),
    (
        "soft_logits",
        (
            "    def votes(self, x: Tensor) -> Tensor:",
            "    def soft(self, x: Tensor) -> Tensor:\n"
            "        return 3 * super().soft(x).exp()\n\n"
            "    def votes(self, x: Tensor) -> Tensor:",
        ),
        "soft(x) must return log probabilities",
    ),
    (
        "no_mask",
        ('"abstained_mask": abstain,', '"abstained_mask": abstain.tolist(),'),
        "must hold a bool (N,) 'abstained_mask'",
    ),
    (
        "batch_dependent",
        ("abstain = top[:, 0] == top[:, 1]", "abstain = (top[:, 0] == top[:, 1]) | (len(top) > 2)"),
        "depends on the other samples' votes",
    ),
]


@pytest.mark.parametrize(("sid", "edit", "message"), BROKEN_VOTING)
def test_broken_voting_hooks_are_refused(tmp_path, sid, edit, message):
    code = _voting_template()
    assert edit[0] in code
    sub = read_submission(_write_voting(tmp_path, sid, code.replace(edit[0], edit[1])))
    with pytest.raises(SubmissionError, match=f"submission '{sid}'") as err:
        validate_submission(sub, n=20)
    assert message in str(err.value)


def test_the_sha256_covers_every_file_of_the_folder_but_python_caches(tmp_path):
    folder = tmp_path / "median_filter"
    shutil.copytree(
        ROOT / "submissions" / "median_filter", folder, ignore=shutil.ignore_patterns("__pycache__")
    )
    first = read_submission(folder)
    assert [f.path for f in first.files] == ["README.md", "defense.py", "submission.toml"]
    assert first.sha256 == files_digest(submission_files(folder), folder)
    assert (
        first.record()["files"][1]["sha256"]
        == hashlib.sha256((folder / "defense.py").read_bytes()).hexdigest()
    )
    (folder / "__pycache__").mkdir(exist_ok=True)
    (folder / "__pycache__" / "defense.cpython-311.pyc").write_bytes(b"cache")
    (folder / "stale.pyc").write_bytes(b"cache")
    assert read_submission(folder).sha256 == first.sha256
    (folder / "README.md").write_text("# Median filter\n\nEdited.\n")
    edited = read_submission(folder)
    assert edited.sha256 != first.sha256
    (folder / "data").mkdir()
    (folder / "data" / "table.csv").write_text("k,3\n")
    grown = read_submission(folder)
    assert "data/table.csv" in [f.path for f in grown.files]
    assert grown.sha256 not in (first.sha256, edited.sha256)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_record_says_which_files_git_tracks_and_which_were_edited(tmp_path):
    repo = tmp_path / "repo"
    folder = repo / "submissions" / "median_filter"
    shutil.copytree(
        ROOT / "submissions" / "median_filter", folder, ignore=shutil.ignore_patterns("__pycache__")
    )

    def git(*args: str) -> None:
        identity = [
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.org",
            "-c",
            "commit.gpgsign=false",
        ]
        subprocess.run(["git", "-C", str(repo), *identity, *args], check=True, capture_output=True)

    git("init", "-q")
    git("add", "submissions/median_filter/defense.py", "submissions/median_filter/submission.toml")
    git("commit", "-q", "-m", "submission")
    with (folder / "defense.py").open("a") as fh:
        fh.write("# edited after the commit\n")
    files = read_submission(folder).record()["files"]
    assert {f["path"]: (f["tracked"], f["modified"]) for f in files} == {
        "README.md": (False, False),
        "defense.py": (True, True),
        "submission.toml": (True, False),
    }


def test_a_readme_edit_changes_the_digest_but_not_the_module_name(tmp_path):
    """The digest covers every file; the module's import name follows the entry file only, so
    an edited README does not rename an unchanged module (a jitted function's on-disk cache
    records its module's name)."""
    src = tmp_path / "median_filter"
    shutil.copytree(ROOT / "submissions" / "median_filter", src)
    before = read_submission(src)
    (src / "README.md").write_text((src / "README.md").read_text() + "\nA typo fixed.\n")
    after = read_submission(src)
    assert before.sha256 != after.sha256
    assert before.defense_cls.__module__ == after.defense_cls.__module__
