"""Feature embeddings: t-SNE of a layer's features, training images as the control group, and
the embedding figure (three layers side by side, an SVG scatter).

Xu et al. 2021, Component 3 (Fig. 7): features of several layers of the diagnostic model are
embedded in two dimensions with t-SNE; training images are the control group, and clean and
adversarial test images are drawn side by side, so one sees whether adversarial images move
into another class's cluster. Each layer's output is pooled to a vector (global average over
positions), standardised over all points, reduced by PCA to at most 50 dimensions and embedded
with scikit-learn's exact t-SNE under a fixed seed (PCA initialisation, perplexity 30 or less
for few points): the same points give the same coordinates (tested).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from benchmark.datasets.base import load_split
from benchmark.diagnostics.common import class_names, what
from benchmark.diagnostics.examples import adversarial_of
from benchmark.diagnostics.saliency import capture
from benchmark.leaderboard.svg import scatter_svg


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


def embedding_pass(plan: Any, shown: Any) -> Any:
    """The pass whose examples the embedding shows: PGD (else the gallery's first family)
    nearest 8/255, preferring the cheap threat models (white-box, oblivious: crafted on the
    base model) over the adaptive one, whose examples of many images cost EOT work."""
    fam = "pgd" if "pgd" in shown.passes else next(iter(shown.passes))
    cheap = [
        q
        for q in plan.passes
        if q.cell.attack == fam
        and q.attack.bounded
        and q.attack.norm == "linf"
        and q.threat_model.value in ("white-box", "oblivious")
    ]
    if not cheap:
        return shown.passes[fam]
    return min(cheap, key=lambda q: abs(q.cell.eps - 8 / 255))


def embedding_figure(
    plan: Any, shown: Any, layers: dict[str, Any], points: int, cache: Any, data_dir: Any
) -> tuple[dict[str, Any], int]:
    """t-SNE of three layers: training images (control), clean and adversarial test images."""
    seed = plan.config.seed
    p = embedding_pass(plan, shown)
    fam = p.cell.attack
    gen = torch.Generator().manual_seed(seed + 1)
    n = len(plan.split)
    pos = torch.randperm(n, generator=gen)[: min(points, n)].sort().values
    xa, source = adversarial_of(plan, p, pos, cache)
    hit = source == "run"
    train = load_split(plan.config.dataset, "train", size=plan.size, data_dir=data_dir)
    tpos = torch.randperm(len(train), generator=gen)[:points].sort().values
    xt = train.images[tpos].float().div(255.0)
    xc = plan.split.images[pos].float().div(255.0)
    yt, yc = train.labels[tpos], plan.split.labels[pos]
    model = (
        plan.scorer
        if plan.defense is not None and plan.defense.meta.kind == "training"
        else plan.model
    )
    panels = []
    for name in layers["embedding"]:
        layer = model.get_submodule(name)
        feats = np.concatenate(
            [layer_features(model, layer, v.to(plan.device)) for v in (xt, xc, xa.float())]
        )
        xy = tsne(feats, seed)
        groups = ["train"] * len(xt) + ["clean"] * len(xc) + ["adversarial"] * len(xa)
        classes = [int(v) for v in torch.cat([yt, yc, yc]).view(len(groups), -1)[:, 0].tolist()]
        panels.append(
            {
                "layer": name,
                "shape": layers["shapes"].get(name),
                "points": [
                    [round(float(a), 4), round(float(b), 4), g, c]
                    for (a, b), g, c in zip(xy, groups, classes, strict=True)
                ],
            }
        )
    caption = (
        f"t-SNE (exact, seed {seed}, PCA to at most 50 dimensions) of the features of "
        f"{', '.join(layers['embedding'])}: {len(xt)} training images (control, dots), "
        f"{len(xc)} clean test images (circles) and their {what(p)} examples (crosses); "
        "shade is the true class."
        + (
            ""
            if hit
            else " The adversarial examples were recrafted on these images alone (cache cold)."
        )
    )
    fig = {
        "id": "embedding",
        "kind": "scatter",
        "title": "Feature embeddings (t-SNE)",
        "caption": caption,
        "panels": panels,
        "alt": "Three t-SNE scatter plots of layer features: training, clean and "
        f"{fam} adversarial images",
    }
    fig["classes"] = class_names(plan)
    svg = scatter_svg(panels, fig["classes"])
    fig["sprite"] = "embedding.svg"
    fig["_files"] = {"embedding.svg": svg.encode()}
    return fig, 0 if hit else len(pos), len(pos) if source == "attacked" else 0


__all__ = ["embedding_figure", "embedding_pass", "layer_features", "tsne"]
