"""The ``bench`` CLI end to end on real data, driven through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.hashing import file_digest
from benchmark.results import read_result

runner = CliRunner()


def bench(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_list_kinds():
    out = bench("list", "datasets")
    assert out.exit_code == 0
    names = [line.split()[0] for line in out.stdout.splitlines()]
    assert "pneumoniamnist" in names and "ham10000_220" in names and len(names) == 13
    out = bench("list", "models", "res*")
    assert [line.split()[0] for line in out.stdout.splitlines()] == ["resnet18", "resnet50"]
    out = bench("list", "metrics", "--json")
    assert "auc" in json.loads(out.stdout)
    for kind in ("attacks", "corruptions", "defenses"):
        assert bench("list", kind).exit_code == 0


def test_list_defenses_shows_the_submissions_and_names_a_broken_one(tmp_path, monkeypatch):
    repo_submissions = Path(__file__).resolve().parents[2] / "submissions"
    monkeypatch.setenv("BENCH_SUBMISSIONS_DIR", str(repo_submissions))
    out = bench("list", "defenses")
    kinds = {line.split()[0]: line.split()[1] for line in out.stdout.splitlines()}
    assert kinds["mdda"] == "preprocessing" and kinds["medrdf"] == "wrapper"
    assert {k for k, v in kinds.items() if v == "training"} == {
        "pgd_at",
        "mpadvt",
        "maadvt",
        "trades",
        "mart",
    }
    assert (
        json.loads(bench("list", "defenses", "m*", "--json").stdout)["mart"]["kind"] == "training"
    )
    (tmp_path / "broken").mkdir()
    # the former layout, with the metadata repeated in submission.toml
    (tmp_path / "broken" / "submission.toml").write_text('id = "broken"\nname = "Broken"\n')
    monkeypatch.setenv("BENCH_SUBMISSIONS_DIR", str(tmp_path))
    out = bench("list", "defenses")
    assert out.exit_code == 0
    assert (
        "broken  INVALID: submission 'broken': submission.toml holds 'name'; move 'name' to "
        "the class meta" in out.stdout
    )


def test_info_shows_metadata():
    out = bench("info", "retinamnist", "--json")
    assert out.exit_code == 0
    meta = json.loads(out.stdout)["dataset"]
    assert meta["task"] == "ordinal-regression" and len(meta["class_names"]) == 5


def test_errors_are_one_line_and_exit_1():
    assert "did you mean 'resnet18'" in one_error_line(bench("info", "resnt18"))
    assert "unknown kind 'widgets'" in one_error_line(bench("list", "widgets"))
    assert "No such option: --bogus" in one_error_line(bench("train", "--bogus"))
    line = one_error_line(bench("train", "-d", "breastmnist", "-m", "tiny_cnn", "--epochs", "x"))
    assert "--epochs" in line
    line = one_error_line(bench("train", "-d", "breastmnist", "-m", "tiny_cnn", "--epochs", "0"))
    assert "--epochs must be >= 1" in line


def test_verbose_adds_the_traceback(tmp_path):
    out = bench(
        "--verbose", "evaluate", "-d", "breastmnist", "-m", "tiny_cnn", "--data-dir", tmp_path
    )
    assert out.exit_code == 1
    assert "Traceback" in out.stderr and "error: breastmnist.npz not found" in out.stderr


def test_missing_data_is_reported_before_any_work(tmp_path):
    line = one_error_line(
        bench(
            "evaluate",
            "-d",
            "breastmnist",
            "-m",
            "tiny_cnn",
            "--data-dir",
            tmp_path,
            "--train-if-missing",
        )
    )
    assert "breastmnist.npz not found" in line
    assert not (tmp_path / "zoo").exists()


@pytest.fixture
def trained(shared_data, isolated_dirs):
    out = bench(
        "train",
        "-d",
        "breastmnist",
        "-m",
        "tiny_cnn",
        "--epochs",
        "2",
        "--data-dir",
        shared_data,
        "--json",
    )
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


def test_train_writes_checkpoint_and_card(trained, isolated_dirs, shared_sha256):
    card = trained
    folder = isolated_dirs / "zoo" / "tiny_cnn_breastmnist_28px_s0"
    assert card["checkpoint"]["sha256"] == file_digest(folder / "model.pt")
    assert json.loads((folder / "card.json").read_text()) == card
    assert card["epochs"] == 2 and len(card["history"]) == 2
    assert 1 <= card["best_epoch"] <= 2
    assert card["recipe"]["optimizer"] == "adam" and card["recipe"]["lr"] == 1e-3
    assert card["data"]["test"]["sha256"] == shared_sha256["medmnist/breastmnist.npz"]
    for split in ("val", "test"):
        for metric in ("acc", "auc"):
            assert 0.0 <= card["metrics"][split][metric]["value"] <= 1.0
    assert card["environment"]["torch"] and card["training_time_hours"] > 0


def test_training_is_deterministic_under_a_seed(trained, shared_data, tmp_path):
    out = bench(
        "train",
        "-d",
        "breastmnist",
        "-m",
        "tiny_cnn",
        "--epochs",
        "2",
        "--data-dir",
        shared_data,
        "--zoo",
        tmp_path / "zoo2",
        "--json",
    )
    again = json.loads(out.stdout)
    assert again["checkpoint"]["sha256"] == trained["checkpoint"]["sha256"]
    assert again["metrics"]["test"] == trained["metrics"]["test"]


def test_evaluate_writes_a_valid_versioned_result(
    trained, shared_data, isolated_dirs, shared_sha256
):
    out = bench("evaluate", "-d", "breastmnist", "-m", "tiny_cnn", "--data-dir", shared_data)
    assert out.exit_code == 0, out.output
    assert "confusion matrix" in out.stdout and "accuracy" in out.stdout
    files = list((isolated_dirs / "results").rglob("*.json"))
    assert len(files) == 1
    doc = read_result(files[0])
    assert doc["data"]["sha256"] == shared_sha256["medmnist/breastmnist.npz"]
    assert doc["data"]["n"] == 156
    assert doc["model"]["checkpoint_sha256"] == trained["checkpoint"]["sha256"]
    assert doc["versions"]["torchattacks"] and doc["environment"]["device"] == "cpu"
    clean = doc["metrics"]["clean"]
    matrix = clean["confusion_matrix"]["matrix"]
    assert sum(map(sum, matrix)) == 156
    assert clean["accuracy"]["value"] == pytest.approx((matrix[0][0] + matrix[1][1]) / 156)
    assert clean["accuracy"]["value"] == pytest.approx(trained["metrics"]["test"]["acc"]["value"])
    # A second run adds a new file and never overwrites the first.
    bench("evaluate", "-d", "breastmnist", "-m", "tiny_cnn", "--data-dir", shared_data)
    assert len(list((isolated_dirs / "results").rglob("*.json"))) == 2


def test_evaluate_without_model_says_how_to_train(shared_data):
    line = one_error_line(
        bench("evaluate", "-d", "breastmnist", "-m", "tiny_cnn", "--data-dir", shared_data)
    )
    assert "bench train --dataset breastmnist --model tiny_cnn" in line
    assert "--train-if-missing" in line


def test_evaluate_refuses_a_corrupt_checkpoint_and_writes_nothing(
    trained, shared_data, isolated_dirs
):
    ckpt = isolated_dirs / "zoo" / "tiny_cnn_breastmnist_28px_s0" / "model.pt"
    data = bytearray(ckpt.read_bytes())
    data[-10] ^= 0x55
    ckpt.write_bytes(bytes(data))
    line = one_error_line(
        bench("evaluate", "-d", "breastmnist", "-m", "tiny_cnn", "--data-dir", shared_data)
    )
    assert "sha256" in line and "retrain" in line
    assert not (isolated_dirs / "results").exists()


def test_evaluate_train_if_missing_on_ham10000(shared_data, isolated_dirs):
    out = bench(
        "evaluate",
        "-d",
        "ham10000_220",
        "-m",
        "tiny_cnn",
        "--size",
        "28",
        "--data-dir",
        shared_data,
        "--train-if-missing",
        "--epochs",
        "1",
        "--json",
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["config"]["model_id"] == "tiny_cnn_ham10000_220_28px_s0"
    assert doc["data"]["n"] == 135 and doc["data"]["license"] == "CC BY-NC 4.0"
    assert len(doc["metrics"]["clean"]["per_class_accuracy"]["per_class"]) == 7


def test_zoo_list_and_report(trained, tmp_path):
    out = bench("zoo", "list")
    assert "tiny_cnn_breastmnist_28px_s0" in out.stdout
    target = tmp_path / "model_zoo.md"
    # The zoo's cards only: this test zoo's tiny CNNs are not the published ones.
    out = bench("zoo", "report", "--out", target, "--cards", "", "--results", "")
    assert out.exit_code == 0, out.output
    text = target.read_text()
    assert "tiny_cnn_breastmnist_28px_s0" in text
    assert trained["checkpoint"]["sha256"][:16] in text
    acc = 100 * trained["metrics"]["test"]["acc"]["value"]
    assert f"{acc:.1f}" in text


def test_console_script_entry_point_is_declared():
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert 'bench = "benchmark.cli.main:main"' in text


def test_evaluate_with_attacks_subset_and_params(trained, shared_data, isolated_dirs):
    out = bench(
        "evaluate",
        "-d",
        "breastmnist",
        "-m",
        "tiny_cnn",
        "--data-dir",
        shared_data,
        "--attacks",
        "fgsm,pgd",
        "--eps",
        "2/255,8/255",
        "--attack-param",
        "pgd.steps=3",
        "--n-examples",
        "24",
        "--json",
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    cells = [a["cell_id"] for a in doc["attacks"]]
    assert cells == [
        "fgsm_eps2-255",
        "pgd_eps2-255_steps3",
        "fgsm_eps8-255",
        "pgd_eps8-255_steps3",
        "pgd_eps64-255_steps10",
    ]
    assert doc["data"]["n"] == 24 and len(doc["data"]["subset"]["indices"]) == 24
    assert doc["attacks"][-1]["sanity_only"] is True
    assert {w["eps_label"] for w in doc["worst_case"]} == {"2/255", "8/255"}
    wc8 = doc["worst_case"][-1]  # the 8/255 budget also counts the attacks at 2/255
    assert wc8["attacks"] == cells[:4]
    assert wc8["robust_accuracy"]["value"] <= doc["worst_case"][0]["robust_accuracy"]["value"]
    for block in doc["attacks"]:
        assert block["perturbation"]["linf_max"] <= block["eps"] + 1e-5
        assert block["metrics"]["robust_accuracy"]["n"] == 24
    assert len(doc["sanity_checks"]) == 5
    path = next((isolated_dirs / "results").rglob("*.json"))
    assert path.parts[-3] == "custom"
    report = isolated_dirs / "attacks.md"
    out = bench("report", "attacks", path, "--out", report)
    assert out.exit_code == 0, out.output
    text = report.read_text()
    first = doc["attacks"][0]["metrics"]["robust_accuracy"]
    assert f"{100 * first['value']:.1f} [{100 * first['ci95'][0]:.1f}" in text
    assert "seeded random subset of 24 of the 156" in text and path.name in text


def test_evaluate_attack_errors_before_any_work(trained, shared_data, isolated_dirs):
    line = one_error_line(
        bench(
            "evaluate",
            "-d",
            "breastmnist",
            "-m",
            "tiny_cnn",
            "--data-dir",
            shared_data,
            "--attacks",
            "pgdd",
        )
    )
    assert "did you mean 'pgd'" in line
    line = one_error_line(
        bench(
            "evaluate",
            "-d",
            "breastmnist",
            "-m",
            "tiny_cnn",
            "--data-dir",
            shared_data,
            "--attacks",
            "pgd",
            "--attack-param",
            "pgd.stepz=3",
        )
    )
    assert "has no parameter" in line
    line = one_error_line(
        bench(
            "evaluate",
            "-d",
            "breastmnist",
            "-m",
            "tiny_cnn",
            "--data-dir",
            shared_data,
            "--attacks",
            "apgd_dlr",
        )
    )
    assert "at least 3 classes" in line
    assert not (isolated_dirs / "results").exists()


def test_list_presets():
    out = bench("list", "presets")
    names = [line.split()[0] for line in out.stdout.splitlines()]
    assert {"quick", "medrdf", "xu2021", "nosign", "mdda"} <= set(names)


def test_evaluate_with_corruptions_prints_fp_and_writes_the_block(
    trained, shared_data, isolated_dirs
):
    args = ["evaluate", "-d", "breastmnist", "-m", "tiny_cnn", "--data-dir", shared_data]
    out = bench(*args, "--corruptions", "rotate_seq,contrast_down", "--n-examples", "16")
    assert out.exit_code == 0, out.output
    assert "rotate_seq" in out.stdout and "mFP" in out.stdout
    assert "mean corruption accuracy" in out.stdout
    path = next((isolated_dirs / "results").rglob("*.json"))
    assert path.parts[-3] == "custom"
    doc = json.loads(path.read_text())
    assert doc["config"]["corruption_suite"] == "custom"
    assert doc["corruptions"]["sequences"]["types"][0]["flip_probability"]["n"] == 16
    page = isolated_dirs / "page.md"
    glob = "results/breastmnist/custom/*/*.json"
    page.write_text(
        f"# P\n<!-- bench:results fp {glob} -->\n<!-- /bench:results -->\n"
        f"<!-- bench:results corruptions {glob} -->\n<!-- /bench:results -->\n"
    )
    out = bench("report", "update", page, "--root", isolated_dirs)
    assert out.exit_code == 0, out.output
    text = page.read_text()
    fp = doc["corruptions"]["sequences"]["types"][0]["flip_probability"]["value"]
    assert f"| breastmnist | tiny_cnn_breastmnist_28px_s0 | none | 16 | {100 * fp:.2f} |" in text
    acc = doc["corruptions"]["severity"]["corruptions"][0]["accuracy"][0]["value"]
    assert f"| contrast_down | digital | {100 * acc:.1f} |" in text
    assert bench("report", "update", page, "--root", isolated_dirs, "--check").exit_code == 0
    page.write_text(text.replace(f"{100 * fp:.2f}", "99.99", 1))
    line = one_error_line(bench("report", "update", page, "--root", isolated_dirs, "--check"))
    assert "out of date with the results" in line
    line = one_error_line(bench(*args, "--corruptions", "rotat_seq"))
    assert "unknown corruption, corruption preset or corruption protocol 'rotat_seq'" in line
    line = one_error_line(bench(*args, "--corruption-reference", "x"))
    assert "--corruption-reference needs --corruptions" in line


def test_corruptions_preview_writes_a_png_strip(shared_data, isolated_dirs):
    target = isolated_dirs / "strip.png"
    args = ["corruptions", "preview", "-d", "breastmnist", "--data-dir", shared_data]
    out = bench(*args, "--out", target, "--corruptions", "rotate_seq,snow_seq")
    assert out.exit_code == 0, out.output
    from PIL import Image

    with Image.open(target) as img:
        assert img.format == "PNG" and img.height > 2 * 28 * 3  # two rows of 3x tiles
    out = bench(*args, "--out", target, "--kind", "severity", "--corruptions", "pixelate")
    assert out.exit_code == 0, out.output
    line = one_error_line(bench(*args, "--out", target, "--index", "100000"))
    assert "--index 100000 is outside the test split" in line


def test_validate_a_submission_and_a_broken_one(isolated_dirs, monkeypatch):
    root = Path(__file__).resolve().parents[2] / "submissions"
    out = bench("validate", root / "jpeg")
    assert out.exit_code == 0, out.output
    assert (
        "jpeg (JPEG compression, preprocessing)" in out.stdout and "ok  determinism" in out.stdout
    )
    monkeypatch.setenv("BENCH_SUBMISSIONS_DIR", str(root))
    out = bench("validate", "median_filter", "--param", "kernel_size=5", "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["submission"]["kind"] == "preprocessing"
    line = one_error_line(bench("validate", "median_filter", "--param", "kernel_size=1"))
    assert "submission 'median_filter': kernel_size must be >= 2" in line
    line = one_error_line(bench("validate", "median_filter", "--param", "radius=2"))
    assert "unknown parameter(s) radius" in line
    line = one_error_line(bench("validate", "nope"))
    assert "unknown defense 'nope'" in line


@pytest.mark.parametrize("kind", ["preprocessing", "wrapper", "voting", "training"])
def test_new_submission_writes_a_skeleton_that_passes_validate(tmp_path, monkeypatch, kind):
    sid = f"my_{kind}"
    out = bench("new-submission", sid, "--kind", kind, "--dir", tmp_path)
    assert out.exit_code == 0, out.output
    folder = tmp_path / sid
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "defense.py",
        "submission.toml",
    ]
    track = "mrb_linf_v2" if kind == "training" else "mrb_linf_adaptive_v2"
    assert f"its track is {track}" in out.stdout
    readme = (folder / "README.md").read_text()
    for section in ("**Method.**", "**Paper.**", "**Parameters.**", "**Threat models claimed.**"):
        assert section in readme
    assert f"bench validate {sid}\n" in readme
    assert f"--protocol {track} --defense {sid}\n" in readme
    assert (f"bench train -d pneumoniamnist -m resnet18 --defense {sid}" in readme) == (
        kind == "training"
    )
    monkeypatch.setenv("BENCH_SUBMISSIONS_DIR", str(tmp_path))
    out = bench("validate", sid, "--json")
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["submission"]["kind"] == ("wrapper" if kind == "voting" else kind)
    if kind == "voting":
        assert {"voting soft", "voting votes", "voting abstention"} <= {
            c["name"] for c in doc["passed"]
        }
    assert {f["path"]: f["tracked"] for f in doc["submission"]["files"]} == {
        "README.md": False,
        "defense.py": False,
        "submission.toml": False,
    }


def test_new_submission_refuses_an_existing_folder_and_a_bad_id(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    line = one_error_line(bench("new-submission", "taken", "--kind", "wrapper", "--dir", tmp_path))
    assert "taken already exists" in line
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]
    line = one_error_line(
        bench("new-submission", "My-Defense", "--kind", "wrapper", "--dir", tmp_path)
    )
    assert "invalid submission id 'My-Defense'" in line
    line = one_error_line(bench("new-submission", "ok_id", "--kind", "magic", "--dir", tmp_path))
    assert "unknown submission kind 'magic'" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_evaluate_a_defense_from_the_cli(trained, shared_data, isolated_dirs):
    root = Path(__file__).resolve().parents[2] / "submissions"
    args = ["evaluate", "-d", "breastmnist", "-m", "tiny_cnn", "--data-dir", shared_data]
    out = bench(
        *args,
        "--defense",
        root / "jpeg",
        "--defense-param",
        "quality=30",
        "--threat-model",
        "oblivious",
        "--threat-model",
        "adaptive",
        "--attacks",
        "fgsm",
        "--eps",
        "2/255",
        "--n-examples",
        "8",
        "--no-sanity-attack",
        "--json",
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["defense"]["id"] == "jpeg" and doc["defense"]["config"]["params"] == {"quality": 30}
    assert [a["threat_model"] for a in doc["attacks"]] == ["oblivious", "adaptive"]
    line = one_error_line(bench(*args, "--defense", root / "jpeg", "--threat-model", "psychic"))
    assert "--threat-model must be oblivious and/or adaptive" in line


def test_info_answers_for_every_kind_including_submitted_defenses(monkeypatch):
    repo_submissions = Path(__file__).resolve().parents[2] / "submissions"
    monkeypatch.setenv("BENCH_SUBMISSIONS_DIR", str(repo_submissions))
    for name, kind in [
        ("pneumoniamnist", "dataset"),
        ("resnet18", "model"),
        ("pgd", "attack"),
        ("medrdf", "preset"),
        ("jpeg", "defense"),
        ("medrdf", "defense"),
        ("accuracy", "metric"),
    ]:
        out = bench("info", name, "--json")
        assert out.exit_code == 0, out.output
        assert kind in json.loads(out.stdout), (name, out.stdout[:200])
    info = json.loads(bench("info", "jpeg", "--json").stdout)["defense"]
    assert info["kind"] == "preprocessing" and info["id"] == "jpeg"
    assert "did you mean 'jpeg'" in one_error_line(bench("info", "jpg"))


def test_a_pixel_count_eps_is_refused_with_the_fraction_it_meant():
    line = one_error_line(
        bench("evaluate", "-d", "breastmnist", "-m", "tiny_cnn", "--attacks", "fgsm", "--eps", "8")
    )
    assert "did you mean 8/255?" in line
    line = one_error_line(
        bench(
            "evaluate",
            "-d",
            "breastmnist",
            "-m",
            "tiny_cnn",
            "--attacks",
            "fgsm",
            "--eps",
            "-1/255",
        )
    )
    assert ">= 0" in line


def _commands(group, path=()):
    for name, cmd in getattr(group, "commands", {}).items():
        yield (*path, name), cmd
        yield from _commands(cmd, (*path, name))


def test_every_help_is_readable_at_80_columns():
    import typer

    root = typer.main.get_command(app)
    seen = 0
    for path, cmd in _commands(root):
        out = runner.invoke(app, [*path, "--help"], terminal_width=80, env={"COLUMNS": "80"})
        assert out.exit_code == 0, (path, out.output)
        assert "…" not in out.stdout, f"bench {' '.join(path)} --help cuts text at 80 columns"
        assert max(len(line) for line in out.stdout.splitlines()) <= 80, path
        for param in cmd.params:
            for opt in param.opts:
                if opt.startswith("--"):
                    assert opt in out.stdout, (path, opt)
        seen += 1
    assert seen >= 16
