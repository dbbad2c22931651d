"""Atomic file writes: a reader never sees a half-written result, card or checkpoint."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def dumps_json(obj: Any) -> str:
    """The canonical JSON text of results and cards: sorted keys, 2-space indent, newline."""
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as canonical JSON, atomically. NaN/inf are refused (not valid JSON)."""
    return atomic_write_bytes(path, dumps_json(obj).encode("utf-8"))


ARCHIVE_MANIFEST = "MANIFEST.json"
"""The manifest member of an archive from :func:`write_archive`."""


def archive_bytes(members: dict[str, bytes], manifest: dict) -> bytes:
    """A ``.tar.gz`` holding ``MANIFEST.json`` (``manifest`` as JSON) and ``members`` (name ->
    bytes), built deterministically: sorted members, no times, no owners, no file name in the
    gzip header, so the same contents give the same archive bytes."""
    buf = io.BytesIO()
    with (
        gzip.GzipFile(filename="", fileobj=buf, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        blob = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        for name, data in [(ARCHIVE_MANIFEST, blob), *sorted(members.items())]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_archive(path: str | os.PathLike[str], members: dict[str, bytes], manifest: dict) -> Path:
    """Write :func:`archive_bytes` of ``members`` and ``manifest`` to ``path``, atomically."""
    return atomic_write_bytes(path, archive_bytes(members, manifest))


PARTS_SUFFIX = ".parts.json"
"""The manifest of a file written in parts by :func:`write_parts`: ``<file>.parts.json``."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_parts(path: str | os.PathLike[str], data: bytes, part_bytes: int) -> Path:
    """Write ``data`` as ``<path>.001``, ``<path>.002``, ... of at most ``part_bytes`` each, and
    ``<path>.parts.json`` with every part's and the whole's sha256 and size (for a channel that
    limits a file's size, e.g. a lent GPU's 16 MiB); :func:`read_parts` joins them. Every file is
    written atomically, the manifest last. Returns the manifest's path."""
    if part_bytes < 1:
        raise ValueError(f"part_bytes must be at least 1, got {part_bytes}")
    target = Path(path)
    parts = []
    for i, start in enumerate(range(0, max(len(data), 1), part_bytes), 1):
        chunk = data[start : start + part_bytes]
        name = f"{target.name}.{i:03d}"
        atomic_write_bytes(target.parent / name, chunk)
        parts.append({"name": name, "bytes": len(chunk), "sha256": _sha256(chunk)})
    manifest = {"file": target.name, "bytes": len(data), "sha256": _sha256(data), "parts": parts}
    return atomic_write_json(target.parent / f"{target.name}{PARTS_SUFFIX}", manifest)


def read_parts(manifest: str | os.PathLike[str]) -> bytes:
    """The file a :func:`write_parts` manifest describes, joined from its parts (in the
    manifest's folder), each part and the whole checked against their sha256.

    Raises:
        ValueError: an unreadable manifest, a missing part, or a part or whole whose size or
            sha256 is not the manifest's (the message names it and the fix).
    """
    path = Path(manifest)
    try:
        doc = json.loads(path.read_text())
        parts = [(str(p["name"]), int(p["bytes"]), str(p["sha256"])) for p in doc["parts"]]
        whole_sha, whole_bytes = str(doc["sha256"]), int(doc["bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"{path} is not a readable parts manifest (from write_parts)") from None
    chunks = []
    for name, size, sha in parts:
        part = path.parent / name
        if Path(name).name != name or not part.is_file():
            raise ValueError(f"{path}: part {name} is missing; copy every part beside it")
        chunk = part.read_bytes()
        if len(chunk) != size or _sha256(chunk) != sha:
            raise ValueError(f"{path}: part {name} does not match its sha256; copy it again")
        chunks.append(chunk)
    data = b"".join(chunks)
    if len(data) != whole_bytes or _sha256(data) != whole_sha:
        raise ValueError(f"{path}: the joined parts do not match the file's sha256")
    return data
