"""Saliency (input gradient, Grad-CAM; Xu et al. Fig. 6(c), MedRDF Fig. 3) and feature maps
(Xu et al. Fig. 6(b), MedRDF Fig. 4) of the base and the defended model, clean vs adversarial."""

from __future__ import annotations

from typing import Any

import torch

from benchmark.defenses.pipeline import restore_torch_threads
from benchmark.diagnostics import images, saliency
from benchmark.diagnostics.common import (
    first_per_class,
    fit,
    layer_shape,
    sprite_figure,
    what,
)

SALIENCY_ROWS = 4

CHANNELS = 4


def _defended_maps(plan: Any, layer_name: str, x: torch.Tensor, target: torch.Tensor):
    """Input gradient and Grad-CAM of the defended model (None where not defined) and what
    they are, per defense kind."""
    x = x.to(plan.device)
    target = target.to(plan.device)
    if plan.defense is None:
        return None, None, ""
    kind = plan.defense.meta.kind
    if kind == "training":
        m = plan.scorer
        return (
            saliency.input_gradient(m, x, target).cpu(),
            saliency.grad_cam(m, m.get_submodule(layer_name), x, target).cpu(),
            "the robust model",
        )
    plan.defense.reseed(plan.config.seed)
    ig = None
    if plan.defense.meta.differentiable and plan.defended is not None:
        ig = saliency.input_gradient(plan.defended, x, target).cpu()
    cam = None
    if kind == "preprocessing":
        plan.defense.reseed(plan.config.seed)
        threads = torch.get_num_threads()
        with torch.no_grad():
            purified = plan.defense.purify(x).float()
        restore_torch_threads(threads)
        cam = saliency.grad_cam(
            plan.model, plan.model.get_submodule(layer_name), purified, target
        ).cpu()
    return ig, cam, "the defended pipeline"


def saliency_figure(
    plan: Any, shown: Any, names: list[str], layers: dict[str, Any]
) -> dict[str, Any]:
    """Input gradient and Grad-CAM, base vs defended, clean vs adversarial."""
    fam = next(iter(shown.adversarial))
    sel = first_per_class(shown.labels)[:SALIENCY_ROWS]
    x, xa = shown.clean[sel], shown.adversarial[fam][sel]
    y = shown.labels[sel]
    base = plan.model
    layer = base.get_submodule(layers["cam"])
    dev = plan.device
    maps = {
        "base IG": [saliency.input_gradient(base, v.to(dev), y.to(dev)).cpu() for v in (x, xa)],
        "base CAM": [saliency.grad_cam(base, layer, v.to(dev), y.to(dev)).cpu() for v in (x, xa)],
    }
    defended_name = ""
    if plan.defense is not None:
        got = [_defended_maps(plan, layers["cam"], v, y) for v in (x, xa)]
        defended_name = got[0][2]
        if got[0][0] is not None:
            maps["defended IG"] = [got[0][0], got[1][0]]
        if got[0][1] is not None:
            maps["defended CAM"] = [got[0][1], got[1][1]]
    cols = ["clean", f"{fam} adversarial"]
    for k in maps:
        cols += [f"{k} clean", f"{k} adversarial"]
    rows, row_labels = [], []
    for i in range(len(sel)):
        t = int(y[i])
        row_labels.append(f"true: {names[t]}")
        row = [
            (images.image_tile(x[i].numpy()), {"alt": "clean image", "text": "", "wrong": False}),
            (
                images.image_tile(xa[i].numpy()),
                {"alt": f"{fam} adversarial image", "text": "", "wrong": False},
            ),
        ]
        for k, (mc, ma) in maps.items():
            row.append(
                (
                    images.heat_tile(mc[i].numpy()),
                    {"alt": f"{k} on the clean image", "text": "", "wrong": False},
                )
            )
            row.append(
                (
                    images.heat_tile(ma[i].numpy()),
                    {"alt": f"{k} on the adversarial image", "text": "", "wrong": False},
                )
            )
        rows.append(row)
    caption = (
        f"Where the model looks, for the true class: input gradient (IG, |d logit / d x|, max "
        "over channels, divided by its 99th percentile per image) and Grad-CAM at "
        f"{layers['cam']} (output {layer_shape(layers, 'cam')}) of "
        f"the base model {plan.model_id}"
        + (f" and of {defended_name}" if defended_name else "")
        + f", on {len(sel)} of the gallery's seeded test images (seed {plan.config.seed}) and "
        f"their {what(shown.passes[fam])} examples. Dark is "
        "low, pale yellow high (readable in grey); an all-dark Grad-CAM means no positive "
        "evidence for the true class is left at that layer."
        + (
            " The defended IG is missing where the defense is not differentiable; the defended "
            "Grad-CAM is the base model's on the purified image (preprocessing) and is missing "
            "for a wrapper."
            if plan.defense is not None and plan.defense.meta.kind != "training"
            else ""
        )
    )
    return sprite_figure(
        "saliency",
        rows,
        plan.size,
        title="Saliency: input gradient and Grad-CAM",
        caption=caption,
        alt=f"Saliency maps of {len(rows)} images, clean and adversarial",
        col_labels=cols,
        row_labels=row_labels,
        layer=layers["cam"],
    )


