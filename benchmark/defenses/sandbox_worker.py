"""The sandboxed worker (:mod:`benchmark.defenses.sandbox`): runs inside bubblewrap after the
bootstrap has dropped privileges and set the limits, imports the submission, and answers the
evaluator's requests (validate, load, reseed, purify) over the pipe protocol of
:mod:`benchmark.defenses.sandbox_wire`, every failure, the limits' included, as one line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from benchmark.defenses.base import SubmissionError
from benchmark.defenses.sandbox_wire import read_msg, tensor_message, write_msg


def _stopped(exc: BaseException, memory_mib: int, processes: int) -> str | None:
    """The sandbox limit an exception (or its causes) ran into, in words."""
    seen: BaseException | None = exc
    while seen is not None:
        text = str(seen)
        if isinstance(seen, MemoryError) or "can't allocate memory" in text:
            return f"out of memory (limit {memory_mib} MiB)"
        if isinstance(seen, BlockingIOError) or "Resource temporarily unavailable" in text:
            return f"too many processes (limit {processes})"
        seen = seen.__cause__ or seen.__context__
    return None


def serve(memory_mib: int, processes: int) -> None:
    """The sandboxed worker's loop: read a request, answer it, until the pipe closes."""
    out_fd, in_fd = os.dup(1), os.dup(0)
    # The submission's prints go to stderr; fds 0 and 1 are no longer the protocol's.
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    me = os.getpid()
    state: dict[str, Any] = {}
    write_msg(out_fd, {"ok": True, "ready": True})
    while True:
        try:
            header, payload = read_msg(in_fd)
        except EOFError:
            return
        try:
            answer, data = _handle(header, payload, state)
        except BaseException as exc:  # every failure, the limits' included, becomes one line
            if os.getpid() != me:  # a forked child of the submission must not answer
                os._exit(1)
            sid = state.get("id", header.get("target", "?"))
            limit = _stopped(exc, memory_mib, processes)
            if limit:
                line = f"submission '{Path(str(sid)).name}': stopped by the sandbox: {limit}"
            elif isinstance(exc, SubmissionError):
                line = str(exc)
            else:
                line = f"submission '{Path(str(sid)).name}': {type(exc).__name__}: {exc}"
            answer, data = {"ok": False, "error": " ".join(line.split())}, b""
        if os.getpid() != me:
            os._exit(1)
        write_msg(out_fd, answer, data)


def _handle(header: dict[str, Any], payload: bytes, state: dict[str, Any]):
    import dataclasses

    from benchmark.defenses.submissions import load_submission

    op = header.get("op")
    if op == "validate":
        from benchmark.defenses.conformance import validate_submission

        sub = load_submission(header["target"])
        state["id"] = sub.id
        passed = validate_submission(sub, **header.get("overrides", {}))
        record = sub.record()
        return {
            "ok": True,
            "submission": record,
            "passed": [dataclasses.asdict(c) for c in passed],
        }, b""
    if op == "load":
        sub = load_submission(header["target"])
        state["id"] = sub.id
        state["defense"] = sub.build(seed=int(header.get("seed", 0)), **header.get("params", {}))
        return {"ok": True, "meta": dataclasses.asdict(sub.meta)}, b""
    defense = state.get("defense")
    if defense is None:
        raise SubmissionError("no defense loaded in the sandbox")
    if op == "reseed":
        defense.reseed(int(header["seed"]))
        return {"ok": True}, b""
    if op == "purify":
        if header.get("dtype") != "float32":
            raise SubmissionError("purify takes float32")
        x = np.frombuffer(payload, dtype=np.float32).reshape(header["shape"]).copy()
        with torch.no_grad():
            out = defense.purify(torch.from_numpy(x))
        if not isinstance(out, Tensor):
            raise SubmissionError(f"purify returned a {type(out).__name__}, not a tensor")
        h, data = tensor_message(out)
        return {"ok": True, **h}, data
    raise SubmissionError(f"unknown request {op!r}")
