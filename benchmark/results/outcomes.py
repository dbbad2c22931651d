"""Per-image outcomes in results files (schema 2): which image is still classified correctly,
which image it is, and its label, so that every accuracy, worst case, balanced figure, interval
and paired test of a run can be recomputed from its JSON alone.

Encodings (all text is standard base64 with padding, RFC 4648 section 4):

* ``bits-lsb-base64``: booleans as bits, eight per byte, least significant bit first (image
  ``i`` is bit ``i % 8`` of byte ``i // 8``; the unused bits of the last byte are 0). An
  outcomes block is ``{"encoding": "bits-lsb-base64", "correct": TEXT}``: ``correct[i]`` is
  True when image ``i`` is classified correctly (single-label: the predicted class is the
  label, an abstention is wrong; multi-label: every label is right at threshold 0.5, the
  per-image rule of the worst case; a multi-label ``accuracy`` is the mean per-label
  accuracy, which these bits do not determine, while the worst case is their AND). The number
  of images is the document's ``data.n``.
* ``uint8-base64``: single-label class ids, one byte per image (``data.labels`` of a task with
  at most 256 classes); multi-label labels are stored as ``bits-lsb-base64`` of the (N, L)
  0/1 matrix in row-major order, with its ``shape``.

``data.indices`` says which images of the split were scored, in the order of the outcomes:
``{"start": 0, "stop": N}`` for the whole split in order (``range(start, stop)``), else the
list of split indices.

Pure numpy and base64 (no torch), so that the results layer can read them.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np

from benchmark.errors import ConfigError, ResultsError

#: Encoding of per-image booleans (and of multi-label label matrices).
BITS = "bits-lsb-base64"
#: Encoding of single-label class ids, one byte each.
UINT8 = "uint8-base64"


def as_bool_vector(values: Any, name: str) -> np.ndarray:
    """``values`` as a 1-D boolean vector (booleans or 0/1).

    Raises:
        ConfigError: not 1-D, or values other than 0/1.
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be a 1-D vector of per-image outcomes, got {arr.shape}")
    if arr.dtype != bool:
        if arr.size and not np.isin(arr, (0, 1)).all():
            raise ConfigError(f"{name} must hold booleans (or 0/1), got other values")
        arr = arr.astype(bool)
    return arr


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: Any, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, AttributeError) as err:
        raise ResultsError(f"{what} are not valid base64: {err}") from err


def pack_outcomes(outcomes: Any) -> str:
    """Per-image booleans as base64 text: bits LSB first, eight images per byte.

    Image ``i`` is bit ``i % 8`` (least significant first) of byte ``i // 8``; the unused bits
    of the last byte are 0; the bytes are encoded in standard base64 with padding. The number
    of images is not stored: keep it next to the text (the results' ``n``).

    Args:
        outcomes: (N,) booleans (or 0/1).

    Returns:
        ASCII text of ``4 * ceil(ceil(N / 8) / 3)`` characters.
    """
    bits = as_bool_vector(outcomes, "outcomes")
    return _b64(np.packbits(bits, bitorder="little").tobytes())


def unpack_outcomes(text: str, n: int) -> np.ndarray:
    """Inverse of :func:`pack_outcomes`.

    Args:
        text: the base64 text.
        n: the number of images.

    Returns:
        (n,) boolean array.

    Raises:
        ResultsError: if the text is not base64, its length does not match ``n``, or padding
            bits are set.
    """
    if n < 0:
        raise ResultsError(f"number of images must be non-negative, got {n}")
    raw = _unb64(text, "packed outcomes")
    if len(raw) != (n + 7) // 8:
        raise ResultsError(
            f"packed outcomes hold {len(raw)} bytes, {(n + 7) // 8} expected for {n} images"
        )
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")
    if bits[n:].any():
        raise ResultsError("packed outcomes have padding bits set (wrong number of images?)")
    return bits[:n].astype(bool)


# ----------------------------------------------------------------------------- blocks


def outcomes_block(correct: Any) -> dict[str, str]:
    """The ``outcomes`` block of a results entry: ``{"encoding", "correct"}``."""
    return {"encoding": BITS, "correct": pack_outcomes(correct)}


def read_outcomes(block: dict[str, Any] | None, n: int) -> np.ndarray | None:
    """The (n,) per-image correctness of an ``outcomes`` block; None when there is none (a
    schema-1 file).

    Raises:
        ResultsError: an unknown encoding, or text that does not hold ``n`` images.
    """
    if block is None:
        return None
    if block.get("encoding") != BITS:
        raise ResultsError(f"unknown outcomes encoding {block.get('encoding')!r}")
    return unpack_outcomes(block["correct"], n)


