"""Evaluating a defense: the defended pipeline under the four threat models.

* ``oblivious``: adversarial examples crafted on the undefended base model (the MDDA and MedRDF
  papers' protocol) and passed through the defense. They are the cached examples of the
  undefended run, so every defense reuses one attack.
* ``adaptive``: the attack sees the whole defended pipeline: BPDA (identity, or the defense's
  ``purify_approx``) through non-differentiable preprocessing, and expectation over
  transformation (Athalye et al. 2018, Sec. 4) for randomized defenses: the attacked model
  returns the log of the mean probability over ``eot_samples`` draws, which for a voting
  defense such as MedRDF is the smoothed soft classifier.
* ``transfer`` and ``black_box`` come from the attacks themselves (``transfer`` crafts on a
  surrogate; Square, SPSA and RayS only query the model they are given, here the defended
  pipeline).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from benchmark.datasets.base import ImageSplit
from benchmark.defenses.base import Defense, VotingClassifier, VotingDefense
from benchmark.defenses.pipeline import DefendedModel
from benchmark.metrics.base import Predictions
from benchmark.models.inference import predict


class EOTModel(nn.Module):
    """The defended pipeline as the adaptive attacker sees it.

    Args:
        defended: the pipeline, built with ``adaptive=True`` (BPDA where needed).
        samples: draws averaged per forward pass for a randomized defense (1 otherwise), sent
            through the pipeline as one batch.
    """

    #: How the draws are sent through the pipeline (part of an adaptive cell's cache key).
    layout = "batched"

    def __init__(self, defended: DefendedModel, samples: int) -> None:
        super().__init__()
        self.defended = defended
        # A voting wrapper (MedRDF) already averages its noise draws under gradient: its
        # ``soft`` path is the smoothed classifier. Drawing it again would multiply cost.
        smoothed = isinstance(defended.inner, VotingClassifier)
        self.samples = samples if defended.defense.meta.randomized and not smoothed else 1
        #: Whether one forward pass already averages over the defense's randomness.
        self.averages = smoothed or self.samples > 1
        self.eval()  # an inference pipeline (see DefendedModel): attacks restore this mode

    def forward(self, x: Tensor) -> Tensor:
        if self.samples == 1:
            return self.defended(x)
        multi = bool(self.defended.base.multi_label)
        # The draws go through the pipeline as one batch of samples x N copies (one forward
        # and one backward of the base model instead of ``samples``; the defense draws each
        # copy's randomness independently, in copy-major order).
        n = x.shape[0]
        out = self.defended(x.repeat(self.samples, *([1] * (x.dim() - 1))))
        out = out.view(self.samples, n, *out.shape[1:])
        probs = (torch.sigmoid(out) if multi else torch.softmax(out, dim=-1)).mean(0)
        probs = probs.clamp_min(1e-12)
        return torch.logit(probs.clamp_max(1 - 1e-6)) if multi else probs.log()

    def predict_proba(self, x: Tensor) -> Tensor:
        return self.defended.predict_proba(x)

    def __getattr__(self, name: str) -> Any:
        """Expose the base model's attributes (``multi_label``, ``num_classes``, ``device``)."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("defended"), name)


def inference_cost(
    base: nn.Module, defended: nn.Module, split: ImageSplit, batch_size: int, seed: int
) -> dict[str, Any]:
    """Milliseconds per image of the bare model and of the defended pipeline, and the ratio."""
    n = min(len(split), 128)
    sample = split.subset(torch.arange(n))
    t0 = time.perf_counter()
    predict(base, sample, batch_size=batch_size, seed=seed)
    t1 = time.perf_counter()
    defense = getattr(defended, "defense", None)  # None: a robust model, no pipeline
    if defense is not None:
        defense.reseed(seed)
    predict(defended, sample, batch_size=batch_size, seed=seed)
    t2 = time.perf_counter()
    base_ms, def_ms = 1000 * (t1 - t0) / n, 1000 * (t2 - t1) / n
    return {
        "images": n,
        "base_ms_per_image": base_ms,
        "defended_ms_per_image": def_ms,
        "overhead": def_ms / base_ms if base_ms > 0 else None,
    }


def defense_block(
    sub: Any, defense: Defense, threat_models: list[str], eot: int, bpda_always: bool = False
) -> dict[str, Any]:
    """The results JSON's ``defense`` block (``bpda``: whether the adaptive pass used BPDA
    through the preprocessing, because it is not differentiable or because it was asked)."""
    preprocessing = defense.meta.kind == "preprocessing"
    return {
        **sub.record(),
        "config": defense.config(),
        "threat_models": threat_models,
        "eot_samples": eot if defense.meta.randomized else 1,
        "bpda": preprocessing and (bpda_always or not defense.meta.differentiable),
        "voting": isinstance(defense, VotingDefense),
    }


def voting_module(scorer: nn.Module) -> VotingClassifier | None:
    """The :class:`VotingClassifier` of a :class:`VotingDefense`'s pipeline, if any."""
    inner = getattr(scorer, "inner", None)
    defense = getattr(scorer, "defense", None)
    if isinstance(defense, VotingDefense) and isinstance(inner, VotingClassifier):
        return inner
    return None


def apply_votes(
    scorer: nn.Module, pred: Predictions, labels: Tensor
) -> tuple[Predictions, dict[str, Any] | None]:
    """After scoring through a voting defense: mark its abstentions (counted as errors) and
    return its vote report (abstain rate, RM, Table IX breakdown). No-op otherwise."""
    inner = voting_module(scorer)
    if inner is None:
        return pred, None
    counts = inner.take_votes()
    defense: VotingDefense = scorer.defense  # type: ignore[attr-defined]
    if len(counts) != pred.n:
        return pred, None
    report = defense.vote_report(counts, labels)
    abstained = report.pop("abstained_mask").numpy()
    return replace(pred, abstained=abstained), report
