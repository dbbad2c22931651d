"""Batched inference: a model and a split in, :class:`~benchmark.metrics.Predictions` out."""

from __future__ import annotations

import numpy as np
import torch

from benchmark.datasets.base import ImageSplit
from benchmark.metrics.base import Predictions
from benchmark.models.base import ImageClassifier


@torch.inference_mode()
def predict(
    model: ImageClassifier, split: ImageSplit, *, batch_size: int = 512, seed: int = 0
) -> Predictions:
    """Probabilities of ``model`` on every sample of ``split`` (eval mode, no autograd).

    The model's training/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    device = model.device
    memory_format = _memory_format(model)
    chunks = []
    try:
        for x, _ in split.batches(batch_size, device=device):
            chunks.append(model.predict_proba(x.contiguous(memory_format=memory_format)).cpu())
    finally:
        model.train(was_training)
    probs = torch.cat(chunks).double().numpy()
    return Predictions(
        probs=probs,
        labels=split.labels.numpy().astype(np.float64 if split.meta.multi_label else np.int64),
        class_names=split.meta.class_names,
        multi_label=split.meta.multi_label,
        seed=seed,
    )


def _memory_format(model: torch.nn.Module) -> torch.memory_format:
    for p in model.parameters():
        if p.ndim == 4:
            return (
                torch.channels_last
                if p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
                else torch.contiguous_format
            )
    return torch.contiguous_format
