"""Checksums of files and folders, used for provenance and integrity checks."""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

_CHUNK = 1 << 20


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (cached per path, size and modification time)."""
    p = Path(path)
    st = p.stat()
    return _cached_digest(str(p.resolve()), st.st_size, st.st_mtime_ns, algorithm)


@lru_cache(maxsize=256)
def _cached_digest(path: str, size: int, mtime_ns: int, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def files_digest(paths: list[Path], root: Path) -> str:
    """sha256 over a set of files: each file's relative path and sha256, in sorted order.

    Used for datasets stored as many files (image folders): any added, removed, renamed or
    changed file changes the digest.
    """
    h = hashlib.sha256()
    for p in sorted(paths, key=lambda q: q.relative_to(root).as_posix()):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(b"\0")
        h.update(file_digest(p).encode())
        h.update(b"\n")
    return h.hexdigest()
