"""Where a model looks: input gradients, Grad-CAM and feature maps at a named layer.

Xu et al. 2021 (Component 2, Fig. 6) and MedRDF (Fig. 3 attention maps, Fig. 4 feature maps
at ResNet-18's second BasicBlock) compare these maps on a clean image and its adversarial
version. All functions take float32 NCHW images in [0, 1] (normalisation is inside the model
wrapper) and return maps in [0, 1] per image.

- :func:`input_gradient`: ``|d logit_y / d x|``, the maximum over channels, divided by its
  99th percentile per image (a few extreme pixels do not wash out the map).
- :func:`grad_cam`: Selvaraju et al., ICCV 2017, eq. 1-2: the channel weights are the spatial
  means of ``d logit_y / d A`` at the layer, the map is ``ReLU(sum_k w_k A_k)``, enlarged
  bilinearly to the input size and divided by its maximum per image.
- :func:`feature_maps`: the activations of a few channels of a layer (the channels most active
  on the clean images), each scaled by its maximum over clean and adversarial images together,
  so the two can be compared.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@contextmanager
def capture(module: nn.Module, *, grad: bool = False):
    """Record the output of ``module`` during the forwards inside the block (``store["out"]``,
    a tensor that keeps its gradient when ``grad``)."""
    store: dict[str, Tensor] = {}

    def hook(_m: nn.Module, _inp: Any, out: Tensor) -> None:
        if grad and out.requires_grad:
            out.retain_grad()
        store["out"] = out

    handle = module.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def _normalise(maps: Tensor, q: float | None = None) -> Tensor:
    flat = maps.flatten(1)
    top = flat.quantile(q, dim=1) if q is not None else flat.max(dim=1).values
    top = torch.where(top > 0, top, torch.ones_like(top))
    return (maps / top.view(-1, *([1] * (maps.dim() - 1)))).clamp(0, 1)


def input_gradient(forward: Callable[[Tensor], Tensor], x: Tensor, target: Tensor) -> Tensor:
    """N x H x W maps of ``|d logit_target / d x|`` (max over channels, scaled per image)."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = forward(x)
        logits.gather(1, target.view(-1, 1)).sum().backward()
    return _normalise(x.grad.detach().abs().amax(dim=1), 0.99)


def grad_cam(model: nn.Module, layer: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    """N x H x W Grad-CAM maps of ``model`` at ``layer`` for class ``target`` (see the module
    docstring), in [0, 1]."""
    with torch.enable_grad(), capture(layer, grad=True) as store:
        logits = model(x.detach().clone().requires_grad_(True))
        logits.gather(1, target.view(-1, 1)).sum().backward()
    act, grad = store["out"].detach(), store["out"].grad
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * act).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return _normalise(cam)


def feature_maps(
    model: nn.Module, layer: nn.Module, clean: Tensor, adversarial: Tensor, channels: int = 4
) -> tuple[Tensor, Tensor, list[int]]:
    """Activations of ``layer`` (N x k x h x w, clean and adversarial, in [0, 1]) for the ``k``
    channels most active on the clean images, and those channel indices."""
    with torch.no_grad(), capture(layer) as store:
        model(clean)
        a_clean = store["out"].detach()
        model(adversarial)
        a_adv = store["out"].detach()
    order = a_clean.mean(dim=(0, 2, 3)).argsort(descending=True)[:channels]
    picked_c, picked_a = a_clean[:, order].clamp(min=0), a_adv[:, order].clamp(min=0)
    top = torch.maximum(picked_c.amax(dim=(0, 2, 3)), picked_a.amax(dim=(0, 2, 3)))
    top = torch.where(top > 0, top, torch.ones_like(top)).view(1, -1, 1, 1)
    return (picked_c / top).clamp(0, 1), (picked_a / top).clamp(0, 1), order.tolist()


def spatial_layers(model: nn.Module, probe: Tensor) -> list[tuple[str, tuple[int, ...]]]:
    """``(name, output shape)`` of the backbone's top-level blocks and of the blocks inside
    them, in forward order, for one probe forward (how a figure picks its stated layer)."""
    backbone = getattr(model, "backbone", model)
    names = {m: n for n, m in backbone.named_modules() if n and n.count(".") <= 1}
    seen: list[tuple[str, tuple[int, ...]]] = []
    handles = [
        m.register_forward_hook(
            lambda mod, _i, out: (
                seen.append((names[mod], tuple(out.shape))) if isinstance(out, Tensor) else None
            )
        )
        for m in names
    ]
    try:
        with torch.no_grad():
            model(probe)
    finally:
        for h in handles:
            h.remove()
    return seen


def pick_layers(model: nn.Module, probe: Tensor) -> dict[str, Any]:
    """The layers the figures use, by name (prefixed ``backbone.``). A *stage* is the last
    block (top level or one below) whose 4-d output has a given spatial size, in forward order.

    - ``cam``: the last stage with at least 2 x 2 positions (ResNet-18 at 28 px: ``layer4``,
      4 x 4; Grad-CAM needs spatial positions);
    - ``features``: ResNet's second BasicBlock ``layer1.1`` where the model has one (MedRDF
      Fig. 4), else the second stage;
    - ``embedding``: the last three stages (Xu et al. Comp. 3 embeds several layers), each
      pooled to a vector.
    """
    seen = spatial_layers(model, probe)
    stages: dict[tuple[int, int], str] = {}
    for name, shape in seen:
        if len(shape) == 4:
            stages.pop((shape[2], shape[3]), None)
            stages[(shape[2], shape[3])] = name  # re-inserted: ordered by last completion
    order = list(stages.items())
    spatial = [n for (h, w), n in order if h >= 2 and w >= 2]
    if not spatial:
        raise ValueError("the model has no block with a spatial output to draw")
    names = [n for n, _ in seen]
    features = "layer1.1" if "layer1.1" in names else spatial[min(1, len(spatial) - 1)]
    prefix = "backbone." if hasattr(model, "backbone") else ""
    return {
        "cam": prefix + spatial[-1],
        "features": prefix + features,
        "embedding": [prefix + n for _, n in order[-3:]],
        "shapes": {prefix + n: list(s[1:]) for n, s in seen},
    }


__all__ = [
    "capture",
    "feature_maps",
    "grad_cam",
    "input_gradient",
    "pick_layers",
    "spatial_layers",
]
