"""The defense conformance suite (``bench validate``), shipped for plugin authors.

A submission must pass every check before it is evaluated. Each check runs the defense on
small seeded inputs on the CPU (grey and colour, two sizes) and compares what it does with
what it declares:

* metadata complete and the kind's hook implemented (checked when the submission loads);
* output: same shape as the input, float32, finite, inside [0, 1] (preprocessing), or finite
  logits of shape (N, classes) (wrapper);
* determinism under a seed: two runs after ``reseed(s)`` are identical;
* declared flags: a defense declaring ``randomized=False`` must give identical outputs on
  repeated calls without reseeding, one declaring ``randomized=True`` must change with the
  seed; ``differentiable=True`` needs finite, non-zero input gradients;
* batch independence (deterministic defenses): a sample's output does not depend on the other
  samples of its batch.

The first failure raises :class:`SubmissionError` naming the submission, the check and what
went wrong; :func:`validate_submission` returns the list of passed checks otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from benchmark.defenses.base import Defense, SubmissionError
from benchmark.defenses.submissions import Submission

SHAPES = ((2, 1, 28, 28), (3, 3, 32, 32))
"""Batch shapes the suite runs on: grey MedMNIST size and a colour image."""


@dataclass(frozen=True)
class CheckResult:
    """One passed check: its name and a short note of what was verified."""

    name: str
    detail: str


class _ToyClassifier(nn.Module):
    """A fixed random linear classifier used to exercise wrapper defenses."""

    multi_label = False

    def __init__(self, channels: int, size: int, classes: int = 3) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.weight = nn.Parameter(torch.randn(classes, channels * size * size, generator=gen))
        self.num_classes = classes

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1) @ self.weight.t() / x[0].numel() ** 0.5

    @property
    def device(self) -> torch.device:
        return self.weight.device

    def predict_proba(self, x: Tensor) -> Tensor:
        return torch.softmax(self(x), dim=1)


def _inputs(shape: tuple[int, ...]) -> Tensor:
    gen = torch.Generator().manual_seed(sum(shape))
    return torch.rand(shape, generator=gen)


def _run(defense: Defense, x: Tensor, model: nn.Module | None) -> Tensor:
    if defense.meta.kind == "wrapper":
        assert model is not None
        return defense.wrap(model)(x)
    return defense.purify(x)


def _grad_path(defense: Defense, x: Tensor, model: nn.Module | None, seed: int) -> Tensor:
    defense.reseed(seed)
    with torch.enable_grad():
        return _run(defense, x.clone().requires_grad_(True), model).detach()


def validate_submission(sub: Submission, **overrides: Any) -> list[CheckResult]:
    """Run the conformance suite on ``sub`` built with its parameters (and ``overrides``)."""
    meta = sub.meta
    passed = [CheckResult("metadata", f"kind {meta.kind}, reference, version, licence, authors")]

    def fail(check: str, problem: str) -> SubmissionError:
        return SubmissionError(f"submission '{sub.id}' fails '{check}': {problem}")

    if meta.kind == "training":
        return passed + _validate_training(sub, fail, overrides)

    for shape in SHAPES:
        n, c, h, _ = shape
        x = _inputs(shape)
        model = _ToyClassifier(c, h) if meta.kind == "wrapper" else None
        defense = sub.build(seed=0, **overrides)
        try:
            with torch.no_grad():
                out = _run(defense, x.clone(), model)
        except Exception as exc:
            raise fail("runs", f"{type(exc).__name__}: {exc} on input {tuple(shape)}") from exc
        expected = tuple(shape) if meta.kind == "preprocessing" else (n, model.num_classes)  # type: ignore[union-attr]
        if not isinstance(out, Tensor) or tuple(out.shape) != expected:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise fail("shape", f"output {got} for input {tuple(shape)}; expected {expected}")
        if out.dtype != torch.float32:
            raise fail("dtype", f"output dtype {out.dtype}; return float32")
        if not torch.isfinite(out).all():
            raise fail("finite", f"NaN or inf in the output for input {tuple(shape)}")
        if meta.kind == "preprocessing" and (out.min() < 0 or out.max() > 1):
            raise fail("range", f"output in [{out.min():.4f}, {out.max():.4f}]; clamp it to [0, 1]")
        with torch.no_grad():
            defense.reseed(7)
            a = _run(defense, x.clone(), model)
            defense.reseed(7)
            b = _run(defense, x.clone(), model)
            again = _run(defense, x.clone(), model)
            defense.reseed(8)
            other = _run(defense, x.clone(), model)
        if not meta.randomized and not (torch.equal(a, b) and torch.equal(b, again)):
            raise fail(
                "declared randomized=False",
                "repeated calls give different outputs; declare randomized=True",
            )
        if not torch.equal(a, b):
            raise fail("determinism", "two runs after reseed(7) differ; draw from self.generator")
        if meta.randomized and torch.equal(a, other) and meta.differentiable:
            # A vote over many copies can be stable; its differentiable path must still vary.
            a, other = (_grad_path(defense, x, model, s) for s in (7, 8))
        if meta.randomized and torch.equal(a, other):
            raise fail(
                "declared randomized=True",
                "outputs do not change with the seed; declare randomized=False or use "
                "self.generator",
            )
        if not meta.randomized:
            with torch.no_grad():
                single = torch.cat([_run(defense, x[i : i + 1].clone(), model) for i in range(n)])
            if not torch.allclose(single, a, atol=1e-5):
                raise fail("batch independence", "a sample's output depends on its batch")
        if meta.differentiable:
            xg = x.clone().requires_grad_(True)
            defense.reseed(7)
            try:
                _run(defense, xg, model).sum().backward()
            except Exception as exc:
                raise fail(
                    "declared differentiable=True", f"backward failed ({exc}); declare False"
                ) from exc
            if xg.grad is None or not torch.isfinite(xg.grad).all() or xg.grad.abs().sum() == 0:
                raise fail(
                    "declared differentiable=True",
                    "no finite non-zero input gradient; declare differentiable=False",
                )
    passed += [
        CheckResult("runs", f"on CPU for inputs {', '.join(str(s) for s in SHAPES)}"),
        CheckResult("shape and dtype", "float32, the input's shape (or N x classes logits)"),
        CheckResult(
            "finite and range",
            "no NaN or inf" + (", inside [0, 1]" if meta.kind == "preprocessing" else ""),
        ),
        CheckResult("determinism", "identical outputs after the same reseed"),
        CheckResult(
            "declared randomized",
            "outputs change with the seed" if meta.randomized else "repeated calls identical",
        ),
    ]
    if not meta.randomized:
        passed.append(CheckResult("batch independence", "per-sample outputs equal batched ones"))
    if meta.differentiable:
        passed.append(CheckResult("declared differentiable", "finite non-zero input gradients"))
    return passed


def _validate_training(sub: Submission, fail: Any, overrides: dict[str, Any]) -> list[CheckResult]:
    """A training defense's ``train(model, x, y)``: a finite scalar loss with finite, non-zero
    parameter gradients, identical after the same reseed, its inputs untouched, and no
    parameter gradient or model state changed by the inner attack before the step."""
    for shape in SHAPES:
        n, c, h, _ = shape
        x = _inputs(shape)
        y = torch.arange(n) % 3
        model = _ToyClassifier(c, h)
        defense = sub.build(seed=0, **overrides)
        model.train()
        buffers = {k: v.clone() for k, v in model.state_dict().items()}
        x_in = x.clone()
        try:
            defense.reseed(7)
            loss = defense.train(model, x_in, y)
        except Exception as exc:
            raise fail("runs", f"{type(exc).__name__}: {exc} on input {tuple(shape)}") from exc
        if not torch.equal(x_in, x):
            raise fail("inputs", "train() modified its input batch in place; work on a copy")
        if any(p.grad is not None for p in model.parameters()):
            raise fail("inner attack", "parameter gradients were accumulated before backward")
        changed = [k for k, v in model.state_dict().items() if not torch.equal(v, buffers[k])]
        if changed:
            raise fail("inner attack", f"train() changed model state {changed} before the step")
        if not isinstance(loss, Tensor) or loss.ndim != 0 or not loss.requires_grad:
            raise fail("loss", "train() must return a scalar tensor that requires grad")
        if not torch.isfinite(loss.detach()):
            raise fail("finite", f"loss is {float(loss.detach())} for input {tuple(shape)}")
        loss.backward()
        grad = model.weight.grad
        if grad is None or not torch.isfinite(grad).all() or grad.abs().sum() == 0:
            raise fail("gradients", "no finite non-zero parameter gradient from the loss")
        defense.reseed(7)
        again = defense.train(model, x.clone(), y)
        if not torch.equal(loss.detach(), again.detach()):
            raise fail("determinism", "two losses after reseed(7) differ; draw from self.generator")
        if not model.training:
            raise fail("model mode", "train() must leave the model in train mode")
    return [
        CheckResult("runs", f"train() on CPU for inputs {', '.join(str(s) for s in SHAPES)}"),
        CheckResult("loss", "finite scalar with finite non-zero parameter gradients"),
        CheckResult("determinism", "identical losses after the same reseed"),
    ]
