"""AutoAttack from the reference implementation (Croce & Hein, ICML 2020), ``pyautoattack``.

``autoattack_ref`` hands the batch to ``pyautoattack.AutoAttack.run_standard_evaluation``, the
authors' own driver: each sub-attack runs only on the images still robust and an image counts
as broken by the first sub-attack that fools it (the per-image worst case). Our side is the
template method (eval mode, seeding, output checks), the class-count substitutions below,
recorded budgets and the reference's warnings routed to logging.

What runs, by class count K (Croce & Hein 2020, Sec. 4 and the authors' ``flags_doc.md``):

* K >= 4: ``version="standard"``: APGD-CE (100 iterations, 1 restart), APGD-T (targeted DLR,
  ``min(K - 1, 9)`` target classes), FAB-T (same targets), Square (5000 queries). The only
  change to the reference's settings is the number of target classes, ``min(K - 1, 9)``
  instead of 9, as the reference's own class-count check asks: more targets than K - 1 classes
  index past the logits.
* K == 3: targeted DLR needs 4 classes (its denominator uses z_pi3 and z_pi4), so APGD-T is
  replaced by untargeted APGD-DLR; FAB-T runs with its 2 targets (``version="custom"``).
* K == 2 (``version="custom"``): DLR is undefined (its denominator needs a third logit) and a
  targeted attack has a single target, so APGD-CE, APGD on the Carlini-Wagner margin loss
  ``max_{j != y} z_j - z_y`` (for K = 2 simply ``z_other - z_y``, DLR's numerator without
  its scale normalisation; Carlini & Wagner 2017, Sec. V.A), untargeted FAB and Square run,
  each at the standard budget (1 restart). For K = 2 cross-entropy is a monotone function of
  that margin, so with the reference's shared seed the two APGD runs take the same steps
  except where float32 saturates the cross-entropy gradient (confident logits): the margin run
  is the guard against exactly that gradient masking.

``version="rand"`` is the reference's version for randomized defenses: APGD-CE and APGD-DLR
(APGD-margin for K = 2) with ``eot_iter`` gradient draws per step, one restart.

``version="convergence"`` is the protocol's convergence check (docs/protocol.md), not an
AutoAttack version: only the white-box APGD sub-attacks of the standard run, APGD-CE and
APGD-margin (K = 2), APGD-DLR (K = 3) or APGD-T (K >= 4), with ``steps`` iterations and
``restarts`` restarts for the untargeted ones (APGD-T keeps the reference's one restart per
target class: its ``min(K - 1, 9)`` targets are its restarts). The evaluation runs it with
twice the protocol's iterations on the images still robust
(:mod:`benchmark.evaluation.convergence`).

Per call, :attr:`ReferenceAutoAttack.records` gains which sub-attack broke each image and the
reference's warnings (randomness, zero gradients, Square beating the gradient attacks), the
evidence the protocol's convergence checks read.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import pyautoattack
import torch
from pyautoattack import AutoAttack
from pyautoattack.autopgd_base import APGDAttack
from torch import Tensor

from benchmark.attacks.base import Attack, AttackMeta, frozen_parameters, register_attack
from benchmark.errors import ConfigError
from benchmark.results.protocols import autoattack_subattacks

logger = logging.getLogger(__name__)
#: The reference logs (progress at DEBUG, its checks at WARNING) go here, not to 'auto-attack'.
REFERENCE_LOGGER = logging.getLogger(f"{__name__}.pyautoattack")

VERSIONS = ("standard", "rand", "convergence")


def margin_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Carlini-Wagner margin ``max_{j != y} z_j - z_y`` per sample (positive = misclassified).

    Args:
        logits: (N, K) logits.
        y: (N,) true classes.
    """
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    return others.amax(dim=1) - z_y


class MarginAPGDAttack(APGDAttack):
    """The reference APGD with the CW margin loss in its ``'dlr'`` slot (defined for K = 2).

    The reference's driver runs ``apgd.loss = 'dlr'`` for ``'apgd-dlr'``; this subclass only
    changes what that loss computes, so the driver, step-size schedule and restarts are the
    reference's.
    """

    def dlr_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """The CW margin (not DLR): see the class docstring."""
        return margin_loss(x, y)


