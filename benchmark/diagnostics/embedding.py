"""Feature embeddings: t-SNE of a layer's features, training images as the control group.

Xu et al. 2021, Component 3 (Fig. 7): features of several layers of the diagnostic model are
embedded in two dimensions with t-SNE; training images are the control group, and clean and
adversarial test images are drawn side by side, so one sees whether adversarial images move
into another class's cluster. Each layer's output is pooled to a vector (global average over
positions), standardised over all points, reduced by PCA to at most 50 dimensions and embedded
with scikit-learn's exact t-SNE under a fixed seed (PCA initialisation, perplexity 30 or less
for few points): the same points give the same coordinates (tested).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from benchmark.diagnostics.saliency import capture


def layer_features(model: nn.Module, layer: nn.Module, x: Tensor, batch: int = 256) -> np.ndarray:
    """N x C features of ``layer`` for images ``x`` (global average over positions)."""
    out = []
    with torch.no_grad(), capture(layer) as store:
        for i in range(0, len(x), batch):
            model(x[i : i + batch])
            a = store["out"].detach().float()
            out.append((a.mean(dim=(2, 3)) if a.dim() == 4 else a.flatten(1)).cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def tsne(features: np.ndarray, seed: int) -> np.ndarray:
    """N x 2 t-SNE coordinates of ``features`` (see the module docstring), scaled to [0, 1]."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = np.asarray(features, dtype=np.float64)
    x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)
    k = min(50, x.shape[1], x.shape[0] - 1)
    if k < x.shape[1]:
        x = PCA(n_components=k, svd_solver="full").fit_transform(x)
    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3.0)))
    y = TSNE(
        n_components=2,
        perplexity=perplexity,
        init="pca",
        method="exact",
        random_state=seed,
        learning_rate="auto",
    ).fit_transform(x)
    lo, hi = y.min(0), y.max(0)
    return (y - lo) / np.where(hi > lo, hi - lo, 1.0)


__all__ = ["layer_features", "tsne"]
