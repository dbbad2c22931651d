"""Atomic file writes: a reader never sees a half-written result, card or checkpoint."""

from __future__ import annotations

import gzip
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
