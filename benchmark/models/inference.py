"""Batched inference: a model and images in, :class:`~benchmark.metrics.Predictions` out."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor

from benchmark.datasets.base import ImageSplit
from benchmark.metrics.base import Predictions
from benchmark.models.base import ImageClassifier


@torch.inference_mode()
def probabilities(model: ImageClassifier, batches: Iterable[Tensor]) -> np.ndarray:
    """Class (softmax) or label (sigmoid) probabilities for float [0, 1] batches, in eval mode.

    The model's training/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    memory_format = _memory_format(model)
    chunks = []
    try:
        with torch.no_grad():  # no autograd graph: about 10-15 % faster on the CPU here
            for x in batches:
                x = x.to(model.device).contiguous(memory_format=memory_format)
                chunks.append(model.predict_proba(x).cpu())
    finally:
        model.train(was_training)
    return torch.cat(chunks).double().numpy()


def _predictions(probs: np.ndarray, split: ImageSplit, seed: int) -> Predictions:
    labels = split.labels.numpy()
    return Predictions(
        probs=probs,
        labels=labels.astype(np.float64 if split.meta.multi_label else np.int64),
        class_names=split.meta.class_names,
        multi_label=split.meta.multi_label,
        seed=seed,
    )


def predict(
    model: ImageClassifier, split: ImageSplit, *, batch_size: int = 512, seed: int = 0
) -> Predictions:
    """Predictions of ``model`` on every sample of ``split``."""
    probs = probabilities(model, (x for x, _ in split.batches(batch_size)))
    return _predictions(probs, split, seed)


def predict_images(
    model: ImageClassifier,
    images: Tensor,
    split: ImageSplit,
    *,
    batch_size: int = 512,
    seed: int = 0,
) -> Predictions:
    """Predictions on float [0, 1] ``images`` that stand for the samples of ``split`` (e.g.
    their adversarial versions), scored against ``split``'s labels."""
    probs = probabilities(
        model, (images[i : i + batch_size] for i in range(0, len(images), batch_size))
    )
    return _predictions(probs, split, seed)


def _memory_format(model: torch.nn.Module) -> torch.memory_format:
    for p in model.parameters():
        if p.ndim == 4:
            channels_last = p.is_contiguous(memory_format=torch.channels_last)
            return (
                torch.channels_last
                if channels_last and not p.is_contiguous()
                else (torch.contiguous_format)
            )
    return torch.contiguous_format
