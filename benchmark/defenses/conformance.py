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
  samples of its batch;
* voting defenses (:class:`~benchmark.defenses.base.VotingDefense`): ``wrap`` returns a
  :class:`~benchmark.defenses.base.VotingClassifier`; ``soft(x)`` gives finite (N, K) log
  probabilities with a finite input gradient; a voting forward records (N, K) non-negative
  integer counts with equal row sums, returns their log shares, and ``take_votes`` returns
  them once; ``vote_report`` gives a bool (N,) ``abstained_mask`` and finite numbers, never
  abstains on a unanimous vote of 1000 copies, decides each sample from its own votes, and does
  not start to abstain when a vote's winner gains votes.

The first failure raises :class:`SubmissionError` naming the submission, the check and what
went wrong; :func:`validate_submission` returns the list of passed checks otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from benchmark.defenses.base import (
    Defense,
    IsolationError,
    SubmissionError,
    VotingClassifier,
    VotingDefense,
)
from benchmark.defenses.submissions import Submission

SHAPES = ((2, 1, 28, 28), (3, 3, 32, 32))
"""Batch shapes the suite runs on: grey MedMNIST size and a colour image."""


Fail = Callable[[str, str], SubmissionError]
"""Builds the error of a failed check from its name and the problem."""


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
        self.channels, self.size, self.num_classes = channels, size, classes

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
    passed = [
        CheckResult(
            "metadata",
            f"kind {meta.kind}; name, authors, paper, licence, threat models, reference, version",
        )
    ]

    def fail(check: str, problem: str) -> SubmissionError:
        return SubmissionError(f"submission '{sub.id}' fails '{check}': {problem}")

    if meta.kind == "training":
        return passed + _validate_training(sub, fail, overrides)

    for shape in SHAPES:
        _check_on_shape(sub, shape, fail, overrides)
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
    if issubclass(sub.defense_cls, VotingDefense):
        passed += _validate_voting(sub, fail, overrides)
    return passed


def _check_on_shape(sub: Submission, shape: tuple[int, ...], fail: Fail, overrides: dict) -> None:
    """Every check of a preprocessing or wrapper defense on one input shape."""
    meta = sub.meta
    n, c, h, _ = shape
    x = _inputs(shape)
    model = _ToyClassifier(c, h) if meta.kind == "wrapper" else None
    defense = sub.build(seed=0, **overrides)
    try:
        with torch.no_grad():
            out = _run(defense, x.clone(), model)
    except IsolationError:
        raise
    except Exception as exc:
        raise fail("runs", f"{type(exc).__name__}: {exc} on input {tuple(shape)}") from exc
    expected = tuple(shape) if meta.kind == "preprocessing" else (n, model.num_classes)  # type: ignore[union-attr]
    _check_output(out, shape, expected, meta.kind, fail)
    _check_randomness(defense, x, model, meta, fail)
    if meta.differentiable:
        _check_gradient(defense, x, model, fail)


def _check_output(out: Any, shape: tuple[int, ...], expected: tuple, kind: str, fail: Fail) -> None:
    """Shape, dtype, finiteness and (preprocessing) range of one output."""
    if not isinstance(out, Tensor) or tuple(out.shape) != expected:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise fail("shape", f"output {got} for input {tuple(shape)}; expected {expected}")
    if out.dtype != torch.float32:
        raise fail("dtype", f"output dtype {out.dtype}; return float32")
    if not torch.isfinite(out).all():
        raise fail("finite", f"NaN or inf in the output for input {tuple(shape)}")
    if kind == "preprocessing" and (out.min() < 0 or out.max() > 1):
        raise fail("range", f"output in [{out.min():.4f}, {out.max():.4f}]; clamp it to [0, 1]")


def _check_randomness(defense: Any, x: Tensor, model: Any, meta: Any, fail: Fail) -> None:
    """Seeded determinism, the declared ``randomized`` flag and batch independence."""
    n = x.shape[0]
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
            "outputs do not change with the seed; declare randomized=False or use self.generator",
        )
    if not meta.randomized:
        with torch.no_grad():
            single = torch.cat([_run(defense, x[i : i + 1].clone(), model) for i in range(n)])
        if not torch.allclose(single, a, atol=1e-5):
            raise fail("batch independence", "a sample's output depends on its batch")


def _check_gradient(defense: Any, x: Tensor, model: Any, fail: Fail) -> None:
    """A defense declaring ``differentiable=True`` gives finite, non-zero input gradients."""
    xg = x.clone().requires_grad_(True)
    defense.reseed(7)
    try:
        _run(defense, xg, model).sum().backward()
    except IsolationError:
        raise
    except Exception as exc:
        raise fail(
            "declared differentiable=True", f"backward failed ({exc}); declare False"
        ) from exc
    if xg.grad is None or not torch.isfinite(xg.grad).all() or xg.grad.abs().sum() == 0:
        raise fail(
            "declared differentiable=True",
            "no finite non-zero input gradient; declare differentiable=False",
        )


