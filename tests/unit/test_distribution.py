"""Getting our models: export, import and pull of zoo entries, every one verified before it is
installed, offline (the Hub is faked by a local folder, and its real client refuses offline)."""

from __future__ import annotations

import io
import json
import math
import shutil
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.errors import CheckpointError
from benchmark.hashing import file_digest
from benchmark.models import distribution
from benchmark.models.distribution import (
    export_models,
    folder_fetcher,
    hub_fetcher,
    import_models,
    published_checkpoints,
    pull_models,
)
from benchmark.models.zoo import ModelZoo
from benchmark.results.parts import part_files

MID = "tiny_cnn_breastmnist_28px_s0"


def _rewrite(src: Path, dst: Path, edit) -> None:
    """Copy an archive, passing each member's (name, bytes) through ``edit``."""
    with tarfile.open(src) as a, tarfile.open(dst, "w:gz") as b:
        for member in a.getmembers():
            out = edit(member.name, a.extractfile(member).read())
            if out is None:
                continue
            name, data = out
            info = tarfile.TarInfo(name)
            info.size = len(data)
            b.addfile(info, io.BytesIO(data))


def test_export_then_import_installs_the_same_bytes(tiny_models, tmp_path):
    source = tiny_models["zoo"]
    archive = export_models(source, [MID], tmp_path / "models.tar.gz")
    again = export_models(source, [MID], tmp_path / "again.tar.gz")
    assert file_digest(archive) == file_digest(again)  # deterministic archive
    zoo = ModelZoo(tmp_path / "zoo")
    (entry,) = import_models(archive, zoo)
    assert file_digest(entry.checkpoint) == file_digest(source.entry(MID).checkpoint)
    assert entry.card == source.entry(MID).card
    zoo.load(MID)
    assert import_models(archive, zoo)[0].model_id == MID  # idempotent
    other = tiny_models["zoo"].entry("tiny_cnn_breastmnist_28px_s1")
    shutil.copy(other.checkpoint, zoo.folder(MID) / "model.pt")  # same id, other weights
    card = json.loads((zoo.folder(MID) / "card.json").read_text())
    card["checkpoint"]["sha256"] = file_digest(other.checkpoint)
    (zoo.folder(MID) / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match=r"already in .* with other weights"):
        import_models(archive, zoo)


def test_a_tampered_archive_installs_nothing(tiny_models, tmp_path):
    archive = export_models(tiny_models["zoo"], [MID], tmp_path / "models.tar.gz")
    zoo = ModelZoo(tmp_path / "zoo")

    def flip(name, data):
        return (
            (name, data[:-1] + bytes([data[-1] ^ 1]))
            if name.endswith("model.pt")
            else (
                name,
                data,
            )
        )

    cases = {
        "does not match its sha256 in the manifest": flip,
        "is not in the manifest": lambda n, d: (n.replace(MID, "../evil") if "/" in n else n, d),
        "is in the manifest but not in the archive": lambda n, d: (
            None if n.endswith("card.json") else (n, d)
        ),
    }
    for message, edit in cases.items():
        forged = tmp_path / "forged.tar.gz"
        _rewrite(archive, forged, edit)
        with pytest.raises(CheckpointError, match=message):
            import_models(forged, zoo)
        assert not zoo.root.exists() or not any(zoo.root.iterdir())
    with pytest.raises(CheckpointError, match=r"missing\.tar\.gz does not exist"):
        import_models(tmp_path / "missing.tar.gz", zoo)
    (tmp_path / "text.tar.gz").write_text("not an archive")
    with pytest.raises(CheckpointError, match="is not a model archive"):
        import_models(tmp_path / "text.tar.gz", zoo)


def test_weights_that_are_not_the_cards_or_the_published_ones_are_refused(tiny_models, tmp_path):
    entry = tiny_models["zoo"].entry(MID)
    files = {"card.json": entry.path.joinpath("card.json").read_bytes()}
    other = tiny_models["zoo"].entry("tiny_cnn_breastmnist_28px_s1")
    zoo = ModelZoo(tmp_path / "zoo")
    with pytest.raises(CheckpointError, match="its card says"):
        distribution.install_model(zoo, MID, {**files, "model.pt": other.checkpoint.read_bytes()})
    files["model.pt"] = entry.checkpoint.read_bytes()
    with pytest.raises(CheckpointError, match="published results were computed with"):
        distribution.install_model(zoo, MID, files, expected={"0" * 64})
    assert not zoo.exists(MID)
    sha = entry.card["checkpoint"]["sha256"]
    assert distribution.install_model(zoo, MID, files, expected={sha, "0" * 64}).model_id == MID


