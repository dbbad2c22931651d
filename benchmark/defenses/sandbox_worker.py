"""The sandboxed worker (:mod:`benchmark.defenses.sandbox`): runs inside bubblewrap after the
bootstrap has dropped privileges and set the limits, imports the submission, and answers the
evaluator's requests over the pipe protocol of :mod:`benchmark.defenses.sandbox_wire`, every
failure, the limits' included, as one line.

Requests (``op``), each answered ``{"ok": true, ...}`` or ``{"ok": false, "error": line}``:

* ``open`` (``target``): import the submission; its meta, defaults and whether it votes;
* ``build`` (``seed``, ``params``): a defense instance, kept under a defense id that the
  requests below name;
* ``reseed``, ``set_param``, ``config``, ``rng_save``, ``rng_restore``: its state;
* ``purify`` / ``purify_approx`` (a tensor, ``grad``): the preprocessing hook;
* ``wrap`` (a model spec and its weights): ``wrap(model)`` kept under a module id;
* ``call`` (``module``, ``method``, a tensor, ``grad``, ``temperature``): the wrapped module's
  ``forward``, ``votes``, ``soft`` or ``log_soft_votes``;
* ``vjp`` (``handle``, the output's gradient): the input gradient of a call made with
  ``grad`` (the last :data:`KEEP_GRAPHS` graphs are kept, each for any number of ``vjp``);
* ``vote_report`` (counts, labels), ``abstention_share`` (``n``): a voting defense's rules;
* ``validate`` (``target``, ``overrides``): the conformance suite in here (training defenses,
  whose loss and parameter gradients cannot cross the pipe);
* ``train``: only in the trainer's worker (:mod:`benchmark.training.sandbox_entry`).
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from benchmark.defenses.base import SubmissionError
from benchmark.defenses.sandbox_wire import pack, read_msg, unpack, write_msg

KEEP_GRAPHS = 16
"""Forward passes whose graph the worker keeps for later ``vjp`` requests (the least recently
used one is dropped first)."""
METHODS = ("forward", "votes", "soft", "log_soft_votes")


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


def serve(memory_mib: int, processes: int, worker: Worker | None = None) -> None:
    """The sandboxed worker's loop: read a request, answer it, until the pipe closes."""
    out_fd, in_fd = os.dup(1), os.dup(0)
    # The submission's prints go to stderr; fds 0 and 1 are no longer the protocol's.
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    me = os.getpid()
    worker = worker or Worker()
    write_msg(out_fd, {"ok": True, "ready": True})
    while True:
        try:
            header, payload = read_msg(in_fd)
        except EOFError:
            return
        try:
            answer, data = worker.handle(header, payload)
        except BaseException as exc:  # every failure, the limits' included, becomes one line
            if os.getpid() != me:  # a forked child of the submission must not answer
                os._exit(1)
            sid = worker.sid or Path(str(header.get("target", "?"))).name
            limit = _stopped(exc, memory_mib, processes)
            if limit:
                line = f"submission '{sid}': stopped by the sandbox: {limit}"
            elif isinstance(exc, SubmissionError):
                line = str(exc)
            else:
                line = f"submission '{sid}': {type(exc).__name__}: {exc}"
            answer, data = {"ok": False, "error": " ".join(line.split())}, b""
        if os.getpid() != me:
            os._exit(1)
        write_msg(out_fd, answer, data)


def _build_model(spec: dict[str, Any], weights: bytes) -> torch.nn.Module:
    """The evaluator's model from its spec and ``state_dict`` bytes (loaded weights-only)."""
    from benchmark.defenses.conformance import _ToyClassifier
    from benchmark.models.base import ImageClassifier, build_model

    if spec.get("toy"):
        c, size, k = (int(v) for v in spec["toy"])
        model: torch.nn.Module = _ToyClassifier(c, size, k)
    else:
        model = build_model(
            str(spec["arch"]),
            in_channels=int(spec["in_channels"]),
            num_classes=int(spec["num_classes"]),
            image_size=int(spec["image_size"]),
            multi_label=bool(spec["multi_label"]),
        )
        assert isinstance(model, ImageClassifier)
    state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