def set_apgd_iterations(apgd: APGDAttack, n_iter: int) -> None:
    """Set APGD's iterations and the checkpoints derived from them, as its ``__init__`` does
    (Croce & Hein 2020, Sec. 3.2: p_1 = 0.22, checkpoint step 0.03, minimum 0.06)."""
    apgd.n_iter = n_iter
    apgd.n_iter_orig = n_iter
    apgd.n_iter_2 = max(int(0.22 * n_iter), 1)
    apgd.n_iter_min = max(int(0.06 * n_iter), 1)
    apgd.size_decr = max(int(0.03 * n_iter), 1)


@dataclass
class SubattackRecord:
    """What one call did: per image, the sub-attack that broke it first ("clean" when the
    clean image is already misclassified, None when it stayed robust), robust counts after
    each sub-attack, the reference's warnings and each sub-attack's wall time."""

    broken_by: list[str | None]
    robust_after: dict[str, int]
    flags: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


class _WarningCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@register_attack(
    "autoattack_ref",
    AttackMeta(
        description="AutoAttack, reference implementation (pyautoattack): APGD-CE, APGD-T, "
        "FAB-T, Square at the published budget; K = 2: APGD-CE, APGD-margin, FAB, Square",
        reference="https://arxiv.org/abs/2003.01690",
        implementation="pyautoattack",
    ),
)
class ReferenceAutoAttack(Attack):
    """AutoAttack run by the authors' code (``pyautoattack``), standard version by default.

    Parameters: ``steps`` (APGD and FAB iterations, 100), ``n_queries`` (Square, 5000),
    ``version`` ("standard", "rand" or "convergence"), ``eot_iter`` (rand only, 20) and
    ``restarts`` (convergence only: restarts of the untargeted APGD runs, 3). The sub-attacks and
    their resolved budgets are in ``config()["reference"]``; see the module docstring for the
    class-count substitutions. The reference's seed (which it gives every sub-attack) is drawn
    per call from the RNG the base class seeds with the batch seed, so a run is reproducible
    and the runner's per-batch seeds take effect.
    """

    defaults = {
        "steps": 100,
        "n_queries": 5000,
        "version": "standard",
        "eot_iter": 20,
        "restarts": 3,
    }

    def setup(self) -> None:
        if self.params["version"] not in VERSIONS:
            raise ConfigError(
                f"autoattack_ref version must be one of {VERSIONS}, got '{self.params['version']}'"
            )
        for name in ("steps", "n_queries", "eot_iter", "restarts"):
            if int(self.params[name]) < 1:
                raise ConfigError(f"autoattack_ref {name} must be >= 1")
        self.records: list[SubattackRecord] = []

    @property
    def num_classes(self) -> int:
        return int(self.model.num_classes)

    def attacks_to_run(self) -> list[str]:
        """The reference's names of the sub-attacks, in order ('apgd-dlr' is APGD-margin for
        K = 2)."""
        return autoattack_subattacks(self.params["version"], self.num_classes)

    def build(self, device: torch.device | str = "cpu", seed: int | None = None) -> AutoAttack:
        """The configured ``pyautoattack.AutoAttack`` for this model's class count."""
        k, version = self.num_classes, self.params["version"]
        steps, n_target = int(self.params["steps"]), min(self.num_classes - 1, 9)
        seed = self.seed if seed is None else seed
        common = {"eps": self.eps, "norm": "Linf", "seed": seed, "device": device}
        if version == "rand" or (version == "standard" and k >= 4):
            aa = AutoAttack(self.model, version=version, **common)
        else:
            aa = AutoAttack(self.model, version="custom", attacks=self.attacks_to_run(), **common)
            # 'custom' keeps the constructor's 5 restarts; the standard budget is 1.
            aa.apgd.n_restarts = 1
            aa.fab.n_restarts = 1
            if version == "convergence":
                aa.apgd.n_restarts = int(self.params["restarts"])
        if k == 2:  # same settings, the CW margin in the 'dlr' slot
            old = aa.apgd
            aa.apgd = MarginAPGDAttack(
                self.model,
                n_restarts=old.n_restarts,
                n_iter=old.n_iter,
                eps=self.eps,
                norm="Linf",
                eot_iter=old.eot_iter,
                rho=old.thr_decr,
                seed=seed,
                device=device,
                logger=REFERENCE_LOGGER,
            )
        if version == "rand":
            aa.apgd.eot_iter = int(self.params["eot_iter"])
        aa.logger = REFERENCE_LOGGER
        aa.apgd.logger = REFERENCE_LOGGER
        aa.apgd_targeted.logger = REFERENCE_LOGGER
        aa.apgd_targeted.n_target_classes = n_target
        aa.fab.n_target_classes = n_target
        set_apgd_iterations(aa.apgd, steps)
        set_apgd_iterations(aa.apgd_targeted, steps)
        aa.fab.n_iter = steps
        aa.square.n_queries = int(self.params["n_queries"])
        return aa

    def perturb(self, x: Tensor, y: Tensor) -> Tensor:
        # The reference re-seeds the global RNG with its own seed inside every sub-attack; draw
        # it from the batch's forked RNG so the runner's per-batch seeds reach it.
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
        aa = self.build(device=x.device, seed=seed)
        calls, seconds, clean = _record_calls(aa)
        collector = _WarningCollector()
        REFERENCE_LOGGER.addHandler(collector)
        trace = sys.gettrace()  # the reference's dynamic-defense check clears the tracer
        try:
            with frozen_parameters(self.model):  # FAB backpropagates to the weights otherwise
                x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=max(len(x), 1))
        finally:
            sys.settrace(trace)
            REFERENCE_LOGGER.removeHandler(collector)
        # The reference's class-count warning is about DLR, which the substitutions replace.
        flags = [m for m in collector.messages if not m.startswith("with only")]
        self.records.append(self._record(x, y, calls, flags, seconds, clean))
        return x_adv

    def _record(
        self,
        x: Tensor,
        y: Tensor,
        calls: list[tuple[str, Tensor]],
        flags: list[str],
        seconds: dict[str, float],
        clean: list[Tensor] | None = None,
    ) -> SubattackRecord:
        if clean:  # the driver's own clean check (a randomized model answers differently)
            robust = torch.cat(clean) == y.cpu()
        else:
            with torch.no_grad():
                robust = (self.model(x).argmax(1) == y).cpu()
        broken: list[str | None] = [None if r else "clean" for r in robust.tolist()]
        after: dict[str, int] = {"clean": int(robust.sum())}
        # One batch per sub-attack (batch_size = len(x)): call i saw the still-robust images
        # in index order, exactly as the reference's driver selects them.
        for name, fooled in calls:
            idx = robust.nonzero().flatten()
            for i in idx[fooled].tolist():
                broken[i] = name
            robust[idx[fooled]] = False
            after[name] = int(robust.sum())
        times = {k: round(v, 3) for k, v in seconds.items()}
        return SubattackRecord(broken, after, list(flags), times)

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        if self.params["version"] != "rand":  # eot_iter is unused
            cfg["params"].pop("eot_iter")
        if self.params["version"] != "convergence":  # restarts is unused
            cfg["params"].pop("restarts")
        cfg["reference"] = self.reference_config()
        return cfg

    def reference_config(self) -> dict[str, Any]:
        """The reference's version, sub-attacks and their resolved budgets."""
        aa = self.build()
        k = self.num_classes
        apgd = {"n_iter": aa.apgd.n_iter, "n_restarts": aa.apgd.n_restarts, "rho": aa.apgd.thr_decr}
        apgd["eot_iter"] = aa.apgd.eot_iter
        subattacks: dict[str, dict[str, Any]] = {
            "apgd-ce": {"loss": "ce", **apgd},
            "apgd-dlr": {"loss": "cw_margin" if k == 2 else "dlr", **apgd},
            "apgd-t": {
                "loss": "dlr-targeted",
                "n_iter": aa.apgd_targeted.n_iter,
                "n_restarts": aa.apgd_targeted.n_restarts,
                "n_target_classes": aa.apgd_targeted.n_target_classes,
            },
            "fab": {"targeted": False, "n_iter": aa.fab.n_iter, "n_restarts": aa.fab.n_restarts},
            "fab-t": {
                "targeted": True,
                "n_iter": aa.fab.n_iter,
                "n_restarts": 1,  # the reference's driver sets it for fab-t
                "n_target_classes": aa.fab.n_target_classes,
            },
            "square": {
                "n_queries": aa.square.n_queries,
                "p_init": aa.square.p_init,
                "n_restarts": aa.square.n_restarts,
                "loss": aa.square.loss,
            },
        }
        out = {
            "package": "pyautoattack",
            "package_version": pyautoattack.__version__,
            "version": aa.version,
            "attacks_to_run": list(aa.attacks_to_run),
            "subattacks": {name: subattacks[name] for name in aa.attacks_to_run},
            "num_classes": k,
            "substitution": self.substitution(),
        }
        return out

    def substitution(self) -> str:
        """How this run departs from the reference's standard version, in words."""
        k = self.num_classes
        if self.params["version"] == "rand":
            base = "reference rand version (APGD-CE, APGD-DLR with EOT)"
            if k == 2:
                return base + "; K=2: DLR undefined, APGD on the CW margin loss z_other - z_y"
            return base
        if self.params["version"] == "convergence":
            base = "convergence check: the standard version's APGD sub-attacks only"
            if k == 2:
                return base + "; K=2: APGD on the CW margin loss z_other - z_y"
            if k == 3:
                return base + "; K=3: untargeted APGD-DLR"
            return base
        if k == 2:
            return (
                "K=2: DLR and targeted attacks undefined; APGD-T -> APGD on the CW margin loss "
                "max_{j!=y} z_j - z_y (= z_other - z_y), FAB-T -> untargeted FAB, 1 restart each"
            )
        if k == 3:
            return (
                "K=3: targeted DLR undefined; APGD-T -> untargeted APGD-DLR; FAB-T with 2 targets"
            )
        if k < 10:
            return f"none (standard; n_target_classes = min(K-1, 9) = {k - 1})"
        return "none (standard)"

    def implementation(self) -> str:
        return f"pyautoattack.AutoAttack {pyautoattack.__version__} (fra31/auto-attack)"


