"""Attack interface: metadata, the template-method base class, and the ``ATTACKS`` registry.

Contract (STYLE.md Sec. 4): an attack takes float32 NCHW input in [0, 1] and labels, with eps
on the [0, 1] pixel scale (``8/255``), and returns adversarial images of the same shape. The
base ``__call__`` (torchattacks' template method) puts the model in eval mode, seeds the
attack's randomness in a forked RNG, runs ``perturb`` and restores the model's mode; a
subclass only writes ``perturb``. Every output is checked before anyone scores it: finite,
inside [0, 1] and, for bounded attacks, inside the eps-ball. A violation raises
:class:`AttackError`; it never becomes a silent number.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from benchmark.device import seeded
from benchmark.errors import BenchmarkError, ConfigError
from benchmark.registry import Registry

logger = logging.getLogger(__name__)

#: Slack for float rounding in the eps-ball and range checks (x + clamp(d) may overshoot ~1e-7).
TOLERANCE = 1e-5
NORMS = ("linf", "l2", "none")


class AttackError(BenchmarkError):
    """An attack produced an invalid adversarial batch or was misconfigured."""


@dataclass(frozen=True)
class AttackMeta:
    """Static description of a registered attack.

    Attributes:
        description: one line shown by ``bench list attacks``.
        norm: "linf", "l2" or "none" (unbounded, e.g. CW-L2: the perturbation norm is reported).
        knowledge: "white-box", "score-based", "decision-based" or "transfer".
        bounded: whether outputs must lie inside the eps-ball.
        reference: paper and section the implementation follows.
        implementation: "torchattacks" (wrapped) or "medrobustbench" (our own).
        multi_label: whether the attack supports multi-label (BCE) models.
        min_classes: smallest number of classes the attack is defined for.
    """

    description: str
    norm: str = "linf"
    knowledge: str = "white-box"
    bounded: bool = True
    reference: str = ""
    implementation: str = "medrobustbench"
    multi_label: bool = False
    min_classes: int = 2


@dataclass(frozen=True)
class AttackContext:
    """What an attack may need beyond the victim: the data it may train on and where to cache.

    Attacks that learn (GAP trains a generator on the training split) or use other models
    (transfer attacks load a surrogate from the zoo) receive this through
    :meth:`Attack.prepare` before the first batch. The test split is never part of it.

    Attributes:
        dataset: registered dataset id of the victim.
        size: image size.
        seed: the run's seed.
        data_dir: data root (None: the loader's default).
        zoo_root: model-zoo folder (None: the default zoo).
        cache_root: folder for learned attack state (e.g. GAP generators).
        model_sha256: checksum of the victim checkpoint (keys cached state).
        progress: show progress bars.
    """

    dataset: str
    size: int
    seed: int = 0
    data_dir: Any = None
    zoo_root: Any = None
    cache_root: Any = None
    model_sha256: str = ""
    progress: bool | None = None


class Attack:
    """Base class of every attack (template method).

    Subclasses declare ``meta`` and ``defaults`` (every tunable parameter with its default) and
    implement :meth:`perturb`. Construct with the victim model, ``eps`` and parameter
    overrides; call with a batch.

    Args:
        model: the victim, an :class:`~benchmark.models.ImageClassifier` (takes [0, 1] input).
        eps: perturbation bound on the [0, 1] scale (L-inf or L2 per ``meta.norm``).
        seed: base seed of the attack's randomness.
        **params: overrides of ``defaults``; unknown names are a :class:`ConfigError`.
    """

    meta: ClassVar[AttackMeta]
    defaults: ClassVar[dict[str, Any]] = {}
    name: ClassVar[str] = ""
    #: Default step size is ``alpha_factor * eps / steps`` when ``alpha`` is left unset.
    alpha_factor: ClassVar[float] = 1.0

    def __init__(self, model: nn.Module, *, eps: float, seed: int = 0, **params: Any) -> None:
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise ConfigError(
                f"attack '{self.name}' has no parameter(s) {sorted(unknown)}; "
                f"valid: {sorted(self.defaults)}"
            )
        if not eps >= 0:
            raise ConfigError(f"attack '{self.name}': eps must be >= 0, got {eps}")
        self.model = model
        self.eps = float(eps)
        self.seed = int(seed)
        self.params: dict[str, Any] = {**self.defaults, **params}
        #: Norm and boundedness the output is checked against (a transfer attack takes its
        #: base attack's).
        self.norm: str = self.meta.norm
        self.bounded: bool = self.meta.bounded
        self.prepared = False
        num_classes = int(getattr(model, "num_classes", 0))
        if num_classes and num_classes < self.meta.min_classes:
            raise AttackError(
                f"attack '{self.name}' needs at least {self.meta.min_classes} classes, the model "
                f"has {num_classes}"
            )
        if getattr(model, "multi_label", False) and not self.meta.multi_label:
            raise AttackError(f"attack '{self.name}' does not support multi-label models")
        self.setup()

    def setup(self) -> None:
        """Hook for subclasses: build helpers once (e.g. the torchattacks object)."""

    def validate(self, context: AttackContext) -> None:
        """Cheap check that :meth:`prepare` can succeed (e.g. a surrogate exists); the runner
        calls it for every attack before any work."""

    def prepare(self, context: AttackContext) -> None:
        """Hook for attacks that need data or other models before attacking (GAP, transfer).

        The runner calls it once, before the first batch that is not already cached.
        """

    # -- the template method ------------------------------------------------------------------
    def __call__(self, x: Tensor, y: Tensor, *, seed: int | None = None) -> Tensor:
        """Adversarial versions of ``x`` (float32 NCHW in [0, 1]) for labels ``y``.

        Args:
            x: clean batch.
            y: labels (int64 (N,) or float (N, L) for multi-label models).
            seed: seed of this batch's randomness (default: the attack's ``seed``).

        Raises:
            AttackError: the output is not finite, leaves [0, 1] or leaves the eps-ball.
        """
        check_input(x)
        model = self.model
        was_training = model.training
        model.eval()
        try:
            with seeded(self.seed if seed is None else seed, x.device), torch.enable_grad():
                x_adv = self.perturb(x.detach(), y.detach()).detach()
        finally:
            model.train(was_training)
        check_adversarial(
            x, x_adv, eps=self.eps, norm=self.norm, bounded=self.bounded, name=self.name
        )
        return x_adv

    def perturb(self, x: Tensor, y: Tensor) -> Tensor:
        """Return the adversarial batch; the base class handles mode, seeding and checks."""
        raise NotImplementedError

    def step_size(self) -> float:
        """``alpha`` if set, else ``alpha_factor * eps / steps`` (the default of every
        iterative attack; the papers mostly leave it unstated, so it is always recorded)."""
        alpha = self.params.get("alpha")
        if alpha is not None:
            return float(alpha)
        return self.alpha_factor * self.eps / int(self.params.get("steps", 1))

    # -- description --------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The fully resolved configuration (name, eps, norm, seed, every parameter; an unset
        ``alpha`` is replaced by the step size actually used)."""
        params = dict(sorted(self.params.items()))
        if "alpha" in params and params["alpha"] is None:
            params["alpha"] = self.step_size()
        return {
            "name": self.name,
            "eps": self.eps,
            "norm": self.norm,
            "seed": self.seed,
            "params": params,
            "implementation": self.implementation(),
        }

    def implementation(self) -> str:
        """Which code runs: a torchattacks class or our own, for the results file."""
        return f"medrobustbench.{type(self).__name__}"

    def loss_name(self) -> str:
        """The loss the attack ascends: BCE on all labels for multi-label models, else CE."""
        return "bce" if getattr(self.model, "multi_label", False) else "ce"


