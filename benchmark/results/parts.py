"""A file written in parts, for a channel that limits a file's size (a lent GPU machine
returns files of at most 16 MiB): ``<file>.<tag>.001``, ``.002``, ... and the manifest
``<file>.parts.json`` with every part's and the whole's size and sha256. The tag is the start
of the whole's sha256, so the parts of two versions of a file never mix: rewriting leaves the
earlier version whole until its manifest is replaced, and then removes its parts.

The manifest and parts may come from another machine: a part's name must be the one this
module gives it (no path, no repeat), its size is checked before it is read, and the whole's
size and sha256 after the join.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from benchmark.results.diagnostics import sha256_bytes
from benchmark.results.io import atomic_write_bytes, atomic_write_json

PARTS_SUFFIX = ".parts.json"
"""The manifest of ``<file>``: ``<file>.parts.json``."""
TAG_LENGTH = 12
MAX_PARTS = 999


def manifest_path(path: str | os.PathLike[str]) -> Path:
    """The parts manifest of the file ``path``."""
    target = Path(path)
    return target.with_name(target.name + PARTS_SUFFIX)


def _part_name(file: str, tag: str, index: int) -> str:
    return f"{file}.{tag}.{index:03d}"


def part_files(path: str | os.PathLike[str]) -> list[Path]:
    """Every part file of ``path`` in its folder, of any version."""
    target = Path(path)
    pattern = re.compile(re.escape(target.name) + rf"\.[0-9a-f]{{{TAG_LENGTH}}}\.\d{{3}}")
    if not target.parent.is_dir():
        return []
    return sorted(p for p in target.parent.iterdir() if pattern.fullmatch(p.name))


def remove_parts(
    path: str | os.PathLike[str], keep: set[str] | frozenset[str] = frozenset()
) -> None:
    """Remove the parts of ``path`` (but those named in ``keep``) and, with no ``keep``, its
    manifest."""
    if not keep:
        manifest_path(path).unlink(missing_ok=True)
    for part in part_files(path):
        if part.name not in keep:
            part.unlink(missing_ok=True)


def write_parts(path: str | os.PathLike[str], data: bytes, part_bytes: int) -> Path:
    """Write ``data`` as the parts of ``path``, each at most ``part_bytes``, then its manifest
    (atomically), then remove the parts of an earlier version; :func:`read_parts` joins them.
    Returns the manifest's path.

    Raises:
        ValueError: ``part_bytes`` below 1, or more than :data:`MAX_PARTS` parts.
    """
    if part_bytes < 1:
        raise ValueError(f"the part size must be at least 1 byte, got {part_bytes}")
    count = max(1, -(-len(data) // part_bytes))
    if count > MAX_PARTS:
        raise ValueError(f"{count} parts of {part_bytes} bytes: at most {MAX_PARTS}; larger parts")
    target = Path(path)
    whole = sha256_bytes(data)
    tag = whole[:TAG_LENGTH]
    parts = []
    for i in range(count):
        chunk = data[i * part_bytes : (i + 1) * part_bytes]
        name = _part_name(target.name, tag, i + 1)
        atomic_write_bytes(target.parent / name, chunk)
        parts.append({"name": name, "bytes": len(chunk), "sha256": sha256_bytes(chunk)})
    manifest = {"file": target.name, "bytes": len(data), "sha256": whole, "parts": parts}
    out = atomic_write_json(manifest_path(target), manifest)
    remove_parts(target, keep={p["name"] for p in parts})
    return out


def read_parts(manifest: str | os.PathLike[str]) -> bytes:
    """The file a :func:`write_parts` manifest describes, joined from its parts (in the
    manifest's folder), each part and the whole checked against their size and sha256.

    Raises:
        ValueError: a missing or unreadable manifest, a part name this module would not have
            written, a missing part, or a part or whole whose size or sha256 is not the
            manifest's (the message names it and the fix).
    """
    path = Path(manifest)
    if not path.is_file():
        raise ValueError(f"{path} does not exist (the manifest of a file written in parts)")
    try:
        doc = json.loads(path.read_text())
        parts = [(str(p["name"]), int(p["bytes"]), str(p["sha256"])) for p in doc["parts"]]
        whole_sha, whole_bytes = str(doc["sha256"]), int(doc["bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"{path} is not a readable parts manifest") from None
    file = path.name.removesuffix(PARTS_SUFFIX)
    tag = whole_sha[:TAG_LENGTH]
    if not re.fullmatch(r"[0-9a-f]{64}", whole_sha) or not 1 <= len(parts) <= MAX_PARTS:
        raise ValueError(f"{path} is not a valid parts manifest (its sha256 or part count)")
    if sum(size for _, size, _ in parts) != whole_bytes:
        raise ValueError(f"{path}: its parts' sizes do not add up to the file's")
    chunks = []
    for i, (name, size, sha) in enumerate(parts, 1):
        if name != _part_name(file, tag, i):
            raise ValueError(
                f"{path}: part {i} is named {name!r}, not {_part_name(file, tag, i)!r}: "
                "not a manifest written by bench; refused"
            )
        part = path.parent / name
        if not part.is_file():
            raise ValueError(f"{path}: part {name} is missing; copy every part beside it")
        if part.stat().st_size != size:
            raise ValueError(f"{path}: part {name} has the wrong size; copy it again")
        chunk = part.read_bytes()
        if sha256_bytes(chunk) != sha:
            raise ValueError(f"{path}: part {name} does not match its sha256; copy it again")
        chunks.append(chunk)
    data = b"".join(chunks)
    if sha256_bytes(data) != whole_sha:
        raise ValueError(f"{path}: the joined parts do not match the file's sha256")
    return data


__all__ = [
    "PARTS_SUFFIX",
    "manifest_path",
    "part_files",
    "read_parts",
    "remove_parts",
    "write_parts",
]