def labels_block(labels: Any) -> dict[str, Any]:
    """``data.labels``: class ids (N,) one byte each, or a multi-label (N, L) 0/1 matrix as
    row-major bits.

    Raises:
        ConfigError: class ids outside [0, 255], or labels of neither shape.
    """
    arr = np.asarray(labels)
    if arr.ndim == 2:
        bits = arr.astype(np.int64).reshape(-1)
        return {"encoding": BITS, "shape": list(arr.shape), "values": pack_outcomes(bits)}
    if arr.ndim != 1:
        raise ConfigError(f"labels must be (N,) class ids or an (N, L) matrix, got {arr.shape}")
    ids = arr.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() > 255):
        raise ConfigError("class ids must lie in [0, 255] to be stored one byte each")
    values = _b64(ids.astype(np.uint8).tobytes())
    return {"encoding": UINT8, "shape": [int(ids.size)], "values": values}


def read_labels(block: dict[str, Any] | None, n: int) -> np.ndarray | None:
    """The labels of ``data.labels``: int64 (n,) class ids or (n, L) 0/1 for multi-label
    tasks; None when absent (a schema-1 file).

    Raises:
        ResultsError: an unknown encoding, or values that do not match ``shape`` and ``n``.
    """
    if block is None:
        return None
    shape = tuple(int(s) for s in block["shape"])
    if not shape or shape[0] != n:
        raise ResultsError(f"labels have shape {list(shape)}, {n} images expected")
    if block["encoding"] == BITS and len(shape) == 2:
        return unpack_outcomes(block["values"], shape[0] * shape[1]).reshape(shape).astype(int)
    if block["encoding"] == UINT8 and len(shape) == 1:
        raw = _unb64(block["values"], "labels")
        if len(raw) != n:
            raise ResultsError(f"labels hold {len(raw)} bytes, {n} expected")
        return np.frombuffer(raw, dtype=np.uint8).astype(np.int64)
    raise ResultsError(f"labels of encoding {block['encoding']!r} cannot have shape {shape}")


def indices_block(indices: Any, n_split: int) -> dict[str, int] | list[int]:
    """``data.indices``: ``{"start": 0, "stop": n_split}`` for the whole split in order, else
    the list of split indices scored."""
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size == n_split and np.array_equal(idx, np.arange(n_split)):
        return {"start": 0, "stop": int(n_split)}
    return [int(i) for i in idx]


def read_indices(block: dict[str, Any] | list[int] | None) -> np.ndarray | None:
    """The split indices of ``data.indices`` (None when absent: a schema-1 file)."""
    if block is None:
        return None
    if isinstance(block, dict):
        return np.arange(int(block["start"]), int(block["stop"]), dtype=np.int64)
    return np.asarray(block, dtype=np.int64)


def check_outcomes(doc: dict[str, Any]) -> None:
    """Check what a JSON Schema cannot: every packed field of a schema-2 document decodes to
    ``data.n`` images.

    Raises:
        ResultsError: naming the first field that does not.
    """
    data = doc["data"]
    n = int(data["n"])
    indices = read_indices(data.get("indices"))
    if indices is not None and indices.size != n:
        raise ResultsError(f"data/indices: {indices.size} indices for {n} images")
    fields = [("data/labels", data.get("labels"), read_labels)]
    for key, block in doc["metrics"].items():
        if isinstance(block, dict) and "outcomes" in block:
            fields.append((f"metrics/{key}/outcomes", block["outcomes"], read_outcomes))
    for i, block in enumerate(doc.get("attacks") or []):
        fields.append((f"attacks/{i}/outcomes", block.get("outcomes"), read_outcomes))
        if "undefended" in block:
            where = f"attacks/{i}/undefended/outcomes"
            fields.append((where, block["undefended"].get("outcomes"), read_outcomes))
    severity = (doc.get("corruptions") or {}).get("severity") or {}
    for i, row in enumerate(severity.get("corruptions") or []):
        blocks = row.get("outcomes")
        if blocks is None:
            continue
        if len(blocks) != len(severity.get("severities") or []):
            raise ResultsError(
                f"invalid at corruptions/severity/corruptions/{i}/outcomes: {len(blocks)} "
                f"blocks for {len(severity.get('severities') or [])} severities"
            )
        for j, block in enumerate(blocks):
            where = f"corruptions/severity/corruptions/{i}/outcomes/{j}"
            fields.append((where, block, read_outcomes))
    for where, block, read in fields:
        try:
            read(block, n)
        except ResultsError as err:
            raise ResultsError(f"invalid at {where}: {err}") from err


__all__ = [
    "BITS",
    "UINT8",
    "as_bool_vector",
    "check_outcomes",
    "indices_block",
    "labels_block",
    "outcomes_block",
    "pack_outcomes",
    "read_indices",
    "read_labels",
    "read_outcomes",
    "unpack_outcomes",
]
