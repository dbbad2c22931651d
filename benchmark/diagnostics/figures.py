"""The figures of :func:`benchmark.diagnostics.run.diagnose`, drawn from a plan and the shown
images. Each figure is a dict for the index (id, title, caption, alt, tiles with their labels)
with its image bytes under ``_files``; see :mod:`benchmark.diagnostics.run` for what each one
is and which paper figure it follows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from benchmark.diagnostics import images, saliency
from benchmark.diagnostics.cooccurrence import cooccurrence
from benchmark.diagnostics.embedding import layer_features, tsne
from benchmark.results.naming import eps_label

SALIENCY_ROWS = 4
"""Images in the saliency and feature-map figures (the first of each class first)."""
CHANNELS = 4
"""Feature-map channels shown per image."""


@dataclass
class Drawn:
    """The figures and how many images they crafted again (beyond the gallery's)."""

    figures: list[dict[str, Any]] = field(default_factory=list)
    recrafted: int = 0


def _names(plan: Any) -> list[str]:
    """The class names of the run's dataset (its ids where it has none)."""
    meta = plan.split.meta
    names = list(getattr(meta, "class_names", ()) or ())
    k = len(names) or int(plan.split.labels.max()) + 1
    return names if names else [str(i) for i in range(k)]


def _predict(module: torch.nn.Module, x: torch.Tensor, plan: Any) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class and its probability for each image (defense draws reseeded)."""
    defense = getattr(module, "defense", None)
    if defense is not None:
        defense.reseed(plan.config.seed)
    with torch.no_grad():
        logits = module(x.to(plan.device)).float().cpu()
    prob = logits.softmax(1)
    conf, pred = prob.max(1)
    return pred.numpy(), conf.numpy()


def _label(names: list[str], pred: int, conf: float, truth: int) -> dict[str, Any]:
    wrong = int(pred) != int(truth)
    return {"text": f"{names[int(pred)]} {100 * conf:.0f}%", "wrong": wrong}


def _what(plan: Any, p: Any) -> str:
    steps = p.attack.params.get("steps")
    extra = f", {steps} steps" if steps else ""
    return f"{p.cell.attack} at L-inf eps {eps_label(p.cell.eps)}{extra} ({p.threat_model.value})"


def _sprite_figure(fid: str, tiles: list[list[Any]], size: int, **meta: Any) -> dict[str, Any]:
    data, geometry = images.sprite(
        [[t[0] if t else None for t in row] for row in tiles], images.zoom(size)
    )
    cells = [[(t[1] if t else None) for t in row] for row in tiles]
    return {
        "id": fid,
        "sprite": f"{fid}.png",
        "geometry": geometry,
        "cells": cells,
        "_files": {f"{fid}.png": data},
        **meta,
    }


def gallery(plan: Any, shown: Any, names: list[str]) -> dict[str, Any]:
    """Clean, adversarial per family, amplified perturbation, purified (preprocessing)."""
    families = list(shown.adversarial)
    purify = None
    defense = plan.defense
    if defense is not None and defense.meta.kind == "preprocessing":
        purify = defense.purify
    scorer = plan.scorer
    truth = shown.labels.numpy()
    pc, cc = _predict(scorer, shown.clean, plan)
    adv_pred = {f: _predict(scorer, shown.adversarial[f], plan) for f in families}
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
                {"alt": f"clean test image, true {names[t]}", **_label(names, pc[i], cc[i], t)},
            )
        ]
        for f in families:
            p, c = adv_pred[f]
            row.append(
                (
                    images.image_tile(shown.adversarial[f][i].numpy()),
                    {"alt": f"{f} adversarial image", **_label(names, p[i], c[i], t)},
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
    attacks = "; ".join(_what(plan, shown.passes[f]) for f in families)
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
    return _sprite_figure(
        "gallery",
        rows,
        plan.size,
        title="Adversarial gallery",
        caption=caption,
        alt=f"Grid of {len(rows)} test images: clean, adversarial, amplified perturbation",
        col_labels=cols,
        row_labels=row_labels,
    )


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
        with torch.no_grad():
            purified = plan.defense.purify(x).float()
        cam = saliency.grad_cam(
            plan.model, plan.model.get_submodule(layer_name), purified, target
        ).cpu()
    return ig, cam, "the defended pipeline"


def saliency_figure(
    plan: Any, shown: Any, names: list[str], layers: dict[str, Any]
) -> dict[str, Any]:
    """Input gradient and Grad-CAM, base vs defended, clean vs adversarial."""
    fam = next(iter(shown.adversarial))
    sel = _first_per_class(shown.labels)[:SALIENCY_ROWS]
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
        f"over channels) and Grad-CAM at {layers['cam']} (output {_shape(layers, 'cam')}) of "
        f"the base model {plan.model_id}"
        + (f" and of {defended_name}" if defended_name else "")
        + f", on clean images and their {_what(plan, shown.passes[fam])} examples. Dark is "
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
    return _sprite_figure(
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


def _shape(layers: dict[str, Any], key: str) -> str:
    s = layers["shapes"].get(layers[key])
    return "x".join(str(v) for v in s) if s else "?"


def _first_per_class(labels: torch.Tensor) -> list[int]:
    if labels.dim() > 1:
        return list(range(len(labels)))
    firsts, rest, seen = [], [], set()
    for i, v in enumerate(labels.tolist()):
        (rest if v in seen else firsts).append(i)
        seen.add(v)
    return firsts + rest


def feature_figure(
    plan: Any, shown: Any, names: list[str], layers: dict[str, Any]
) -> dict[str, Any]:
    """Feature maps at the stated layer, clean vs adversarial (MedRDF Fig. 4)."""
    fam = next(iter(shown.adversarial))
    sel = _first_per_class(shown.labels)[:SALIENCY_ROWS]
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
                _fit(images.heat_tile(fc[i, k].numpy()), size),
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
                _fit(images.heat_tile(fa[i, k].numpy()), size),
                {"alt": f"channel {c}, adversarial", "text": f"ch {c}", "wrong": False},
            )
            for k, c in enumerate(chans)
        ]
        rows.append(row)
    caption = (
        f"Feature maps at {layers['features']} (output {_shape(layers, 'features')}) of "
        f"{'the robust model' if model is not plan.model else plan.model_id}: "
        f"the {len(chans)} channels most active on these clean images, each scaled by its "
        f"maximum over clean and adversarial images together; {_what(plan, shown.passes[fam])}."
    )
    return _sprite_figure(
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


def _fit(tile: np.ndarray, size: int) -> np.ndarray:
    """A feature-map tile enlarged (nearest) to the image size, so the sprite's grid is even."""
    f = max(1, size // tile.shape[0])
    big = np.repeat(np.repeat(tile, f, 0), f, 1)
    out = np.full((size, size, 3), 255, np.uint8)
    out[: big.shape[0], : big.shape[1]] = big[:size, :size]
    return out


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
    from benchmark.datasets.base import load_split
    from benchmark.diagnostics.run import adversarial_of

    seed = plan.config.seed
    p = embedding_pass(plan, shown)
    fam = p.cell.attack
    gen = torch.Generator().manual_seed(seed + 1)
    n = len(plan.split)
    pos = torch.randperm(n, generator=gen)[: min(points, n)].sort().values
    xa, hit = adversarial_of(plan, p, pos, cache)
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
        f"{len(xc)} clean test images (circles) and their {_what(plan, p)} examples (crosses); "
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
    svg = scatter_svg(panels, _names(plan))
    fig["sprite"] = "embedding.svg"
    fig["_files"] = {"embedding.svg": svg.encode()}
    return fig, 0 if hit else len(pos)


_SHADES = ("#1b1b1b", "#6b3fa0", "#c0392b", "#e67e22", "#d4c200", "#2e86c1", "#7f8c8d")


def scatter_svg(
    panels: list[dict[str, Any]], names: list[str] | None = None, side: int = 220
) -> str:
    """A deterministic SVG of the embedding panels: dots (train), circles (clean), crosses
    (adversarial), coloured by class, a legend below."""
    pad, w = 10, len(panels) * (side + 20) + 20
    h = side + 70
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{w}" height="{h}" fill="#fff"/>',
    ]
    for k, panel in enumerate(panels):
        ox = 20 + k * (side + 20)
        out.append(
            f'<rect x="{ox}" y="20" width="{side}" height="{side}" fill="none" stroke="#999"/>'
        )
        out.append(f'<text x="{ox}" y="14">{_esc(panel["layer"])}</text>')
        for x, y, g, c in panel["points"]:
            cx, cy = ox + pad + x * (side - 2 * pad), 20 + pad + y * (side - 2 * pad)
            col = _SHADES[c % len(_SHADES)]
            if g == "train":
                out.append(
                    f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="1.6" fill="{col}" '
                    'fill-opacity="0.45"/>'
                )
            elif g == "clean":
                out.append(
                    f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.2" fill="none" stroke="{col}"/>'
                )
            else:
                out.append(
                    f'<path d="M{cx - 3:.1f},{cy - 3:.1f}l6,6m0,-6l-6,6" stroke="{col}" '
                    'stroke-width="1.4"/>'
                )
    ly = side + 45
    out.append(
        f'<circle cx="26" cy="{ly - 4}" r="1.6" fill="#333"/>'
        f'<text x="34" y="{ly}">training (control)</text>'
    )
    out.append(
        f'<circle cx="156" cy="{ly - 4}" r="3.2" fill="none" stroke="#333"/>'
        f'<text x="164" y="{ly}">clean test</text>'
    )
    out.append(
        f'<path d="M263,{ly - 7}l6,6m0,-6l-6,6" stroke="#333"/>'
        f'<text x="276" y="{ly}">adversarial test</text>'
    )
    classes = sorted({p[3] for panel in panels for p in panel["points"]})
    x = 26
    for c in classes:
        label = names[c] if names and c < len(names) else f"class {c}"
        out.append(
            f'<rect x="{x}" y="{ly + 8}" width="9" height="9" fill="{_SHADES[c % len(_SHADES)]}"/>'
            f'<text x="{x + 13}" y="{ly + 16}">{_esc(label)}</text>'
        )
        x += 20 + 7 * len(label)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def robust_metric_figure(plan: Any, shown: Any, names: list[str]) -> dict[str, Any] | None:
    """MedRDF Fig. 5: the shown images with the lowest Robust Metric, clean and attacked."""
    from benchmark.evaluation.defended import voting_module

    voting = voting_module(plan.scorer)
    if voting is None:
        return None
    fam = next(iter(shown.adversarial))
    tiles, k = [], plan.split.meta.num_classes

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
        f"The {len(picked)} of these {2 * len(truth)} clean and {_what(plan, shown.passes[fam])} "
        "images with the lowest Robust Metric RM = K (n_A - n_B) / n (MedRDF eq. 9, K classes, "
        "n votes, n_A and n_B the two largest counts): the cases MedRDF flags for a doctor to "
        f"re-check (MedRDF Fig. 5). Votes drawn with seed {plan.config.seed}."
    )
    return _sprite_figure(
        "robust_metric",
        tiles,
        plan.size,
        title="Robust Metric: cases to re-check",
        caption=caption,
        alt="Images with the lowest MedRDF Robust Metric",
        col_labels=["" for _ in picked],
        row_labels=["lowest RM"],
    )


