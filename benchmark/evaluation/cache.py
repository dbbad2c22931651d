"""On-disk cache of adversarial examples, the unit of reuse and resume.

An attack cell's adversarial batch is keyed by everything that determines it: the model
checkpoint's sha256, the data file's sha256, the split and the exact sample indices, the
attack's fully resolved configuration (including its seed and implementation version) and the
batch size (per-batch seeds depend on it). A later run with the same key, such as a second
defense evaluated against the same oblivious attack, or a rerun after an interruption, loads
the tensor instead of attacking again. Files are written atomically and read with
``torch.load(weights_only=True)``; an unreadable or mismatching file is ignored and recomputed.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from benchmark import paths
from benchmark.results.io import atomic_write_bytes

logger = logging.getLogger(__name__)

CACHE_ENV = "BENCH_CACHE_DIR"


def cache_dir(explicit: str | Path | None = None) -> Path:
    """Adversarial cache folder: ``--cache-dir``, ``$BENCH_CACHE_DIR``, else the user cache."""
    import os

    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else paths.cache_root() / "adversarial"


def cache_key(**parts: Any) -> str:
    """sha256 of the canonical JSON of ``parts``."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def indices_digest(indices: torch.Tensor) -> str:
    """sha256 of a sample-index tensor (identifies a subset)."""
    return hashlib.sha256(indices.to(torch.int64).numpy().tobytes()).hexdigest()


class AdversarialCache:
    """Folder of cached adversarial tensors; ``enabled=False`` turns it into a no-op."""

    def __init__(self, root: str | Path | None = None, *, enabled: bool = True) -> None:
        self.root = cache_dir(root)
        self.enabled = enabled
        self.hits = 0
        self.misses = 0

    def path(self, key: str) -> Path:
        """File of ``key`` (two-level fan-out)."""
        return self.root / key[:2] / f"{key}.pt"

    def has(self, key: str) -> bool:
        """Whether a file for ``key`` exists (enabled cache only; not read or verified)."""
        return self.enabled and self.path(key).is_file()

    def load(self, key: str, shape: tuple[int, ...]) -> torch.Tensor | None:
        """The cached tensor for ``key`` if present, readable and of ``shape``."""
        if not self.enabled:
            return None
        p = self.path(key)
        if not p.is_file():
            self.misses += 1
            return None
        try:
            blob = torch.load(p, map_location="cpu", weights_only=True)
            tensor = blob["x_adv"]
            if blob.get("key") != key or tuple(tensor.shape) != tuple(shape):
                raise ValueError("key or shape mismatch")
        except Exception as exc:  # corrupt or foreign file: recompute, never trust it
            logger.warning("ignoring unusable cache file %s (%s)", p, exc)
            self.misses += 1
            return None
        self.hits += 1
        return tensor

    def batch_path(self, key: str, batch: int) -> Path:
        """File of batch ``batch`` of the cell ``key`` while the cell is being crafted."""
        return self.root / key[:2] / f"{key}.partial" / f"{batch:06d}.pt"

    def load_batch(self, key: str, batch: int, shape: tuple[int, ...]) -> torch.Tensor | None:
        """A finished batch of an interrupted cell, if present, readable and of ``shape``."""
        found = self.load_batch_with_meta(key, batch, shape)
        return None if found is None else found[0]

    def load_batch_with_meta(
        self, key: str, batch: int, shape: tuple[int, ...]
    ) -> tuple[torch.Tensor, dict[str, Any]] | None:
        """A finished batch and the ``meta`` it was stored with (its cost; ``{}`` if none)."""
        if not self.enabled:
            return None
        p = self.batch_path(key, batch)
        if not p.is_file():
            return None
        try:
            tensor, meta = _read_batch(p, key, batch)
            if tuple(tensor.shape) != tuple(shape):
                raise ValueError("shape mismatch")
        except Exception as exc:  # corrupt or foreign: recompute the batch
            logger.warning("ignoring unusable partial batch %s (%s)", p, exc)
            return None
        return tensor, meta

    def finished_batches(self, key: str) -> list[dict[str, Any]]:
        """The ``meta`` (cost) of each batch an interrupted crafting of ``key`` finished, in
        batch order (``{}`` for one stored without it; none when the cache is off)."""
        if not self.enabled:
            return []
        out = []
        for p in sorted(self.path(key).with_suffix(".partial").glob("*.pt")):
            try:
                out.append(_read_batch(p, key, int(p.stem))[1])
            except Exception as exc:  # unusable: recrafted by the run, not counted here
                logger.debug("finished batches: left out %s (%s)", p, exc)
        return out

    def save_batch(
        self, key: str, batch: int, tensor: torch.Tensor, meta: dict[str, Any] | None = None
    ) -> None:
        """Store one finished batch of a cell (atomically), so that an interrupted cell resumes
        at its next batch; :meth:`save` of the whole cell removes them. ``meta`` (JSON) rides
        along, e.g. what the batch cost."""
        if not self.enabled:
            return
        buf = io.BytesIO()
        blob = {"key": key, "batch": batch, "x_adv": tensor.detach().cpu().contiguous()}
        if meta is not None:
            blob["meta"] = json.dumps(meta, sort_keys=True)
        torch.save(blob, buf)
        atomic_write_bytes(self.batch_path(key, batch), buf.getvalue())

    def save(self, key: str, tensor: torch.Tensor, description: dict[str, Any]) -> None:
        """Store ``tensor`` under ``key`` atomically, with a JSON description of the cell."""
        if not self.enabled:
            return
        buf = io.BytesIO()
        torch.save(
            {
                "key": key,
                "x_adv": tensor.detach().cpu().contiguous(),
                "description": json.dumps(description, sort_keys=True, default=str),
            },
            buf,
        )
        atomic_write_bytes(self.path(key), buf.getvalue())
        partial = self.path(key).with_suffix(".partial")
        if partial.is_dir():  # the whole cell is stored: its batches are no longer needed
            shutil.rmtree(partial, ignore_errors=True)


def _read_batch(path: Path, key: str, batch: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """A stored batch's examples and ``meta``, checked to be batch ``batch`` of ``key``.

    Raises:
        ValueError: the file is another cell's or batch's (any unreadable file raises too).
    """
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob.get("key") != key or blob.get("batch") != batch:
        raise ValueError("key or batch mismatch")
    return blob["x_adv"], json.loads(blob.get("meta") or "{}")
