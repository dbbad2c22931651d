"""Batched inference: a model and images in, :class:`~benchmark.metrics.Predictions` out."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor

from benchmark.datasets.base import ImageSplit
from benchmark.metrics.base import Predictions
from benchmark.models.base import ImageClassifier

SCORING_CHANNELS_LAST = True
"""Score on the CPU with channels-last weights (:func:`scoring_layout`). benchmarks/levers.py,
idle, 2 threads: the ResNet-18 forward pass is 1.19x faster channels-last, the input-gradient
pass attacks run 0.96x (slower), and all 624 PneumoniaMNIST test predictions are unchanged,
clean and under PGD-10 at 2/255 and 8/255 (logits within 6e-6). So scoring passes switch
the layout and attacks keep the contiguous one."""


@contextmanager
def scoring_layout(model: torch.nn.Module) -> Iterator[torch.memory_format]:
    """For the duration of a no-grad scoring pass on the CPU, hold ``model``'s 4-d weights
    channels-last and yield the memory format its inputs should take. The original weight
    tensors are put back afterwards, untouched (a model already channels-last, as in
    training, is not changed at all). On CUDA, or with the switch off, the model is left as
    it is and its own layout is yielded."""
    params = [p for p in model.parameters() if p.ndim == 4]
    if not (SCORING_CHANNELS_LAST and params and all(p.device.type == "cpu" for p in params)):
        yield _memory_format(model)
        return
    originals = {}
    with torch.no_grad():  # not inference mode: the weights must stay usable by autograd
        for p in params:
            if not p.is_contiguous(memory_format=torch.channels_last):
                originals[p] = p.data
                p.data = p.data.contiguous(memory_format=torch.channels_last)
    try:
        yield torch.channels_last
    finally:
        for p, data in originals.items():
            p.data = data


def probabilities(model: ImageClassifier, batches: Iterable[Tensor]) -> np.ndarray:
    """Class (softmax) or label (sigmoid) probabilities for float [0, 1] batches, in eval mode,
    in the scoring layout (:func:`scoring_layout`).

    The model's training/eval mode and memory layout are restored afterwards.
    """
    with scoring_layout(model) as memory_format:
        return _probabilities(model, batches, memory_format)


@torch.inference_mode()
def _probabilities(
    model: ImageClassifier, batches: Iterable[Tensor], memory_format: torch.memory_format
) -> np.ndarray:
    was_training = model.training
    model.eval()
    chunks = []
    try:
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
