"""Every figure that applies to a run (:func:`draw_all`), from the modules that draw them."""

from __future__ import annotations

from typing import Any

import torch

from benchmark.diagnostics import saliency
from benchmark.diagnostics.common import Drawn, class_names, what
from benchmark.diagnostics.cooccurrence import cooccurrence_figure
from benchmark.diagnostics.embedding import embedding_figure
from benchmark.diagnostics.gallery import gallery, robust_metric_figure
from benchmark.diagnostics.maps import feature_figure, saliency_figure


def draw_all(
    plan: Any,
    shown: Any,
    doc: dict[str, Any],
    *,
    cache: Any,
    embed_points: int,
    data_dir: Any = None,
) -> Drawn:
    """Every figure that applies to the run. A multi-label run gets the label co-occurrence
    figure only (Xu et al. Comp. 4): the gallery, the maps and the embedding are drawn per
    class and are not defined for it here."""
    names = class_names(plan)
    out = Drawn()
    if plan.split.labels.dim() > 1:
        fam = next(iter(shown.adversarial))
        with torch.no_grad():
            clean = (plan.scorer(shown.clean.to(plan.device)).sigmoid() > 0.5).int().cpu()
            adv = (plan.scorer(shown.adversarial[fam].to(plan.device)).sigmoid() > 0.5).int()
        out.figures.append(
            cooccurrence_figure(clean.numpy(), adv.cpu().numpy(), names, what(shown.passes[fam]))
        )
        return out
    probe = shown.clean[:1].to(plan.device)
    layers = saliency.pick_layers(plan.model, probe)
    out.figures.append(gallery(plan, shown, names))
    out.figures.append(saliency_figure(plan, shown, names, layers))
    out.figures.append(feature_figure(plan, shown, names, layers))
    fig, n, attacked = embedding_figure(plan, shown, layers, embed_points, cache, data_dir)
    out.figures.append(fig)
    out.recrafted += n
    out.attacked += attacked
    rm = robust_metric_figure(plan, shown, names)
    if rm is not None:
        out.figures.append(rm)
    return out


__all__ = ["draw_all"]