def cooccurrence_figure(
    clean: np.ndarray, adversarial: np.ndarray, labels: list[str], what: str
) -> dict[str, Any]:
    """Xu et al. Comp. 4 (Fig. 8) as heat maps: the label co-occurrence counts of the clean
    and of the adversarial predictions (0/1, images x labels), and their difference (grey:
    no change, darker fewer, lighter more co-occurrences under attack)."""
    c, a = cooccurrence(clean), cooccurrence(adversarial)
    d = a - c
    peak = max(int(c.max()), int(a.max()), 1)
    span = max(int(np.abs(d).max()), 1)
    tiles = [
        [
            (
                images.heat_tile(c / peak),
                {"alt": "clean co-occurrence counts", "text": "clean", "wrong": False},
            ),
            (
                images.heat_tile(a / peak),
                {"alt": "adversarial co-occurrence counts", "text": "adversarial", "wrong": False},
            ),
            (
                images.image_tile(np.repeat((0.5 + d / (2 * span))[None], 1, 0)),
                {
                    "alt": "adversarial minus clean",
                    "text": f"difference (+-{span})",
                    "wrong": False,
                },
            ),
        ]
    ]
    k = len(labels)
    caption = (
        f"Label co-occurrence (Xu et al. Comp. 4, Fig. 8): C[i, j] counts the images predicted "
        f"with labels i and j both on, for {len(clean)} images, clean and under {what}; rows "
        f"and columns are the {k} labels in order ({', '.join(labels)}). Counts are scaled by "
        f"{peak} (dark 0, pale yellow {peak}); the difference is grey at 0."
    )
    fig = _sprite_figure(
        "cooccurrence",
        tiles,
        k,
        title="Label co-occurrence",
        caption=caption,
        alt="Heat maps of label co-occurrence, clean, adversarial and their difference",
        col_labels=["clean", "adversarial", "difference"],
        row_labels=[""],
    )
    fig["matrices"] = {"clean": c.tolist(), "adversarial": a.tolist()}
    return fig


