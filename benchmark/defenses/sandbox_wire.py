"""The sandbox's pipe protocol (:mod:`benchmark.defenses.sandbox`): both ways, a 4-byte
big-endian length, a JSON header of that length, then the header's ``nbytes`` of raw payload.
Tensors travel as their C-contiguous bytes, one after the other, described in the header's
``tensors`` list (``shape`` and ``dtype`` each). Used by the evaluator's side and by the
sandboxed worker alike."""

from __future__ import annotations

import json
import math
import os
import select
import struct
import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

MAX_HEADER = 1 << 20
"""Largest JSON header accepted from the sandbox (bytes)."""
MAX_PAYLOAD = 1 << 31
"""Largest tensor payload accepted from the sandbox (bytes)."""
_NAMES = ("float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool")
DTYPES = {name: np.dtype(name) for name in _NAMES}
"""The dtypes that cross the pipe (the receiver decides which it accepts where)."""


class WireError(ValueError):
    """A message that does not follow the protocol (its text says how)."""


def write_msg(
    fd: int,
    header: dict[str, Any],
    payload: bytes = b"",
    deadline: float | None = None,
    on_timeout: Any = None,
) -> None:
    """Write one message; with a ``deadline``, on a non-blocking ``fd``, waiting for the
    reader no longer than that (a reader that stops reading cannot hang the writer)."""
    head = json.dumps({**header, "nbytes": len(payload)}).encode()
    data = struct.pack(">I", len(head)) + head + payload
    view = memoryview(data)
    while view:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([], [fd], [], wait)[1]:
                raise on_timeout()
        try:
            view = view[os.write(fd, view[: 1 << 16] if deadline is not None else view) :]
        except BlockingIOError:
            continue


def read_exact(fd: int, n: int, deadline: float | None, on_timeout: Any) -> bytes:
    chunks, left = [], n
    while left:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise on_timeout()
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_msg(
    fd: int,
    deadline: float | None = None,
    on_timeout: Any = None,
    max_payload: int = MAX_PAYLOAD,
):
    """Read one message: its header and payload (``max_payload`` bytes at most)."""
    (size,) = struct.unpack(">I", read_exact(fd, 4, deadline, on_timeout))
    if size > MAX_HEADER:
        raise WireError(f"a {size}-byte header")
    try:
        header = json.loads(read_exact(fd, size, deadline, on_timeout))
    except (ValueError, RecursionError) as exc:
        raise WireError(f"a header that is not JSON ({type(exc).__name__})") from None
    if not isinstance(header, dict) or not isinstance(header.get("nbytes"), int):
        raise WireError("a header that is not a JSON object with nbytes")
    if not 0 <= header["nbytes"] <= max_payload:
        raise WireError(f"a {header['nbytes']}-byte payload (at most {max_payload} expected)")
    return header, read_exact(fd, header["nbytes"], deadline, on_timeout)


def pack(*tensors: Tensor) -> tuple[dict[str, Any], bytes]:
    """CPU copies of ``tensors``: the header's ``tensors`` list and the payload."""
    specs, parts = [], []
    for x in tensors:
        try:
            a = x.detach().cpu().contiguous().numpy()
        except TypeError:
            raise WireError(f"a {x.dtype} tensor cannot cross the pipe") from None
        if str(a.dtype) not in DTYPES:
            raise WireError(f"a {a.dtype} tensor cannot cross the pipe (only {', '.join(DTYPES)})")
        specs.append({"shape": list(a.shape), "dtype": str(a.dtype)})
        parts.append(a.tobytes())
    return {"tensors": specs}, b"".join(parts)


def unpack(header: dict[str, Any], payload: bytes) -> list[Tensor]:
    """The tensors of a message, every spec checked against the payload's length."""
    specs = header.get("tensors", [])
    if not isinstance(specs, list):
        raise WireError("'tensors' is not a list")
    out, offset = [], 0
    for spec in specs:
        shape = spec.get("shape") if isinstance(spec, dict) else None
        dtype = DTYPES.get(spec.get("dtype")) if isinstance(spec, dict) else None
        if (
            dtype is None
            or not isinstance(shape, list)
            or not all(isinstance(s, int) and s >= 0 for s in shape)
        ):
            raise WireError(f"a tensor spec {spec!r}")
        size = math.prod(shape) * np.dtype(dtype).itemsize
        if offset + size > len(payload):
            raise WireError("a payload shorter than its tensors")
        a = np.frombuffer(payload, dtype=dtype, count=math.prod(shape), offset=offset)
        out.append(torch.from_numpy(a.reshape(shape).copy()))
        offset += size
    if offset != len(payload):
        raise WireError("a payload longer than its tensors")
    return out