def feature_figure(
    plan: Any, shown: Any, names: list[str], layers: dict[str, Any]
) -> dict[str, Any]:
    """Feature maps at the stated layer, clean vs adversarial (MedRDF Fig. 4)."""
    fam = next(iter(shown.adversarial))
    sel = first_per_class(shown.labels)[:SALIENCY_ROWS]
    model = (
        plan.scorer
        if plan.defense is not None and plan.defense.meta.kind == "training"
        else plan.model
    )
    layer = model.get_submodule(layers["features"])
    x, xa = shown.clean[sel], shown.adversarial[fam][sel]
    fc, fa, chans = saliency.feature_maps(
        model, layer, x.to(plan.device), xa.to(plan.device), CHANNELS
    )
    fc, fa = fc.cpu(), fa.cpu()
    size = plan.size
    rows, row_labels = [], []
    for i in range(len(sel)):
        row_labels.append(f"true: {names[int(shown.labels[sel][i])]}")
        row = [
            (
                images.image_tile(x[i].numpy()),
                {"alt": "clean image", "text": "clean", "wrong": False},
            )
        ]
        row += [
            (
                fit(images.heat_tile(fc[i, k].numpy()), size),
                {"alt": f"channel {c}, clean", "text": f"ch {c}", "wrong": False},
            )
            for k, c in enumerate(chans)
        ]
        row += [
            (
                images.image_tile(xa[i].numpy()),
                {"alt": f"{fam} adversarial image", "text": fam, "wrong": False},
            )
        ]
        row += [
            (
                fit(images.heat_tile(fa[i, k].numpy()), size),
                {"alt": f"channel {c}, adversarial", "text": f"ch {c}", "wrong": False},
            )
            for k, c in enumerate(chans)
        ]
        rows.append(row)
    caption = (
        f"Feature maps at {layers['features']} (output {layer_shape(layers, 'features')}) of "
        f"{'the robust model' if model is not plan.model else plan.model_id}: "
        f"the {len(chans)} channels most active on {len(sel)} of the gallery's seeded test "
        f"images (seed {plan.config.seed}), each scaled by its "
        f"maximum over clean and adversarial images together; {what(shown.passes[fam])}."
    )
    return sprite_figure(
        "features",
        rows,
        size,
        title="Feature maps",
        caption=caption,
        alt=f"Feature maps of {len(chans)} channels, clean and adversarial, {len(rows)} images",
        col_labels=["clean"]
        + [f"ch {c}" for c in chans]
        + ["adversarial"]
        + [f"ch {c}" for c in chans],
        row_labels=row_labels,
        layer=layers["features"],
    )


__all__ = ["feature_figure", "saliency_figure"]