def draw_all(
    plan: Any,
    shown: Any,
    doc: dict[str, Any],
    *,
    cache: Any,
    embed_points: int,
    data_dir: Any = None,
) -> Drawn:
    """Every figure that applies to the run."""
    names = _names(plan)
    probe = shown.clean[:1].to(plan.device)
    layers = saliency.pick_layers(plan.model, probe)
    out = Drawn()
    out.figures.append(gallery(plan, shown, names))
    out.figures.append(saliency_figure(plan, shown, names, layers))
    out.figures.append(feature_figure(plan, shown, names, layers))
    fig, n = embedding_figure(plan, shown, layers, embed_points, cache, data_dir)
    out.figures.append(fig)
    out.recrafted += n
    if plan.split.labels.dim() > 1:  # multi-label: Xu et al. Comp. 4
        fam = next(iter(shown.adversarial))
        with torch.no_grad():
            clean = (plan.scorer(shown.clean.to(plan.device)).sigmoid() > 0.5).int().cpu()
            adv = (plan.scorer(shown.adversarial[fam].to(plan.device)).sigmoid() > 0.5).int()
        out.figures.append(
            cooccurrence_figure(
                clean.numpy(), adv.cpu().numpy(), names, _what(plan, shown.passes[fam])
            )
        )
    rm = robust_metric_figure(plan, shown, names)
    if rm is not None:
        out.figures.append(rm)
    return out


__all__ = ["Drawn", "draw_all", "scatter_svg"]
