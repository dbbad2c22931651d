"""The defended pipeline: a base model behind a defense, as one classifier for the attacks.

:class:`DefendedModel` puts a preprocessing defense's ``purify`` in front of the base model (or
takes a wrapper defense's module); with ``adaptive`` its backward pass goes through
non-differentiable purifiers by BPDA (:func:`bpda`: the identity, or the defense's
``purify_approx``). Every in-process call keeps the run's torch thread count
(:func:`restore_torch_threads`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from benchmark.defenses.base import Defense, SubmissionError


class _BPDA(torch.autograd.Function):
    """Forward: the defense; backward: the gradient of ``approx`` (identity by default).

    Backward Pass Differentiable Approximation, Athalye et al. 2018 Sec. 4.1.
    """

    @staticmethod
    def forward(ctx, x: Tensor, fn: Callable[[Tensor], Tensor], approx: Any) -> Tensor:  # type: ignore[override]
        ctx.approx = approx
        ctx.save_for_backward(x)
        with torch.no_grad():
            return fn(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, None, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        if ctx.approx is None:
            return grad, None, None
        with torch.enable_grad():
            xi = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(ctx.approx(xi), xi, grad)
        return g, None, None


def bpda(
    fn: Callable[[Tensor], Tensor], x: Tensor, approx: Callable[[Tensor], Tensor] | None = None
) -> Tensor:
    """``fn(x)`` on the forward pass, the gradient of ``approx`` (or identity) on the backward."""
    return _BPDA.apply(x, fn, approx)


def restore_torch_threads(threads: int) -> None:
    """Set torch's intra-op thread count back to ``threads`` if a defense changed it.

    A defense's own kernels may reset the process's OpenMP pool (numba's parallel layer does:
    MDDA's TV solver left torch at numba's thread count), so a run would go on with another
    thread count than the one its results record. Call it after every in-process defense call.
    """
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


class DefendedModel(nn.Module):
    """The defended pipeline as a classifier: base model behind a preprocessing defense, or
    the wrapper's module.

    Args:
        model: the base classifier (maps [0, 1] NCHW to logits).
        defense: the defense.
        adaptive: use BPDA on the backward pass of non-differentiable preprocessing, so that
            gradient attacks see the whole pipeline (the ``adaptive`` threat model).
        bpda_always: with ``adaptive``, use BPDA for differentiable preprocessing too (the
            ``--adaptive-gradient bpda`` pass, for purifiers whose exact gradients are weak).
    """

    def __init__(
        self,
        model: nn.Module,
        defense: Defense,
        *,
        adaptive: bool = False,
        bpda_always: bool = False,
    ) -> None:
        super().__init__()
        self.base = model
        self.defense = defense
        self.adaptive = adaptive
        self.bpda_always = bpda_always
        kind = defense.meta.kind
        if kind == "wrapper":
            self.inner: nn.Module | None = defense.wrap(model)
        elif kind == "preprocessing":
            self.inner = None
        else:
            raise SubmissionError(
                f"a '{kind}' defense produces a model by training; evaluate that model instead"
            )
        self.eval()  # inference only: an attack restores this mode, not nn.Module's default

    def forward(self, x: Tensor) -> Tensor:
        threads = torch.get_num_threads()
        try:
            if self.inner is not None:
                return self.inner(x)
            d = self.defense
            exact = d.meta.differentiable and not self.bpda_always
            if exact or not (self.adaptive and torch.is_grad_enabled()):
                x = d.purify(x)
            else:
                x = bpda(d.purify, x, getattr(d, "purify_approx", None))
            restore_torch_threads(threads)  # before the base model runs on the purified batch
            return self.base(x)
        finally:
            restore_torch_threads(threads)

    def predict_proba(self, x: Tensor) -> Tensor:
        """Class (softmax) or label (sigmoid) probabilities of the defended pipeline."""
        logits = self(x)
        return torch.sigmoid(logits) if self.base.multi_label else torch.softmax(logits, dim=1)

    def __getattr__(self, name: str) -> Any:
        """Expose the base model's attributes (``multi_label``, ``num_classes``, ``device``)."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("base"), name)