def check_input(x: Tensor) -> None:
    """Refuse inputs that break the tensor contract (float32 NCHW in [0, 1])."""
    if x.dtype != torch.float32 or x.ndim != 4:
        raise AttackError(f"attack input must be float32 NCHW, got {x.dtype} {tuple(x.shape)}")
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise AttackError("attack input must lie in [0, 1]: normalisation belongs in the model")


def perturbation_norms(x: Tensor, x_adv: Tensor) -> dict[str, Tensor]:
    """Per-sample L-inf and L2 norms of ``x_adv - x``."""
    delta = (x_adv - x).flatten(1)
    return {"linf": delta.abs().amax(dim=1), "l2": delta.norm(dim=1)}


def check_adversarial(
    x: Tensor, x_adv: Tensor, *, eps: float, norm: str, bounded: bool, name: str = "attack"
) -> None:
    """Raise :class:`AttackError` unless ``x_adv`` is finite, in [0, 1] and in the eps-ball."""
    if x_adv.shape != x.shape:
        raise AttackError(f"{name} returned shape {tuple(x_adv.shape)} for {tuple(x.shape)}")
    if not torch.isfinite(x_adv).all():
        raise AttackError(f"{name} returned non-finite values")
    lo, hi = float(x_adv.min()), float(x_adv.max())
    if lo < -TOLERANCE or hi > 1 + TOLERANCE:
        raise AttackError(f"{name} left the valid range [0, 1]: min {lo:.6f}, max {hi:.6f}")
    if bounded and norm in ("linf", "l2"):
        worst = float(perturbation_norms(x, x_adv)[norm].max()) if len(x) else 0.0
        if worst > eps + TOLERANCE:
            raise AttackError(
                f"{name} left the {norm} eps-ball: perturbation norm {worst:.6f} > eps {eps:.6f}"
            )


@contextlib.contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[None]:
    """Temporarily stop gradients to the weights: an attack only needs d loss / d input."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


ATTACKS: Registry[type[Attack]] = Registry("attack", meta_type=AttackMeta)


def register_attack(name: str, meta: AttackMeta):
    """Class decorator: register an :class:`Attack` subclass under ``name``."""

    def decorator(cls: type[Attack]) -> type[Attack]:
        cls.name = name
        ATTACKS.register(name, cls, meta=meta)
        return cls

    return decorator


def build_attack(
    name: str, model: nn.Module, *, eps: float, seed: int = 0, **params: Any
) -> Attack:
    """Instantiate the registered attack ``name`` against ``model``."""
    return ATTACKS.get(name)(model, eps=eps, seed=seed, **params)