def test_pull_from_a_folder_and_from_the_hub_client(tiny_models, tmp_path, monkeypatch):
    """A local mirror laid out like the Hub repository; then the Hub client itself, with its
    download replaced by that folder (no network in tests), and with the real client offline."""
    mirror = tmp_path / "mirror"
    shutil.copytree(tiny_models["zoo"].folder(MID), mirror / MID)
    (entry,) = pull_models(folder_fetcher(mirror), [MID], ModelZoo(tmp_path / "a"))
    assert (
        entry.card["checkpoint"]["sha256"]
        == tiny_models["zoo"].entry(MID).card["checkpoint"]["sha256"]
    )
    with pytest.raises(CheckpointError, match="is not in"):
        pull_models(folder_fetcher(mirror), ["resnet18_breastmnist_28px_s0"], ModelZoo(tmp_path))

    calls = []

    def fake_download(repo_id, filename, revision=None):
        calls.append((repo_id, filename, revision))
        return str(mirror / filename)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    zoo = ModelZoo(tmp_path / "b")
    pull_models(hub_fetcher("medrobustbench/zoo", "v1"), [MID], zoo)
    assert zoo.exists(MID)
    assert calls == [
        ("medrobustbench/zoo", f"{MID}/card.json", "v1"),
        ("medrobustbench/zoo", f"{MID}/model.pt", "v1"),
    ]
    monkeypatch.undo()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="could not be fetched from the Hub repository"):
        pull_models(hub_fetcher("medrobustbench/zoo"), [MID], ModelZoo(tmp_path / "c"))


def test_published_checkpoints_and_the_cli(tiny_models, tmp_path):
    results = tmp_path / "results"
    (results / "x").mkdir(parents=True)
    sha = tiny_models["zoo"].entry(MID).card["checkpoint"]["sha256"]
    for i, digest in enumerate((sha, "f" * 64)):  # a retrained id has two
        doc = {"model": {"model_id": MID, "checkpoint_sha256": digest}}
        (results / "x" / f"{i}.json").write_text(json.dumps(doc))
    assert published_checkpoints(results) == {MID: {sha, "f" * 64}}
    runner = CliRunner()
    archive = tmp_path / "m.tar.gz"
    src = str(tiny_models["zoo"].root)
    out = runner.invoke(app, ["zoo", "export", MID, "--out", str(archive), "--zoo", src])
    assert out.exit_code == 0, out.output
    args = ["zoo", "import", str(archive), "--zoo", str(tmp_path / "z"), "--results", str(results)]
    out = runner.invoke(app, args)
    assert out.exit_code == 0 and f"installed {MID}  sha256 {sha}" in out.stdout, out.output
    out = runner.invoke(app, ["zoo", "pull", MID, "--zoo", str(tmp_path / "z")])
    assert out.exit_code == 1 and "needs one source" in out.stderr


def test_an_export_in_parts_imports_the_same_bytes_and_every_part_is_checked(tiny_models, tmp_path):
    source = tiny_models["zoo"]
    whole = export_models(source, [MID], tmp_path / "whole.tar.gz")
    size = whole.stat().st_size
    manifest = export_models(source, [MID], tmp_path / "m.tar.gz", part_bytes=size // 3)
    assert manifest.name == "m.tar.gz.parts.json" and not (tmp_path / "m.tar.gz").exists()
    parts = part_files(tmp_path / "m.tar.gz")
    assert len(parts) == math.ceil(size / (size // 3))
    assert all(p.stat().st_size <= size // 3 for p in parts)
    assert b"".join(p.read_bytes() for p in parts) == whole.read_bytes()  # the same archive
    # Either name imports it: the manifest, or the archive's own name with only its parts there.
    for name in ("m.tar.gz.parts.json", "m.tar.gz"):
        zoo = ModelZoo(tmp_path / f"zoo-{name}")
        (entry,) = import_models(tmp_path / name, zoo)
        assert file_digest(entry.checkpoint) == file_digest(source.entry(MID).checkpoint)
    # An archive that fits in one part is written whole, and removes the earlier parts.
    assert export_models(source, [MID], tmp_path / "m.tar.gz", part_bytes=size) == (
        tmp_path / "m.tar.gz"
    )
    assert not manifest.exists() and part_files(tmp_path / "m.tar.gz") == []
    assert import_models(manifest, ModelZoo(tmp_path / "z3"))[0].model_id == MID  # either name
    # ... and an export in parts removes an earlier whole one.
    export_models(source, [MID], tmp_path / "m.tar.gz", part_bytes=size // 2)
    assert not (tmp_path / "m.tar.gz").exists() and manifest.is_file()
    second = part_files(tmp_path / "m.tar.gz")[1]
    second.write_bytes(second.read_bytes()[:-1] + b"x")
    with pytest.raises(CheckpointError, match=rf"part {second.name} does not match its sha256"):
        import_models(manifest, ModelZoo(tmp_path / "z2"))
    second.unlink()
    with pytest.raises(CheckpointError, match=rf"part {second.name} is missing"):
        import_models(manifest, ModelZoo(tmp_path / "z2"))
    assert not ModelZoo(tmp_path / "z2").exists(MID)
    with pytest.raises(CheckpointError, match=r"nothing\.tar\.gz does not exist"):
        import_models(tmp_path / "nothing.tar.gz", ModelZoo(tmp_path / "z2"))
    with pytest.raises(CheckpointError, match=r"is not a file"):
        import_models(tmp_path, ModelZoo(tmp_path / "z2"))


def test_the_cli_exports_in_parts(tiny_models, tmp_path):
    runner = CliRunner()
    src = str(tiny_models["zoo"].root)
    out = tmp_path / "m.tar.gz"
    args = ["zoo", "export", MID, "--out", str(out), "--zoo", src, "--part-mib", "0.01"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and "m.tar.gz.parts.json" in res.stdout, res.output
    res = runner.invoke(
        app, ["zoo", "import", f"{out}.parts.json", "--zoo", str(tmp_path / "z"), "--results", ""]
    )
    assert res.exit_code == 0 and f"installed {MID}" in res.stdout, res.output
