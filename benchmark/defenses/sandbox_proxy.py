"""The evaluator's side of the sandbox: proxies that look like a submission, its defense and
its wrapped module, and forward every hook over the typed pipe of
:class:`~benchmark.defenses.sandbox.SandboxSession` (tensors in, tensors out).

The evaluation, the attacks, the scoring and the conformance suite run in this process on
these proxies; the submission's code runs only in the sandbox. Every tensor that comes back is
checked here before anything uses it (shape, dtype, finiteness, and [0, 1] for a purified
image), so a submission that patches the sandbox's copy of the package changes nothing here.

Gradients cross the pipe as vector-Jacobian products: a hook called on an input that requires
grad runs in the sandbox with autograd on and keeps its graph under a handle; the backward pass
here sends the output's gradient and receives the input's (:class:`_RemoteFunction`). A
wrapper's base model is shipped to the sandbox once per ``wrap`` as its architecture and
``state_dict`` (loaded there weights-only); the sandbox computes on the CPU.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from benchmark.defenses.base import (
    DefenseMeta,
    SubmissionError,
    VotingClassifier,
    VotingDefense,
    defense_config,
)
from benchmark.defenses.sandbox import SandboxError, SandboxLimits, SandboxSession, _resolve
from benchmark.defenses.sandbox_wire import pack, unpack
from benchmark.defenses.submissions import (
    SubmissionFile,
    describe_folder,
    entry_module_name,
    submission_record,
)


def _refuse(sid: str, problem: str) -> SandboxError:
    return SandboxError(f"submission '{sid}': {problem}; refused")


def _one(answer: dict[str, Any], data: bytes, sid: str, what: str) -> Tensor:
    try:
        tensors = unpack(answer, data)
    except ValueError as exc:
        raise _refuse(sid, f"{what} sent a malformed tensor ({exc})") from None
    if len(tensors) != 1:
        raise _refuse(sid, f"{what} sent {len(tensors)} tensors")
    return tensors[0]


def _shape(t: Tensor) -> list[int]:
    return list(t.shape)


class _Call:
    """One hook of the sandboxed defense, with the check of what it returns."""

    def __init__(
        self, defense: SandboxedDefense, header: dict[str, Any], what: str, check: Any
    ) -> None:
        self.defense, self.header, self.what, self.check = defense, header, what, check

    def send(self, x: Tensor, grad: bool) -> tuple[Tensor, int | None]:
        if x.dtype != torch.float32:
            raise SandboxError(f"{self.what} takes float32 tensors, not {x.dtype}")
        head, payload = pack(x)
        session = self.defense.session
        cap = 8 * max(x.numel(), x.shape[0] * 4096 if x.ndim else 1)
        answer, data = session.request(
            {**self.header, **head, "grad": grad}, payload, max_payload=cap
        )
        out = _one(answer, data, session.id, self.what)
        self.check(out, x)
        return out.to(x.device), answer.get("handle")

    def vjp(self, handle: int, grad: Tensor, x_shape: list[int], device: torch.device) -> Tensor:
        session = self.defense.session
        head, payload = pack(grad.float())
        cap = 8 * max(1, int(torch.Size(x_shape).numel()))
        answer, data = session.request(
            {"op": "vjp", "handle": handle, **head}, payload, max_payload=cap
        )
        g = _one(answer, data, session.id, f"the gradient of {self.what}")
        if _shape(g) != x_shape or g.dtype != torch.float32:
            raise _refuse(session.id, f"the gradient of {self.what} has {g.dtype} {_shape(g)}")
        if not torch.isfinite(g).all():
            raise _refuse(session.id, f"the gradient of {self.what} is not finite")
        return g.to(device)

    def __call__(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return _RemoteFunction.apply(x, self)
        with torch.no_grad():
            return self.send(x, grad=False)[0]


class _RemoteFunction(torch.autograd.Function):
    """A sandboxed hook in the autograd graph: its backward asks the sandbox for the VJP."""

    @staticmethod
    def forward(ctx, x: Tensor, call: _Call) -> Tensor:  # type: ignore[override]
        out, handle = call.send(x.detach(), grad=True)
        ctx.call, ctx.handle = call, handle
        ctx.x_shape, ctx.device = _shape(x), x.device
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, None]:  # type: ignore[override]
        if ctx.handle is None:  # the sandboxed output did not depend on the input
            return torch.zeros(ctx.x_shape, device=ctx.device), None
        return ctx.call.vjp(ctx.handle, grad, ctx.x_shape, ctx.device), None


def _check_image(sid: str, what: str, in_range: bool = True) -> Any:
    def check(out: Tensor, x: Tensor) -> None:
        if _shape(out) != _shape(x) or out.dtype != torch.float32:
            raise _refuse(
                sid,
                f"{what} returned {str(out.dtype).removeprefix('torch.')} of shape "
                f"{_shape(out)} for float32 of shape {_shape(x)}",
            )
        if not torch.isfinite(out).all() or (
            in_range and out.numel() and (out.min() < 0 or out.max() > 1)
        ):
            raise SandboxError(
                f"submission '{sid}': {what} returned values outside [0, 1] or not finite; refused"
            )

    return check


def _check_scores(sid: str, what: str, classes: int, integral: bool = False) -> Any:
    def check(out: Tensor, x: Tensor) -> None:
        want = [x.shape[0], classes]
        allowed = (torch.int64, torch.float32) if integral else (torch.float32,)
        ok_dtype = out.dtype in allowed
        if _shape(out) != want or not ok_dtype:
            raise _refuse(
                sid, f"{what} returned {out.dtype} of shape {_shape(out)}; expected {want}"
            )
        if out.is_floating_point() and not torch.isfinite(out).all():
            raise _refuse(sid, f"{what} returned values that are not finite")

    return check


def model_spec(model: nn.Module) -> tuple[dict[str, Any], bytes]:
    """What the sandbox needs to rebuild ``model``: its architecture and its weights' bytes.

    Raises:
        SandboxError: a model the sandbox cannot rebuild (neither a registered architecture
            nor the conformance suite's toy classifier).
    """
    from benchmark.defenses.conformance import _ToyClassifier
    from benchmark.models.base import ImageClassifier

    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    if isinstance(model, _ToyClassifier):
        spec: dict[str, Any] = {"toy": [model.channels, model.size, model.num_classes]}
    elif isinstance(model, ImageClassifier):
        spec = {
            "arch": model.arch,
            "in_channels": model.in_channels,
            "num_classes": model.num_classes,
            "image_size": model.image_size,
            "multi_label": model.multi_label,
        }
    else:
        raise SandboxError(
            f"a sandboxed wrapper defense wraps registered architectures only, not "
            f"{type(model).__name__}"
        )
    return spec, buffer.getvalue()


class _SyncedParams(dict):
    """The defense's parameters; a change is made in the sandbox too (the convergence sweep
    doubles a voting defense's copies this way)."""

    def __init__(self, defense: SandboxedDefense, values: dict[str, Any]) -> None:
        super().__init__(values)
        self._defense = defense

    def __setitem__(self, key: str, value: Any) -> None:
        self._defense._request({"op": "set_param", "name": key, "value": value})
        super().__setitem__(key, value)


class SandboxedDefense:
    """A defense instance living in the sandbox, seen through its hooks.

    Built by :meth:`SandboxedSubmission.build`; ``meta``, ``params``, ``config()``,
    ``reseed()``, the random-state save and restore, and the hook of its kind (``purify``,
    ``purify_approx`` where the class has one, ``wrap``) are forwarded. A training defense's
    ``train`` is not: its robust training runs whole in the sandbox
    (:func:`benchmark.defenses.isolation.train_in_sandbox`).
    """

    def __init__(self, sub: SandboxedSubmission, seed: int, params: dict[str, Any]) -> None:
        self.submission = sub
        self.session = sub.session
        self.id = sub.id
        self.meta = sub.meta
        self.seed = seed
        answer, _ = self.session.request({"op": "build", "seed": seed, "params": params})
        self.key = int(answer["defense"])
        self.params = _SyncedParams(self, dict(answer.get("params") or {}))
        if sub.has_approx:
            self.purify_approx = _Call(
                self,
                {"op": "purify_approx", "defense": self.key},
                "purify_approx",
                _check_image(self.id, "purify_approx", in_range=False),
            )

    def _request(self, header: dict[str, Any], payload: bytes = b"") -> tuple[dict, bytes]:
        return self.session.request({**header, "defense": self.key}, payload)

    def reseed(self, seed: int | None = None) -> None:
        """Restart the defense's random streams in the sandbox."""
        if seed is not None:
            self.seed = int(seed)
        self._request({"op": "reseed", "seed": seed})

    def config(self) -> dict[str, Any]:
        """What defines the defense's behaviour, composed here as :meth:`Defense.config` does
        in process (the class named from the hashed entry file, the declared meta, the
        parameters and seed this process set), never taken from the sandbox: it keys the
        adversarial-example cache."""
        return defense_config(self.submission.class_path, self.meta, self.params, self.seed)

    def rng_state(self) -> dict[str, Any]:
        """A token of the sandboxed defense's random state (for :meth:`set_rng_state`)."""
        return {"sandbox": int(self._request({"op": "rng_save"})[0]["token"])}

    def set_rng_state(self, state: dict[str, Any]) -> None:
        """Restore a state saved by :meth:`rng_state`."""
        self._request({"op": "rng_restore", "token": int(state["sandbox"])})

    def purify(self, x: Tensor) -> Tensor:
        """The sandboxed ``purify(x)``, checked (same shape, float32, finite, in [0, 1])."""
        call = _Call(
            self, {"op": "purify", "defense": self.key}, "purify", _check_image(self.id, "purify")
        )
        return call(x)

    __call__ = purify

    def wrap(self, model: nn.Module) -> nn.Module:
        """The sandboxed ``wrap(model)``: ``model`` is shipped to the sandbox and wrapped
        there; the proxy module forwards its calls."""
        spec, weights = model_spec(model)
        answer, _ = self._request({"op": "wrap", "model": spec}, weights)
        module = int(answer["module"])
        if answer.get("voting"):
            return SandboxedVotingClassifier(
                self, model, module, int(answer["n_votes"]), bool(answer.get("smoothed"))
            )
        return SandboxedModule(self, model, module)

    def train(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        raise SandboxError(
            f"submission '{self.id}': a sandboxed training defense trains whole in the sandbox "
            "(bench train --defense), not one minibatch at a time"
        )

    def _module_call(self, module: int, method: str, classes: int, **extra: Any) -> _Call:
        integral = method == "votes"
        what = f"{method}()" if method != "forward" else "the wrapped model"
        return _Call(
            self,
            {"op": "call", "defense": self.key, "module": module, "method": method, **extra},
            what,
            _check_scores(self.id, what, classes, integral=integral),
        )


class SandboxedVotingDefense(SandboxedDefense, VotingDefense):
    """A sandboxed :class:`VotingDefense`: its vote report and abstention rule are asked of
    the sandbox, and their answers checked."""

    def __init__(self, sub: SandboxedSubmission, seed: int, params: dict[str, Any]) -> None:
        SandboxedDefense.__init__(self, sub, seed, params)

    def vote_report(self, counts: Tensor, labels: Tensor) -> dict[str, Any]:
        """The sandboxed ``vote_report``: a bool (N,) ``abstained_mask`` and JSON numbers."""
        head, payload = pack(counts.cpu().long(), labels.cpu().long())
        answer, data = self._request({"op": "vote_report", **head}, payload)
        mask = _one(answer, data, self.id, "vote_report()")
        report = answer.get("report")
        if (
            mask.dtype != torch.bool
            or _shape(mask) != [len(counts)]
            or not isinstance(report, dict)
        ):
            raise _refuse(self.id, "vote_report() must hold a bool (N,) 'abstained_mask'")
        return {**report, "abstained_mask": mask}

    def abstention_share(self, n: int) -> float:
        """The sandboxed abstention threshold."""
        share = self._request({"op": "abstention_share", "n": int(n)})[0].get("share")
        if not isinstance(share, int | float) or share != share:
            raise _refuse(self.id, "abstention_share() is not a number")
        return float(share)


class SandboxedModule(nn.Module):
    """A wrapper defense's module living in the sandbox: ``forward(x)`` gives its logits."""

    def __init__(self, defense: SandboxedDefense, model: nn.Module, module: int) -> None:
        super().__init__()
        self.base = model
        self.defense = defense
        self._forward = defense._module_call(module, "forward", int(model.num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self._forward(x)


class SandboxedVotingClassifier(VotingClassifier):
    """A voting defense's classifier living in the sandbox: votes, the smoothed path and the
    tempered vote are asked of it; the recording of votes and the forward's choice between
    them stay those of :class:`VotingClassifier`."""

    def __init__(
        self, defense: SandboxedDefense, model: nn.Module, module: int, n: int, smoothed: bool
    ) -> None:
        super().__init__(defense, model)  # type: ignore[arg-type]
        self._module, self._n, self._smoothed = module, n, smoothed
        self._classes = int(model.num_classes)

    def has_smoothed_vote(self) -> bool:
        return self._smoothed

    @property
    def n_votes(self) -> int:
        return self._n

    def votes(self, x: Tensor) -> Tensor:
        return self.defense._module_call(self._module, "votes", self._classes)(x)  # type: ignore[attr-defined]

    def soft(self, x: Tensor) -> Tensor:
        return self.defense._module_call(self._module, "soft", self._classes)(x)  # type: ignore[attr-defined]

    def log_soft_votes(self, x: Tensor, temperature: float) -> Tensor:
        if not temperature > 0:
            raise ValueError(f"the vote temperature must be > 0, got {temperature}")
        call = self.defense._module_call(  # type: ignore[attr-defined]
            self._module, "log_soft_votes", self._classes, temperature=float(temperature)
        )
        return call(x)


def _class_path(folder: Path, sid: str) -> str:
    """``module.Class`` of a submission's entry, as loading it in process names it."""
    import tomllib

    spec = tomllib.loads((folder / "submission.toml").read_text())
    module, _, cls = str(spec.get("entry", "")).partition(":")
    return f"{entry_module_name(sid, (folder / f'{module}.py').read_bytes())}.{cls}"


class SandboxedSubmission:
    """A submission opened in its own sandbox: what :class:`Submission` offers (id, meta,
    params, record, ``build``), with every instance living in the sandbox.

    Args:
        submission: a folder, an id under ``submissions/``, or a registered id.
        limits: the sandbox's limits.
        read_only: further host folders the sandbox may read.
    """

    def __init__(
        self,
        submission: str | Path,
        limits: SandboxLimits | None = None,
        read_only: tuple[Path, ...] = (),
    ) -> None:
        folder, _ = _resolve(submission)
        described = describe_folder(folder) if folder is not None else None  # links refused
        self.session = SandboxSession(submission, limits, read_only=read_only)
        try:
            answer, _ = self.session.request({"op": "open", "target": self.session.target})
            meta = answer.get("meta")
            try:
                self.meta = DefenseMeta(**meta)  # type: ignore[arg-type]
            except (TypeError, SubmissionError) as exc:
                raise _refuse(self.session.id, f"its meta cannot be read ({exc})") from None
        except BaseException:
            self.session.close()
            raise
        self.id = self.session.id
        self.path = self.session.folder
        self.voting = bool(answer.get("voting"))
        self.has_approx = bool(answer.get("approx"))
        self._defaults = dict(answer.get("defaults") or {})
        self.defense_cls = SandboxedVotingDefense if self.voting else SandboxedDefense
        self.sha256, self.files = "", ()
        self.class_path = str(answer.get("class_path", ""))
        if described is not None:  # computed here, from the folder, never by the sandbox
            self.sha256, files = described
            self.files: tuple[SubmissionFile, ...] = files
            self.class_path = _class_path(self.path, self.id)

    name = property(lambda self: self.meta.name)
    authors = property(lambda self: self.meta.authors)
    paper = property(lambda self: self.meta.paper)
    license = property(lambda self: self.meta.license)
    threat_models = property(lambda self: self.meta.threat_models)

    @property
    def params(self) -> dict[str, Any]:
        """Default parameters (the class's ``defaults``, as the sandbox reports them)."""
        return dict(self._defaults)

    def build(self, seed: int = 0, **overrides: Any) -> SandboxedDefense:
        """A defense instance in the sandbox, with the default parameters and ``overrides``."""
        return self.defense_cls(self, seed, overrides)

    def record(self) -> dict[str, Any]:
        """The results JSON's description of the submission (as :meth:`Submission.record`)."""
        return submission_record(self.id, self.meta, self.sha256, self.files)

    def close(self) -> None:
        """End the sandbox."""
        self.session.close()

    def __enter__(self) -> SandboxedSubmission:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
