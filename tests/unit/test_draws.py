"""Worst-of-draws scoring: a randomized defense answers each image R times and the image is
correct only if every answer is; the single-draw figure is the first draw's, which is what a
one-draw run reports."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from benchmark.datasets.base import load_split, to_float
from benchmark.defenses.base import Defense, DefenseMeta
from benchmark.defenses.pipeline import DefendedModel
from benchmark.evaluation.draws import draw_seed, effective_draws, score_draws, worst_of
from benchmark.metrics.adversarial import correct_mask
from benchmark.metrics.base import Predictions
from benchmark.models.inference import predict_images
from benchmark.results.outcomes import unpack_outcomes


class Noise(Defense):
    """Adds strong Gaussian noise: the answers near the boundary change from draw to draw."""

    meta = DefenseMeta(kind="preprocessing", randomized=True, differentiable=True)
    defaults: ClassVar[dict[str, float]] = {"sigma": 0.5}

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        gen = self.generator(x.device)
        noise = torch.randn(x.shape, generator=gen, device=x.device)
        return (x + float(self.params["sigma"]) * noise).clamp(0, 1)


class Fixed(Noise):
    meta = DefenseMeta(kind="preprocessing", randomized=False, differentiable=True)

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        return x


class MeanThreshold(torch.nn.Module):
    """Class 1 when the image's mean grey level is above ``t``: images near ``t`` change
    answer under noise."""

    multi_label = False
    num_classes = 2
    device = torch.device("cpu")

    def __init__(self, t: float) -> None:
        super().__init__()
        self.t = t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = 50 * (x.mean(dim=(1, 2, 3)) - self.t)
        return torch.stack([-m, m], dim=1)

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self(x), dim=1)


def _pipeline(defense: Defense, t: float = 0.5) -> DefendedModel:
    return DefendedModel(MeanThreshold(t), defense).eval()


def test_worst_of_takes_the_first_wrong_answer():
    labels = np.array([0, 1, 0])
    names = ("a", "b")
    right = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    wrong_last = np.array([[0.9, 0.1], [0.3, 0.7], [0.4, 0.6]])
    a, b = Predictions(right, labels, names), Predictions(wrong_last, labels, names)
    combined = worst_of([a, b])
    assert correct_mask(combined).tolist() == [True, True, False]
    assert np.array_equal(combined.probs[2], wrong_last[2])
    assert np.array_equal(combined.probs[:2], right[:2])


def test_score_draws_is_the_and_of_independent_draws(shared_data):
    split = load_split("breastmnist", "test", size=28, data_dir=shared_data)
    split = split.subset(torch.arange(64))
    images = to_float(split.images)
    # the threshold at the median mean grey level: half the images sit close to it
    pipeline = _pipeline(Noise(sigma=0.3), float(images.mean(dim=(1, 2, 3)).median()))
    pred, _, record = score_draws(pipeline, images, split, seed=3, draws=5)
    by_hand = []
    for r in range(5):
        pipeline.defense.reseed(draw_seed(3, r))
        by_hand.append(correct_mask(predict_images(pipeline, images, split, seed=3)))
    all_right = np.logical_and.reduce(by_hand)
    assert np.array_equal(correct_mask(pred), all_right)
    # the noise flips some answers between draws: worst-of-5 is strictly below one draw
    assert all_right.sum() < by_hand[0].sum()
    assert record["R"] == 5
    assert record["single_draw_accuracy"]["value"] == by_hand[0].mean()
    assert np.array_equal(
        unpack_outcomes(record["single_draw_outcomes"]["correct"], 64), by_hand[0]
    )
    assert record["accuracy_per_draw"] == [float(c.mean()) for c in by_hand]
    # draw 0 is the run seed: the single-draw figure is a one-draw run's
    one, _, none = score_draws(pipeline, images, split, seed=3, draws=1)
    assert none is None and np.array_equal(correct_mask(one), by_hand[0])


def test_deterministic_pipelines_are_scored_once():
    assert effective_draws(_pipeline(Noise()), 5) == 5
    assert effective_draws(_pipeline(Fixed()), 5) == 1
    assert effective_draws(MeanThreshold(0.5), 5) == 1


class _Peek:
    """An "attack" that returns its input unchanged and records the pipeline's logits on it:
    the defense draws the attacker sees while crafting."""

    prepared = True
    name = "peek"

    def __init__(self, model: torch.nn.Module) -> None:
        self.model, self.seen = model, []

    def config(self) -> dict:
        return {"name": self.name}

    def __call__(self, x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> torch.Tensor:
        with torch.no_grad():
            self.seen.append(self.model(x))
        return x


def test_an_attack_on_a_randomized_pipeline_never_sees_a_scoring_draw(shared_data, tmp_path):
    """The attack draws the defense's noise from each batch's crafting seed, not from the
    scoring draws' seeds: crafting used to restart the defense at the run seed, which is draw
    0's, so the first forward of batch 0 saw exactly the noise its images were scored with.
    Each batch's draws are also fixed by its own seed, so a resumed cell crafts the same."""
    from benchmark.attacks.presets import AttackCell
    from benchmark.evaluation.adversarial import batch_seed, craft_cell
    from benchmark.evaluation.cache import AdversarialCache
    from benchmark.evaluation.draws import craft_seed

    split = load_split("breastmnist", "test", size=28, data_dir=shared_data)
    split = split.subset(torch.arange(40))
    images = to_float(split.images)
    pipeline = _pipeline(Noise(sigma=0.3), float(images.mean(dim=(1, 2, 3)).median()))

    def craft(cache_dir, peek):
        return craft_cell(
            pipeline,
            split,
            AttackCell.make("fgsm", "2/255"),
            peek,
            indices=torch.arange(len(split)),
            model_sha256="m",
            seed=3,
            batch_size=16,
            cache=AdversarialCache(cache_dir),
            progress=False,
        )

    peek = _Peek(pipeline)
    craft(tmp_path / "a", peek)
    assert len(peek.seen) == 3  # 40 images in batches of 16
    for r in range(5):  # the scoring draws of the first batch's images
        pipeline.defense.reseed(draw_seed(3, r))
        with torch.no_grad():
            scored = pipeline(images[:16])
        assert not torch.allclose(peek.seen[0], scored)
    # what batch 1 saw depends on its own seed only, not on batch 0 having run before it
    pipeline.defense.reseed(craft_seed(batch_seed(3, 16)))
    with torch.no_grad():
        assert torch.equal(peek.seen[1], pipeline(images[16:32]))
    assert (
        len(
            {craft_seed(batch_seed(3, s)) for s in (0, 16, 32)}
            | {draw_seed(3, r) for r in range(5)}
        )
        == 8
    )


