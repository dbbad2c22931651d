"""A file written in parts (:mod:`benchmark.results.parts`): joined only as written, the
parts of two versions never mixed, and a manifest from elsewhere trusted for nothing."""

from __future__ import annotations

import json
import os

import pytest

from benchmark.results.parts import (
    manifest_path,
    part_files,
    read_parts,
    remove_parts,
    write_parts,
)

DATA = os.urandom(10_000)


def _manifest(path):
    return json.loads(manifest_path(path).read_text())


def test_parts_join_to_the_file_and_a_rewrite_leaves_no_stale_part(tmp_path):
    target = tmp_path / "f.bin"
    manifest = write_parts(target, DATA, 3_000)
    assert [p["bytes"] for p in _manifest(target)["parts"]] == [3_000, 3_000, 3_000, 1_000]
    assert read_parts(manifest) == DATA
    other = os.urandom(5_000)
    write_parts(target, other, 4_000)  # fewer parts, another version
    assert len(part_files(target)) == 2 and read_parts(manifest) == other
    remove_parts(target)
    assert part_files(target) == [] and not manifest.exists()
    with pytest.raises(ValueError, match="at least 1 byte"):
        write_parts(target, DATA, 0)
    with pytest.raises(ValueError, match="at most 999"):
        write_parts(target, DATA, 10)


def test_an_interrupted_rewrite_keeps_the_earlier_version_readable(tmp_path):
    target = tmp_path / "f.bin"
    manifest = write_parts(target, DATA, 3_000)
    old = manifest.read_bytes()
    write_parts(target, os.urandom(9_000), 3_000)
    # Killed before the new manifest replaced the old one: the old parts were still there.
    manifest.write_bytes(old)
    for p in json.loads(old)["parts"]:  # (re-create what the finished rewrite removed)
        (tmp_path / p["name"]).write_bytes(DATA[: p["bytes"]])
    tags = {p.name.split(".")[2] for p in part_files(target)}
    assert len(tags) == 2  # the two versions' parts are told apart by name
    with pytest.raises(ValueError, match="does not match its sha256"):
        read_parts(manifest)  # the re-created parts are not the original bytes ...
    write_parts(target, DATA, 3_000)  # ... and writing again gives the version whole
    assert read_parts(manifest) == DATA and len(part_files(target)) == 4


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["parts"][0].update(name="../x"), "part 1 is named '../x'"),
        (lambda m: m["parts"][0].update(name="/etc/passwd"), "not a manifest written by bench"),
        (lambda m: m["parts"].append(dict(m["parts"][-1])), "do not add up"),
        (lambda m: m["parts"].__setitem__(1, dict(m["parts"][0])), "part 2 is named"),
        (lambda m: m.update(parts=m["parts"] * 400, bytes=m["bytes"] * 400), "part count"),
        (lambda m: m.update(sha256="../"), "not a valid parts manifest"),
        (lambda m: m["parts"][0].update(bytes=2_999, sha256="0" * 64), "do not add up"),
        (lambda m: m.pop("parts"), "not a readable parts manifest"),
    ],
)
def test_a_forged_manifest_is_refused_before_anything_is_joined(tmp_path, edit, message):
    target = tmp_path / "f.bin"
    manifest = write_parts(target, DATA, 3_000)
    doc = json.loads(manifest.read_text())
    edit(doc)
    manifest.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=message):
        read_parts(manifest)


def test_a_part_of_the_wrong_size_is_refused_before_it_is_read(tmp_path):
    target = tmp_path / "f.bin"
    manifest = write_parts(target, DATA, 3_000)
    first = part_files(target)[0]
    first.write_bytes(first.read_bytes() + b"more")
    with pytest.raises(ValueError, match=f"part {first.name} has the wrong size"):
        read_parts(manifest)
    with pytest.raises(ValueError, match="does not exist"):
        read_parts(tmp_path / "g.bin.parts.json")
