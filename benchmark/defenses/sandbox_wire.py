"""The sandbox's pipe protocol (:mod:`benchmark.defenses.sandbox`): both ways, a 4-byte
big-endian length, a JSON header of that length, then the header's ``nbytes`` of raw payload;
a tensor travels as its C-contiguous bytes with ``shape`` and ``dtype`` in the header. Used by
the evaluator's side and by the sandboxed worker alike."""

from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any

from torch import Tensor

MAX_HEADER = 1 << 20
"""Largest JSON header accepted from the sandbox (bytes)."""
MAX_PAYLOAD = 1 << 31
"""Largest tensor payload accepted from the sandbox (bytes)."""


def write_msg(fd: int, header: dict[str, Any], payload: bytes = b"") -> None:
    head = json.dumps({**header, "nbytes": len(payload)}).encode()
    data = struct.pack(">I", len(head)) + head + payload
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


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


def read_msg(fd: int, deadline: float | None = None, on_timeout: Any = None):
    (size,) = struct.unpack(">I", read_exact(fd, 4, deadline, on_timeout))
    if size > MAX_HEADER:
        raise ValueError(f"a {size}-byte header")
    header = json.loads(read_exact(fd, size, deadline, on_timeout))
    if not isinstance(header, dict) or not isinstance(header.get("nbytes"), int):
        raise ValueError("a header that is not a JSON object with nbytes")
    if not 0 <= header["nbytes"] <= MAX_PAYLOAD:
        raise ValueError(f"a {header['nbytes']}-byte payload")
    return header, read_exact(fd, header["nbytes"], deadline, on_timeout)


def tensor_message(x: Tensor) -> tuple[dict[str, Any], bytes]:
    """A CPU tensor's header (shape, dtype) and bytes."""
    a = x.detach().cpu().contiguous().numpy()
    return {"shape": list(a.shape), "dtype": str(a.dtype)}, a.tobytes()