def test_examples_crafted_on_a_defense_are_keyed_by_its_whole_submission(
    tiny_models, shared_data, tmp_path
):
    """A defended pass's cache key holds the submission's folder sha256 (every file, not only
    the defense class's) and, for a randomized defense, the crafting-seed rule; it is the key
    craft_cell stores the examples under (the estimate, the memory plan and the figures look
    them up by it); oblivious passes (crafted on the base model) keep the base model's key."""
    from benchmark.evaluation import EvaluationConfig
    from benchmark.evaluation.adversarial import craft_cell
    from benchmark.evaluation.cache import AdversarialCache
    from benchmark.evaluation.plan import build_plan

    config = EvaluationConfig.from_options(
        dataset="breastmnist",
        arch="tiny_cnn",
        attacks="fgsm",
        defense="random_resize_pad",
        threat_models=["oblivious", "adaptive"],
        n_examples=8,
        eot_samples=2,
        sanity_attack=False,
    )
    cache = AdversarialCache(tmp_path / "cache")
    plan = build_plan(
        config, data_dir=shared_data, zoo=tiny_models["zoo"], cache=cache, progress=False
    )
    try:
        by_tm = {p.threat_model.value: p for p in plan.passes}
        assert by_tm["oblivious"].key_extra is None
        adaptive = by_tm["adaptive"]
        assert adaptive.key_extra["submission"] == plan.submission.sha256
        assert adaptive.key_extra["defense_draws"] == "craft_seed per batch"
        assert not cache.has(plan.pass_key(adaptive))
        craft_cell(**plan.cell_arguments(adaptive), cache=cache, progress=False)
        assert cache.has(plan.pass_key(adaptive))  # found where it was stored
    finally:
        plan.close()
