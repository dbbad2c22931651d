"""An attack on voting defenses with abstention (MedRDF): APGD aimed at the abstention threshold.

A voting defense (:class:`~benchmark.defenses.base.VotingDefense`) answers with the majority
vote over randomized copies of the image, or abstains when the vote is not clear enough
(MedRDF: the two-sided binomial test of the top class's ``n_A`` votes against
``Binom(n_A + n_B, 1/2)``, ``medrdf_xu2022.md`` eq. 5). The benchmark counts an abstention as an
error, so an image is broken as soon as the true class's share of the top two votes,
``n_y / (n_y + n_r)`` against the strongest rival ``r``, falls below the defense's abstention
share ``t`` (:meth:`~benchmark.defenses.base.VotingDefense.abstention_share`): below 1/2 the
vote is lost, between 1/2 and ``t`` it abstains. Cross-entropy on the smoothed classifier
(APGD-CE on ``soft``) aims at neither: it lowers the mean softmax, not the votes, and APGD-CE
keeps an image's clean version unless the smoothed classifier's top class changes, so an image
it has pushed into the abstention band comes back unbroken.

``apgd_vote`` ascends, with APGD, the vote margin loss

    L = log(t / (1 - t)) - (log s_y - log max_{j != y} s_j),

where ``s`` are the smoothed vote shares of
:meth:`~benchmark.defenses.base.VotingClassifier.soft_votes` (the mean over the defense's
``attack_copies`` noisy copies of ``softmax(logits / temperature)``). ``L > 0`` exactly when
``s_y / (s_y + s_r) < t``: the loss's zero is the broken/unbroken boundary of the surrogate vote,
for any class count, in the two-class view the binomial test takes. It is the negated log-space
margin rather than a difference of shares (``t - s_y + max(0, max_j s_j - s_y)``) because the
shares saturate: on a nearly unanimous vote the rival's share is tiny and a loss linear in the
shares has a gradient as tiny, while the log ratio is scale-free (like cross-entropy, it sees
the rival's share go from 1e-4 to 1e-3 as well as from 0.1 to 1), and APGD's step-size
checkpoints compare loss values across iterations, which a saturating loss makes flat. The log
shares are computed in log space (log-sum-exp over the copies), so a rival whose every copy is
far behind still has a finite loss and a gradient.

The temperature (default 0.1) trades fidelity to the hard vote against gradient: a copy's
tempered softmax is within 1% of its one-hot vote once its logit gap exceeds ``0.1 * ln 99``
(0.46 logits), so the surrogate counts votes rather than confidence, and the gradient comes
mostly from the copies near their decision boundary, the ones a small perturbation can flip. At
temperature 1 the surrogate is the mean softmax cross-entropy already attacks, which credits a
confident copy's probability mass; much below 0.1 the gradient rests on the one or two
copies nearest the boundary among the few ``attack_copies`` and becomes noisy.

The optimiser is APGD (Croce & Hein 2020, Sec. 3: step size 2 eps, momentum 0.75 after the
first step, checkpoints at 22% of the iterations then shrinking by 3% down to 6%, halving the
step and restarting from the best point when the loss oscillated or stopped improving), from
the reference implementation (``pyautoattack``) with the vote margin in the slot of its DLR
loss, as :class:`~benchmark.attacks.reference_autoattack.MarginAPGDAttack` does for the CW
margin. Unlike APGD-CE, the attack returns, per image, the iterate of highest loss over all
restarts (the loss, not the smoothed classifier's argmax, says what broken means here).

The attacked model is the defended pipeline (the evaluation's EOT model, a
:class:`~benchmark.defenses.pipeline.DefendedModel` or the voting module itself): the attack finds
the :class:`~benchmark.defenses.base.VotingClassifier` among its modules and runs every pass
through the model's forward with :meth:`~benchmark.defenses.base.VotingClassifier.tempered_votes`
open. On a model without one (the base model of the oblivious pass, where the classifier is a
single deterministic voter that never abstains) the shares are the model's own tempered
softmax and ``t = 1/2``, which makes the loss the Carlini-Wagner margin divided by the
temperature.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from pyautoattack.autopgd_base import APGDAttack
from torch import Tensor, nn

from benchmark.attacks.base import (
    Attack,
    AttackError,
    AttackMeta,
    frozen_parameters,
    register_attack,
)
from benchmark.errors import ConfigError

logger = logging.getLogger(__name__)

#: Largest abstention share used in the loss's offset (a share of 1 or more, i.e. every vote
#: abstains, only shifts the loss by a constant).
MAX_SHARE = 1 - 1e-9


def voting_classifier(model: nn.Module) -> Any:
    """The first :class:`~benchmark.defenses.base.VotingClassifier` of a voting defense among
    ``model``'s modules (the model itself, a defended pipeline's ``inner``, an EOT model's
    pipeline's), or None. Found by its ``is_vote`` marker and its defense's
    ``abstention_share``: attacks sit below the defenses layer and do not import it."""
    for module in model.modules():
        defense = getattr(module, "defense", None)
        if getattr(module, "is_vote", False) and hasattr(defense, "abstention_share"):
            return module
    return None


def vote_margin_loss(log_shares: Tensor, y: Tensor, share: float) -> Tensor:
    """Per image, ``log(t / (1 - t)) - (log s_y - log max_{j != y} s_j)``: positive exactly
    when the true class's share of the top two, ``s_y / (s_y + s_r)``, is below ``t``.

    Args:
        log_shares: (N, K) log vote shares (log of the smoothed vote).
        y: (N,) true classes.
        share: the abstention share ``t`` (clipped to [1/2, 1 - 1e-9]).
    """
    t = min(max(float(share), 0.5), MAX_SHARE)
    log_y = log_shares.gather(1, y[:, None]).squeeze(1)
    log_rival = log_shares.scatter(1, y[:, None], float("-inf")).amax(dim=1)
    return math.log(t / (1 - t)) - (log_y - log_rival)


class VoteMarginAPGD(APGDAttack):
    """The reference APGD (L-inf) with :func:`vote_margin_loss` in the slot of its DLR loss;
    ``predict`` must return log vote shares."""

    def __init__(self, predict: Any, share: float, **kwargs: Any) -> None:
        super().__init__(predict, loss="dlr", **kwargs)
        self.share = share

    def dlr_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """The vote margin (not DLR); ``x`` are the log vote shares."""
        return vote_margin_loss(x, y, self.share)


@register_attack(
    "apgd_vote",
    AttackMeta(
        description="APGD on the smoothed vote's top-two margin below the abstention share: "
        "breaks a voting defense (MedRDF) by a lost or an abstained vote",
        reference="https://arxiv.org/abs/2003.01690 Sec. 3; medrdf_xu2022.md eq. 5",
    ),
)
class APGDVoteAttack(Attack):
    """APGD on the vote margin against the abstention threshold (see the module docstring).

    Parameters: ``steps`` (100), ``n_restarts`` (1; each from a uniform random start in the
    ball, the best-loss iterate over all kept per image), ``rho`` (0.75, APGD's checkpoint
    threshold) and ``temperature`` (0.1) of the vote surrogate.
    """

    defaults = {"steps": 100, "n_restarts": 1, "rho": 0.75, "temperature": 0.1}

    def setup(self) -> None:
        p = self.params
        if int(p["steps"]) < 1 or int(p["n_restarts"]) < 1:
            raise ConfigError("apgd_vote steps and n_restarts must be >= 1")
        if not float(p["temperature"]) > 0:
            raise ConfigError("apgd_vote temperature must be > 0")
        if not 0 < float(p["rho"]) < 1:
            raise ConfigError("apgd_vote rho must be in (0, 1)")
        self.voter = voting_classifier(self.model)
        self.share = 0.5
        if self.voter is not None:
            if not self.voter.has_smoothed_vote():
                raise AttackError(
                    f"apgd_vote needs the smoothed vote: {type(self.voter).__name__} must "
                    "implement copy_logits(x) (or log_soft_votes(x, temperature))"
                )
            try:
                n = self.voter.n_votes
            except NotImplementedError as err:
                raise AttackError(f"apgd_vote needs the vote's size: {err}") from err
            self.share = float(self.voter.defense.abstention_share(n))

    def log_shares(self, x: Tensor) -> Tensor:
        """(N, K) log smoothed vote shares of ``x`` through the attacked model's forward."""
        temperature = float(self.params["temperature"])
        if self.voter is None:  # one deterministic voter: its tempered softmax
            return torch.log_softmax(self.model(x) / temperature, dim=1)
        with self.voter.tempered_votes(temperature):
            return self.model(x)

    def perturb(self, x: Tensor, y: Tensor) -> Tensor:
        p = self.params
        # The reference draws its random starts from the global RNG, which the base class has
        # seeded with the batch seed; its own seed is not used on this path.
        apgd = VoteMarginAPGD(
            self.log_shares,
            self.share,
            n_iter=int(p["steps"]),
            norm="Linf",
            eps=self.eps,
            rho=float(p["rho"]),
            device=x.device,
            logger=logger,
        )
        apgd.init_hyperparam(x)
        best = x.clone()
        best_loss = torch.full((len(x),), float("-inf"), device=x.device)
        with frozen_parameters(self.model):
            for _ in range(int(p["n_restarts"])):
                x_best, _, loss, _ = apgd.attack_single_run(x, y)
                better = loss > best_loss
                best[better] = x_best[better]
                best_loss = torch.where(better, loss, best_loss)
        return best

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg["params"]["loss"] = "vote_margin"
        # math.inf (every vote abstains) is not a JSON number
        cfg["params"]["abstention_share"] = self.share if math.isfinite(self.share) else None
        cfg["params"]["vote"] = "smoothed" if self.voter is not None else "single_model"
        return cfg