class Worker:
    """The sandbox's state: the submission, its defense, its wrapped modules and graphs."""

    def __init__(self) -> None:
        self.sub: Any = None
        self.defenses: dict[int, Any] = {}
        self.modules: dict[int, torch.nn.Module] = {}
        self.graphs: OrderedDict[int, tuple[Tensor, Tensor]] = OrderedDict()
        self.rng: dict[int, Any] = {}
        self.counter = 0

    @property
    def sid(self) -> str | None:
        return self.sub.id if self.sub is not None else None

    def _next(self) -> int:
        self.counter += 1
        return self.counter

    def handle(self, header: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
        op = header.get("op")
        if op == "open":
            return self._open(header)
        if op == "validate":
            return self._validate(header)
        if op == "build":
            return self._build(header)
        if op == "vjp":
            handle = int(header["handle"])
            if handle not in self.graphs:
                raise SubmissionError(
                    f"submission '{self.sid}': the sandbox no longer holds forward pass {handle} "
                    f"(it keeps the last {KEEP_GRAPHS}); refused"
                )
            self.graphs.move_to_end(handle)
            x, out = self.graphs[handle]
            (grad,) = unpack(header, payload)
            # The graph is kept: an attack may differentiate one output several times (FAB's
            # per-class Jacobian rows use retain_graph).
            (gx,) = torch.autograd.grad(out, x, grad.to(out.dtype), retain_graph=True)
            return self._answer(gx)
        d = self.defenses.get(int(header.get("defense", 0)))
        if d is None:
            raise SubmissionError("no such defense built in the sandbox")
        if op == "reseed":
            seed = header.get("seed")
            d.reseed(None if seed is None else int(seed))
            return {"ok": True}, b""
        if op == "set_param":
            d.params[str(header["name"])] = header["value"]
            return {"ok": True}, b""
        if op == "config":
            return {"ok": True, "config": d.config()}, b""
        if op == "rng_save":
            token = self._next()
            self.rng[token] = (d.seed, d.rng_state())
            return {"ok": True, "token": token}, b""
        if op == "rng_restore":
            seed, state = self.rng[int(header["token"])]
            d.reseed(seed)
            d.set_rng_state(state)
            return {"ok": True}, b""
        if op in ("purify", "purify_approx"):
            fn = d.purify if op == "purify" else d.purify_approx
            return self._call(fn, header, payload)
        if op == "wrap":
            (weights,) = (payload,)
            module = d.wrap(_build_model(header["model"], weights))
            from benchmark.defenses.base import VotingClassifier

            key = self._next()
            self.modules[key] = module
            voting = isinstance(module, VotingClassifier)
            info = {"module": key, "voting": voting}
            if voting:
                info.update(n_votes=int(module.n_votes), smoothed=module.has_smoothed_vote())
            return {"ok": True, **info}, b""
        if op == "call":
            module = self.modules[int(header["module"])]
            method = header.get("method")
            if method not in METHODS:
                raise SubmissionError(f"unknown module method {method!r}")
            if method == "log_soft_votes":
                temperature = float(header["temperature"])
                return self._call(lambda x: module.log_soft_votes(x, temperature), header, payload)
            return self._call(getattr(module, method), header, payload)
        if op == "vote_report":
            counts, labels = unpack(header, payload)
            report = dict(d.vote_report(counts, labels))
            mask = report.pop("abstained_mask", None)
            if not isinstance(mask, Tensor):
                raise SubmissionError("vote_report() must hold a bool (N,) 'abstained_mask'")
            answer, data = self._answer(mask)
            return {**answer, "report": report}, data
        if op == "abstention_share":
            return {"ok": True, "share": float(d.abstention_share(int(header["n"])))}, b""
        raise SubmissionError(f"unknown request {op!r}")

    def _answer(self, out: Any) -> tuple[dict[str, Any], bytes]:
        if not isinstance(out, Tensor):
            raise SubmissionError(f"the hook returned a {type(out).__name__}, not a tensor")
        head, data = pack(out)
        return {"ok": True, **head}, data

    def _call(self, fn: Any, header: dict[str, Any], payload: bytes) -> tuple[dict, bytes]:
        """``fn`` on the request's tensor, its graph kept for a ``vjp`` when ``grad``."""
        (x,) = unpack(header, payload)
        if not header.get("grad"):
            with torch.no_grad():
                return self._answer(fn(x))
        x.requires_grad_(True)
        with torch.enable_grad():
            out = fn(x)
        answer, data = self._answer(out)
        if out.requires_grad:
            handle = self._next()
            self.graphs[handle] = (x, out)
            while len(self.graphs) > KEEP_GRAPHS:
                self.graphs.popitem(last=False)
            answer["handle"] = handle
        return answer, data

    def _open(self, header: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        from benchmark.defenses.base import VotingDefense
        from benchmark.defenses.submissions import load_submission

        self.sub = sub = load_submission(header["target"])
        cls = sub.defense_cls
        return {
            "ok": True,
            "id": sub.id,
            "meta": dataclasses.asdict(sub.meta),
            "defaults": sub.params,
            "voting": issubclass(cls, VotingDefense),
            "approx": callable(getattr(cls, "purify_approx", None)),
            "class_path": f"{cls.__module__}.{cls.__qualname__}",
        }, b""

    def _build(self, header: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        if self.sub is None:
            raise SubmissionError("no submission opened in the sandbox")
        defense = self.sub.build(seed=int(header.get("seed", 0)), **header.get("params", {}))
        key = self._next()
        self.defenses[key] = defense
        return {"ok": True, "defense": key, "params": defense.params}, b""

    def _validate(self, header: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        from benchmark.defenses.conformance import validate_submission
        from benchmark.defenses.submissions import load_submission

        self.sub = sub = load_submission(header["target"])
        passed = validate_submission(sub, **header.get("overrides", {}))
        return {"ok": True, "passed": [dataclasses.asdict(c) for c in passed]}, b""
