"""Where an attack's time goes: the seconds spent in a model's forward and backward passes.

An attack's wall time is the model's passes plus the attack's own arithmetic, Python and data
movement. :class:`PassTimer` measures the first part directly, with hooks on the attacked
module: a forward pass is timed from its pre-hook to its hook; a backward pass through the
module from the moment the gradient of its output is computed (a hook on the output tensor) to
the moment the gradient of its input is (a hook on the input tensor, when the input requires a
gradient, as in every gradient attack). On CUDA each hook synchronises the device first, so
the times are the kernels' and not their launch; this adds a little to the run it measures.

The protocol cost figure (``benchmarks/protocol_cost.py``) reads these times from the results
files, so the share of a protocol run spent in the model is measured, not modelled.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any

import torch


@dataclass
class PassTimes:
    """Seconds and images of the forward passes (with and without autograd) and the backward
    passes of one module."""

    forward_seconds: float = 0.0
    backward_seconds: float = 0.0
    forward_images: int = 0
    gradient_forward_images: int = 0
    backward_images: int = 0

    def since(self, before: PassTimes) -> dict[str, Any]:
        """``self - before``, field by field, as JSON data: the share of a timer's totals
        spent after ``before`` was copied (e.g. one batch's, kept with it in a cache)."""
        return {f.name: getattr(self, f.name) - getattr(before, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PassTimes:
        """The times :meth:`since` wrote (unknown keys ignored, missing ones zero)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def __add__(self, other: PassTimes) -> PassTimes:
        """Field-by-field sum (a new object)."""
        return PassTimes(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    def record(self) -> dict[str, Any]:
        """The results JSON's fields (seconds rounded to the millisecond)."""
        return {
            "model_forward_seconds": round(self.forward_seconds, 3),
            "model_backward_seconds": round(self.backward_seconds, 3),
            "forward_images": self.forward_images,
            "gradient_forward_images": self.gradient_forward_images,
            "backward_images": self.backward_images,
        }


@dataclass
class PassTimer:
    """Context manager timing every forward and backward pass of ``module`` while it is open.

    Nested calls (a module that calls itself) are timed once, at the outermost call.
    """

    module: torch.nn.Module
    times: PassTimes = field(default_factory=PassTimes)
    _depth: int = 0
    _start: float = 0.0
    _handles: list[Any] = field(default_factory=list)

    def _now(self, tensor: torch.Tensor | None = None) -> float:
        if tensor is not None and tensor.is_cuda:
            torch.cuda.synchronize(tensor.device)
        return time.perf_counter()

    def _pre(self, _module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        self._depth += 1
        if self._depth == 1:
            x = args[0] if args and isinstance(args[0], torch.Tensor) else None
            self._start = self._now(x)

    def _post(self, _module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
        self._depth -= 1
        if self._depth or not isinstance(output, torch.Tensor):
            return
        self.times.forward_seconds += self._now(output) - self._start
        n = len(output)
        self.times.forward_images += n
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if not output.requires_grad:
            return
        self.times.gradient_forward_images += n
        if x is None or not x.requires_grad:
            return
        began: list[float] = []

        def output_grad(grad: torch.Tensor) -> None:
            began.append(self._now(grad))

        def input_grad(grad: torch.Tensor) -> None:
            if began:  # one backward pass from this output reached the input
                self.times.backward_seconds += self._now(grad) - began.pop()
                self.times.backward_images += n

        output.register_hook(output_grad)
        x.register_hook(input_grad)

    def __enter__(self) -> PassTimer:
        self._handles = [
            self.module.register_forward_pre_hook(self._pre),
            self.module.register_forward_hook(self._post),
        ]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