def _record_calls(
    aa: AutoAttack,
) -> tuple[list[tuple[str, Tensor]], dict[str, float], list[Tensor]]:
    """Record, per sub-attack call, its name, which of its inputs it fooled (read from the
    driver's own decision forward, the ``get_logits`` call that follows every ``perturb``) and
    its wall time; and the driver's clean predictions (its last forward before the first
    sub-attack, after its own checks: with one batch, the clean check), the set it attacks."""
    calls: list[tuple[str, Tensor]] = []
    seconds: dict[str, float] = {}
    pending: list[tuple[str, Tensor]] = []
    clean: list[Tensor] = []
    started: list[bool] = []

    def wrap(obj: Any, name_of: Any) -> None:
        inner = obj.perturb

        def perturb(x: Tensor, y: Tensor, *args: Any, **kwargs: Any) -> Tensor:
            name = name_of()
            started.append(True)
            pending.append((name, y))
            start = time.perf_counter()
            try:
                return inner(x, y, *args, **kwargs)
            finally:
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start

        obj.perturb = perturb

    wrap(aa.apgd, lambda: "apgd-ce" if aa.apgd.loss == "ce" else "apgd-dlr")
    wrap(aa.apgd_targeted, lambda: "apgd-t")
    wrap(aa.fab, lambda: "fab-t" if aa.fab.targeted else "fab")
    wrap(aa.square, lambda: "square")
    get_logits = aa.get_logits

    def logits(x: Tensor) -> Tensor:
        out = get_logits(x)
        if pending:
            name, y = pending.pop()
            calls.append((name, (out.argmax(1) != y).cpu()))
        elif not started:  # the checks' forwards, then the clean check (one batch): keep the last
            clean[:] = [out.argmax(1).cpu()]
        return out

    aa.get_logits = logits
    return calls, seconds, clean
