"""The defense plugin API: :class:`Defense`, its metadata and the ``DEFENSES`` registry.

A defense declares frozen metadata and implements the one hook of its kind:

* "preprocessing": ``purify(x)`` maps a float32 NCHW batch in [0, 1] to one of the same shape
  and range (median filter, JPEG, MDDA purification, ...);
* "wrapper": ``wrap(model)`` returns a module that maps such a batch to logits; a voting
  wrapper (MedRDF) subclasses :class:`VotingDefense` and returns a :class:`VotingClassifier`,
  whose votes and abstentions the evaluation reads;
* "training": ``train(model, x, y)`` returns the loss of one minibatch; ``bench train
  --defense <id>`` trains a robust model with it (the training-time defenses).

The declared flags drive the evaluation: ``randomized`` -> expectation over transformation,
``differentiable=False`` -> BPDA (the identity on the backward pass, or the defense's
``purify_approx`` when it provides one). Randomized defenses draw every random number from
``self.generator`` (a :class:`torch.Generator` on the input's device) so that
``reseed(seed)`` makes them reproducible; the conformance suite
(:mod:`benchmark.defenses.conformance`) checks that the flags match the behaviour.

The metadata lives in one place, the class's ``meta``: what the defense is (name, authors,
paper, licence, the threat models it claims) and how it behaves. A submission's
``submission.toml`` only says which class to load.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from benchmark.errors import BenchmarkError
from benchmark.registry import Registry
from benchmark.results.naming import CLAIMABLE_THREAT_MODELS

DEFENSE_KINDS = ("preprocessing", "wrapper", "training")
THREAT_MODELS = CLAIMABLE_THREAT_MODELS
"""Threat models a defense may claim (``DefenseMeta.threat_models``)."""


class SubmissionError(BenchmarkError):
    """A defense submission is malformed or fails the conformance suite."""


class IsolationError(SubmissionError):
    """The sandbox stopped or refused what a submission did (a limit, a wrong tensor): its one
    line passes through the conformance suite and the evaluation unchanged."""


@dataclass(frozen=True)
class DefenseMeta:
    """Static description of a defense: what it is and how it behaves (the one place that
    says so; a submission's record in results and on the leaderboard comes from here).

    Attributes:
        kind: "preprocessing", "wrapper" or "training".
        randomized: whether outputs depend on random draws.
        differentiable: whether gradients flow through the defense.
        forward_passes: base-model forward passes per input (inference cost).
        reference: URL or document and section the implementation follows.
        version: version of the implementation.
        license: licence of the submission.
        authors: who wrote it: the method's authors and the implementation's, e.g.
            ``("Xu, Zhang and Zhang (method)", "MedRobustBench (implementation)")``.
        description: one line shown by ``bench list defenses``.
        name: display name on the leaderboard.
        paper: the paper and the section implemented, as a citation.
        threat_models: the threat models the defense claims to be evaluated under, a
            non-empty subset of ``oblivious``, ``adaptive``, ``transfer``, ``black_box``
            (:data:`benchmark.results.naming.CLAIMABLE_THREAT_MODELS`).

    Raises:
        SubmissionError: an unknown kind or threat model, or fewer than one forward pass.
    """

    kind: str
    randomized: bool
    differentiable: bool
    forward_passes: int = 1
    reference: str = ""
    version: str = "1.0"
    license: str = ""
    authors: tuple[str, ...] = ()
    description: str = ""
    name: str = ""
    paper: str = ""
    threat_models: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Lists are accepted and frozen as tuples (the class attribute is shared).
        object.__setattr__(self, "authors", tuple(self.authors))
        object.__setattr__(self, "threat_models", tuple(self.threat_models))
        if self.kind not in DEFENSE_KINDS:
            raise SubmissionError(
                f"DefenseMeta kind '{self.kind}' is not one of {', '.join(DEFENSE_KINDS)}"
            )
        bad = [t for t in self.threat_models if t not in THREAT_MODELS]
        if bad:
            raise SubmissionError(
                f"DefenseMeta threat_models {', '.join(map(repr, bad))} unknown; claim a "
                f"subset of {', '.join(THREAT_MODELS)}"
            )
        if self.forward_passes < 1:
            raise SubmissionError("DefenseMeta forward_passes must be >= 1")


def defense_config(
    cls: str, meta: DefenseMeta, params: dict[str, Any], seed: int
) -> dict[str, Any]:
    """What defines a defense's behaviour: its class, declared meta, parameters and seed (the
    record :meth:`Defense.config` gives, in process or composed for the sandbox)."""
    return {
        "class": cls,
        "kind": meta.kind,
        "randomized": meta.randomized,
        "differentiable": meta.differentiable,
        "version": meta.version,
        "params": dict(sorted(params.items())),
        "seed": seed,
    }


class Defense:
    """Base class of every defense.

    Subclasses set ``meta`` (a :class:`DefenseMeta`) and ``defaults`` (parameter defaults), and
    override the hook of their kind. Parameters given to the constructor override the defaults;
    an unknown parameter is an error.

    Args:
        seed: seed of ``self.generator`` (randomized defenses).
        **params: parameter overrides.
    """

    meta: ClassVar[DefenseMeta]
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, seed: int = 0, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise SubmissionError(
                f"{type(self).__name__}: unknown parameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(self.defaults)) or 'none'}"
            )
        self.params: dict[str, Any] = {**self.defaults, **params}
        self.seed = seed
        self._generators: dict[str, torch.Generator] = {}
        self.setup()

    def setup(self) -> None:
        """Validate ``self.params`` and build state; raise :class:`SubmissionError` if bad."""

    # -- randomness ---------------------------------------------------------------------------
    def reseed(self, seed: int | None = None) -> None:
        """Restart every random stream from ``seed`` (default: the constructor's)."""
        if seed is not None:
            self.seed = seed
        self._generators.clear()

    def generator(self, device: torch.device | str) -> torch.Generator:
        """The defense's random generator on ``device`` (created from the seed on first use)."""
        key = str(torch.device(device))
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def rng_state(self) -> dict[str, torch.Tensor]:
        """The state of every random stream used so far, by device (for resumable training)."""
        return {key: gen.get_state() for key, gen in self._generators.items()}

    def set_rng_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore streams saved by :meth:`rng_state`."""
        for key, value in state.items():
            self.generator(key).set_state(value)

    # -- hooks --------------------------------------------------------------------------------
    def purify(self, x: Tensor) -> Tensor:
        """Preprocessing hook: float32 NCHW in [0, 1] -> same shape, in [0, 1]."""
        raise NotImplementedError(f"{type(self).__name__} is not a preprocessing defense")

    def wrap(self, model: nn.Module) -> nn.Module:
        """Wrapper hook: a module mapping a [0, 1] NCHW batch to logits (or log-scores)."""
        raise NotImplementedError(f"{type(self).__name__} is not a wrapper defense")

    def train(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Training hook: the scalar loss of one minibatch ``(x, y)`` (float32 NCHW in [0, 1],
        class indices) for ``model`` in train mode; the trainer back-propagates it and steps
        the optimiser (see :mod:`benchmark.defenses.adversarial_training`)."""
        raise NotImplementedError(f"{type(self).__name__} is not a training defense")

    def config(self) -> dict[str, Any]:
        """What defines this defense's behaviour (recorded in results and cache keys)."""
        cls = f"{type(self).__module__}.{type(self).__qualname__}"
        return defense_config(cls, self.meta, self.params, self.seed)


class VotingClassifier(nn.Module):
    """The module a :class:`VotingDefense` wraps a base model in: a vote over randomized
    copies of each input, with a smoothed differentiable path for the adaptive attack.

    A subclass implements :meth:`votes` and either :meth:`copy_logits` (from which
    :meth:`soft`, :meth:`soft_votes` and :meth:`log_soft_votes` follow) or its own :meth:`soft`;
    :meth:`forward` and :meth:`take_votes` are provided:

    * :meth:`copy_logits` ``(x) -> (N, m, K)``: the base model's logits on ``m`` randomized
      copies of each image (MedRDF: its ``attack_copies`` noisy, denoised copies),
      differentiable in ``x``. The smoothed paths below share it.
    * :meth:`soft` ``(x) -> (N, K)``: log class probabilities of the smoothed classifier (by
      default the log of the mean softmax over the copies), differentiable in ``x``. It is what
      gradient attacks see, so the evaluation does not average it again under EOT.
    * :meth:`votes` ``(x) -> (N, K)``: integer vote counts per class over the copies (no
      gradient), every row summing to :attr:`n_votes`.
    * :meth:`soft_votes` ``(x, temperature) -> (N, K)``: a differentiable surrogate of the vote
      shares, the mean over the copies of ``softmax(logits / temperature)``; as the
      temperature goes to 0 each copy's softmax becomes its one-hot vote, so the surrogate
      approaches the hard vote share over the copies. The attack on the abstention threshold
      (``apgd_vote``, :mod:`benchmark.attacks.voting`) ascends it.

    Without gradient, :meth:`forward` votes, records the counts for the evaluation
    (:meth:`take_votes`) and returns the log vote shares; under gradient it returns
    :meth:`soft`, or :meth:`log_soft_votes` while :meth:`tempered_votes` is open. Attributes
    ``base`` (the base model) and ``defense`` are expected.
    """

    #: Marks a vote for the attacks that aim at it (``apgd_vote``), which find it among a
    #: pipeline's modules without importing this layer.
    is_vote: ClassVar[bool] = True

    def has_smoothed_vote(self) -> bool:
        """Whether the subclass gives the differentiable vote (``copy_logits`` or
        ``log_soft_votes``) that a vote-aimed attack needs."""
        kind = type(self)
        return (
            kind.copy_logits is not VotingClassifier.copy_logits
            or kind.log_soft_votes is not VotingClassifier.log_soft_votes
        )

    def __init__(self, defense: VotingDefense, model: nn.Module) -> None:
        super().__init__()
        self.defense = defense
        self.base = model
        self.recorded: list[Tensor] = []
        #: While set (:meth:`tempered_votes`), the gradient path returns the tempered vote.
        self.vote_temperature: float | None = None

    @property
    def n_votes(self) -> int:
        """Votes per image of :meth:`votes` (every row's sum), the ``n`` at which
        :meth:`VotingDefense.abstention_share` applies."""
        raise NotImplementedError(f"{type(self).__name__} must define n_votes")

    def copy_logits(self, x: Tensor) -> Tensor:
        """(N, m, K) base-model logits of ``m`` randomized copies of each image,
        differentiable in ``x`` (the copies :meth:`soft` and :meth:`soft_votes` share)."""
        raise NotImplementedError(f"{type(self).__name__} must implement soft(x) or copy_logits(x)")

    def soft(self, x: Tensor) -> Tensor:
        """Smoothed log class probabilities (N, K), differentiable in ``x``: by default the log
        of the mean softmax over :meth:`copy_logits`."""
        logits = self.copy_logits(x)
        return torch.softmax(logits, dim=2).mean(dim=1).clamp_min(1e-12).log()

    def log_soft_votes(self, x: Tensor, temperature: float) -> Tensor:
        """The log of :meth:`soft_votes`, computed in log space (log-sum-exp over the
        copies): finite, with a gradient, where the shares themselves underflow (a rival
        class whose every copy is ``temperature * 100`` logits behind)."""
        if not temperature > 0:
            raise ValueError(f"the vote temperature must be > 0, got {temperature}")
        logits = self.copy_logits(x)
        log_p = torch.log_softmax(logits / temperature, dim=2)
        return torch.logsumexp(log_p, dim=1) - math.log(logits.shape[1])

    def soft_votes(self, x: Tensor, temperature: float = 0.1) -> Tensor:
        """(N, K) smoothed vote shares: the mean over the copies of
        ``softmax(logits / temperature)``, differentiable in ``x``. Each row sums to 1; as
        ``temperature`` goes to 0 it approaches the share of the copies voting for each class."""
        return self.log_soft_votes(x, temperature).exp()

    @contextlib.contextmanager
    def tempered_votes(self, temperature: float) -> Iterator[None]:
        """While open, the gradient path of :meth:`forward` returns
        :meth:`log_soft_votes` at ``temperature`` instead of :meth:`soft`, so an attack on the
        vote goes through the attacked model's own forward (and the hooks timing it)."""
        if not temperature > 0:
            raise ValueError(f"the vote temperature must be > 0, got {temperature}")
        previous, self.vote_temperature = self.vote_temperature, float(temperature)
        try:
            yield
        finally:
            self.vote_temperature = previous

    def votes(self, x: Tensor) -> Tensor:
        """(N, K) vote counts per class; each row sums to :attr:`n_votes`."""
        raise NotImplementedError(f"{type(self).__name__} must implement votes(x)")

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            if self.vote_temperature is not None:
                return self.log_soft_votes(x, self.vote_temperature)
            return self.soft(x)
        with torch.no_grad():
            counts = self.votes(x)
        self.recorded.append(counts.cpu())
        return (counts.float() / counts.sum(dim=1, keepdim=True)).clamp_min(1e-12).log()

    def take_votes(self) -> Tensor:
        """Vote counts of every voting forward since the last call, in order (an empty
        tensor if none); clears them."""
        out = torch.cat(self.recorded) if self.recorded else torch.empty(0)
        self.recorded = []
        return out


class VotingDefense(Defense):
    """A wrapper defense that classifies by a vote and may abstain (MedRDF, Xu et al. 2022,
    Algorithm 1; randomized smoothing).

    ``wrap(model)`` returns a :class:`VotingClassifier`. After the evaluation has scored a
    split through it, it passes the recorded votes to :meth:`vote_report`, counts every
    abstained sample as an error, and stores the report in the results. The conformance suite
    checks the hooks' shapes and ranges and the abstention rule's semantics.
    """

    def wrap(self, model: nn.Module) -> VotingClassifier:
        """The voting classifier around ``model`` (a :class:`VotingClassifier`)."""
        raise NotImplementedError(f"{type(self).__name__} must implement wrap(model)")

    def vote_report(self, counts: Tensor, labels: Tensor) -> dict[str, Any]:
        """The vote report of (N, K) ``counts`` against the (N,) ``labels``.

        It must hold ``abstained_mask``, a bool (N,) tensor (True: the vote abstains, scored as
        an error; the evaluation pops it), and may hold any JSON numbers. Abstention must
        depend on a sample's own votes only, never on a decisive vote (a unanimous vote of
        1000 copies), and a vote that does not abstain must not start to when its winner gains
        votes. This default never abstains and reports ``abstain_rate`` and
        ``accuracy_of_votes``; MedRDF overrides it with its binomial test (eq. 5).
        """
        pred = counts.argmax(dim=1)
        n = max(len(labels), 1)
        return {
            "abstained_mask": torch.zeros(len(counts), dtype=torch.bool),
            "abstain_rate": 0.0,
            "accuracy_of_votes": float((pred == labels.cpu()).sum()) / n,
        }

    def abstention_share(self, n: int) -> float:
        """The smallest share of the top class in the two-class view, ``n_A / (n_A + n_B)``
        against the runner-up, with which a vote of ``n = n_A + n_B`` votes passes the
        abstention rule of :meth:`vote_report`. A larger share passes too; the true class is
        broken when its share of the top two is below it (the vote is lost or abstains, an
        error either way), which is what an attack on the vote aims at. This default is 0.5:
        no abstention, the vote only has to be won. A value above 1 means that no vote of
        ``n`` passes (every vote abstains)."""
        return 0.5


DEFENSES: Registry[Any] = Registry("defense", meta_type=DefenseMeta)
"""Defenses: the ``DEFENSES`` registry (submissions register here when loaded)."""
