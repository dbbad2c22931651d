"""The adversarial gallery (Xu et al. Fig. 6(a), Fig. 8(c-d)) and MedRDF's Robust Metric cases
(MedRDF Fig. 5): images with the scoring model's labels under them."""

from __future__ import annotations

from typing import Any

import torch

from benchmark.diagnostics import images
from benchmark.diagnostics.common import (
    label,
    predict,
    sprite_figure,
    what,
)


def gallery(plan: Any, shown: Any, names: list[str]) -> dict[str, Any]:
    """Clean, adversarial per family, amplified perturbation, purified (preprocessing)."""
    families = list(shown.adversarial)
    purify = None
    defense = plan.defense
    if defense is not None and defense.meta.kind == "preprocessing":
        purify = defense.purify
    scorer = plan.scorer
    truth = shown.labels.numpy()
    pc, cc = predict(scorer, shown.clean, plan)
    adv_pred = {f: predict(scorer, shown.adversarial[f], plan) for f in families}
    purified = None
    if purify is not None:
        defense.reseed(plan.config.seed)
        with torch.no_grad():
            purified = purify(shown.clean.to(plan.device)).float().cpu()
    cols = ["clean"] + [f"{f} adversarial" for f in families]
    cols += [f"{f} perturbation" for f in families]
    if purified is not None:
        cols.append("purified clean")
    rows, row_labels = [], []
    for i in range(len(shown.positions)):
        t = int(truth[i])
        row_labels.append(f"true: {names[t]}")
        row = [
            (
                images.image_tile(shown.clean[i].numpy()),
                {"alt": f"clean test image, true {names[t]}", **label(names, pc[i], cc[i], t)},
            )
        ]
        for f in families:
            p, c = adv_pred[f]
            row.append(
                (
                    images.image_tile(shown.adversarial[f][i].numpy()),
                    {"alt": f"{f} adversarial image", **label(names, p[i], c[i], t)},
                )
            )
        for f in families:
            delta = (shown.adversarial[f][i] - shown.clean[i]).numpy()
            eps = shown.passes[f].cell.eps
            row.append(
                (
                    images.perturbation_tile(delta, eps),
                    {
                        "alt": f"{f} perturbation, amplified {1 / (2 * eps):.0f}x",
                        "text": f"x{1 / (2 * eps):.0f}",
                        "wrong": False,
                    },
                )
            )
        if purified is not None:
            row.append(
                (
                    images.image_tile(purified[i].numpy()),
                    {"alt": "the defense's purified clean image", "text": "", "wrong": False},
                )
            )
        rows.append(row)
    attacks = "; ".join(what(shown.passes[f]) for f in families)
    recrafted = [f for f, n in shown.recrafted.items() if n]
    scorer_name = "the defended pipeline" if plan.defense is not None else "the model"
    caption = (
        f"{len(rows)} seeded test images (seed {plan.config.seed}) of {plan.config.dataset}, "
        f"model {plan.model_id}; attacks: {attacks}. Labels are {scorer_name}'s prediction and "
        "confidence; a wrong one is marked. Perturbations are shown as grey 0.5 + delta/(2 eps): "
        "black is -eps, white +eps."
        + (
            f" Examples of {', '.join(recrafted)} were recrafted on these images alone (cache "
            "cold); the run's own examples may differ."
            if recrafted
            else " Examples are the run's own (from its cache)."
        )
    )
    return sprite_figure(
        "gallery",
        rows,
        plan.size,
        title="Adversarial gallery",
        caption=caption,
        alt=f"Grid of {len(rows)} test images: clean, adversarial, amplified perturbation",
        col_labels=cols,
        row_labels=row_labels,
    )


def robust_metric_figure(plan: Any, shown: Any, names: list[str]) -> dict[str, Any] | None:
    """MedRDF Fig. 5: the shown images with the lowest Robust Metric, clean and attacked."""
    from benchmark.evaluation.defended import voting_module

    voting = voting_module(plan.scorer)
    if voting is None:
        return None
    fam = next(iter(shown.adversarial))
    k = plan.split.meta.num_classes

    def counts(x: torch.Tensor) -> torch.Tensor:
        plan.defense.reseed(plan.config.seed)
        with torch.no_grad():
            return voting.votes(x.to(plan.device)).float().cpu()

    rows_data = []
    for tag, x in (("clean", shown.clean), (f"{fam}", shown.adversarial[fam])):
        c = counts(x)
        top2 = c.topk(2, dim=1).values
        rm = k * (top2[:, 0] - top2[:, 1]) / c.sum(1)  # MedRDF eq. 9
        for i in range(len(x)):
            rows_data.append((float(rm[i]), tag, i, int(c[i].argmax()), x[i]))
    rows_data.sort(key=lambda r: (r[0], r[1], r[2]))
    picked = rows_data[:6]
    truth = shown.labels
    tiles = [
        [
            (
                images.image_tile(x.numpy()),
                {
                    "alt": f"{tag} image with Robust Metric {rm:.2f}",
                    "text": f"{tag}: {names[pred]}, RM {rm:.2f}",
                    "wrong": pred != int(truth[i]),
                },
            )
            for rm, tag, i, pred, x in picked
        ]
    ]
    caption = (
        f"The {len(picked)} of these {2 * len(truth)} clean and {what(shown.passes[fam])} "
        "images with the lowest Robust Metric RM = K (n_A - n_B) / n (MedRDF eq. 9, K classes, "
        "n votes, n_A and n_B the two largest counts): the cases MedRDF flags for a doctor to "
        f"re-check (MedRDF Fig. 5). Votes drawn with seed {plan.config.seed}."
    )
    return sprite_figure(
        "robust_metric",
        tiles,
        plan.size,
        title="Robust Metric: cases to re-check",
        caption=caption,
        alt="Images with the lowest MedRDF Robust Metric",
        col_labels=["" for _ in picked],
        row_labels=["lowest RM"],
    )


__all__ = ["gallery", "robust_metric_figure"]