def _validate_voting(sub: Submission, fail: Any, overrides: dict[str, Any]) -> list[CheckResult]:
    """A voting defense's hooks: ``soft``, the recorded votes and ``vote_report``."""
    n, c, h, _ = SHAPES[0]
    x = _inputs(SHAPES[0])
    model = _ToyClassifier(c, h)
    k = model.num_classes
    defense = sub.build(seed=0, **overrides)
    module = defense.wrap(model)
    if not isinstance(module, VotingClassifier):
        raise fail("voting hooks", "wrap() of a VotingDefense must return a VotingClassifier")
    defense.reseed(7)
    xg = x.clone().requires_grad_(True)
    with torch.enable_grad():
        soft = module.soft(xg)
        if tuple(soft.shape) != (n, k) or not torch.isfinite(soft).all():
            raise fail("soft", f"soft(x) must be finite (N, K) = {(n, k)}, got {tuple(soft.shape)}")
        if not torch.allclose(soft.exp().sum(1), torch.ones(n), atol=1e-4):
            raise fail("soft", "soft(x) must return log probabilities (exp sums to 1 per row)")
        soft.sum().backward()
    if xg.grad is None or not torch.isfinite(xg.grad).all():
        raise fail("soft", "soft(x) gives no finite input gradient")
    module.take_votes()
    defense.reseed(7)
    with torch.no_grad():
        out = torch.cat([module(x), module(x[:1])])
    counts = module.take_votes()
    if tuple(counts.shape) != (n + 1, k):
        raise fail("votes", f"take_votes() gave {tuple(counts.shape)} for {n} + 1 inputs")
    integral = not counts.is_floating_point() or torch.equal(counts, counts.round())
    if not integral or counts.min() < 0:
        raise fail("votes", "vote counts must be non-negative integers")
    totals = counts.sum(1)
    if totals.min() < 1 or not torch.equal(totals, totals[:1].expand_as(totals)):
        raise fail("votes", "every sample must get the same number of votes, at least one")
    shares = (counts.float() / totals[:, None]).clamp_min(1e-12).log()
    if not torch.allclose(out, shares, atol=1e-5):
        raise fail("votes", "a voting forward must return the log vote shares")
    if len(module.take_votes()):
        raise fail("votes", "take_votes() must clear the recorded votes")
    labels = torch.arange(n + 1) % k
    mask = _abstentions(defense, counts, labels, fail)
    single = torch.cat(
        [_abstentions(defense, counts[i : i + 1], labels[i : i + 1], fail) for i in range(n + 1)]
    )
    if not torch.equal(single, mask):
        raise fail("abstention", "a sample's abstention depends on the other samples' votes")
    unanimous = torch.eye(k, dtype=counts.dtype) * 1000
    if _abstentions(defense, unanimous, torch.arange(k), fail).any():
        raise fail("abstention", "a unanimous vote of 1000 copies must not abstain")
    decided = counts[~mask]
    if len(decided):
        more = decided.clone()
        more[torch.arange(len(more)), more.argmax(1)] += 1000
        if _abstentions(defense, more, labels[~mask], fail).any():
            raise fail("abstention", "a vote abstains after its winner gained votes")
    return [
        CheckResult("voting soft", "finite (N, K) log probabilities with input gradients"),
        CheckResult("voting votes", "recorded integer counts, equal totals, log shares"),
        CheckResult("voting abstention", "per sample, never unanimous, monotone in the margin"),
    ]


def _abstentions(defense: Any, counts: Tensor, labels: Tensor, fail: Any) -> Tensor:
    """``vote_report``'s ``abstained_mask``, its type, shape and numbers checked."""
    report = defense.vote_report(counts, labels)
    mask = report.get("abstained_mask") if isinstance(report, dict) else None
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != (len(counts),):
        raise fail("vote report", "vote_report() must hold a bool (N,) 'abstained_mask'")
    for key, value in report.items():
        if key != "abstained_mask" and not (
            isinstance(value, int | float) and value == value and abs(value) != float("inf")
        ):
            raise fail("vote report", f"vote_report()['{key}'] = {value!r} is not a finite number")
    if "abstain_rate" in report and abs(report["abstain_rate"] - float(mask.float().mean())) > 1e-9:
        raise fail("vote report", "'abstain_rate' is not the share of abstained samples")
    return mask


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
        except IsolationError:
            raise
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
