"""Figure 7: the model-compute levers. The bare ResNet-18's forward pass (scoring, votes) and
input-gradient pass (attacks) in four settings, each as a speed-up over the plain
contiguous-memory float32 model measured in the same run:

* ``channels_last``: the weights (and so the activations) in NHWC memory order, float32;
* ``bf16``: bfloat16 autocast on top (AMX / AVX-512-BF16 where the CPU has them);
* threads: the float32 channels-last forward with one thread against all of them;
* ``compile``: ``torch.compile`` (inductor) of the contiguous float32 model, with its one-off
  compile time (``--no-compile`` skips it).

Accuracy is part of the figure: a lever is only usable where it changes no decision. For
channels-last and bf16 the script reports the share of identical predictions against the
float32 contiguous model on the whole PneumoniaMNIST test split, clean and under PGD-10 at
2/255 and 8/255 (crafted once, in float32), and the largest logit difference. Adversarial
examples sit near the decision boundary by construction, so bf16 scoring is expected to flip
a few of them; a benchmark cannot afford that, and nothing in the package uses bf16.
"""

from __future__ import annotations

import copy
import sys
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from common import best_time, report, test_batch, zoo_model

from benchmark.attacks.base import build_attack


def _autocast(enabled: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if enabled else nullcontext()


def main() -> None:
    torch.manual_seed(0)
    fp32 = zoo_model().to(memory_format=torch.contiguous_format)
    cl = copy.deepcopy(fp32).to(memory_format=torch.channels_last)
    for m in (fp32, cl):
        m.requires_grad_(False)
    x, y = test_batch(n=128)
    settings = {"fp32": (fp32, False), "channels_last": (cl, False), "bf16": (cl, True)}

    def forward(model, bf16: bool, xs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), _autocast(bf16):
            return model(xs).float()

    def input_grad(model, bf16: bool) -> torch.Tensor:
        xr = x.clone().requires_grad_(True)
        with _autocast(bf16):
            loss = F.cross_entropy(model(xr).float(), y, reduction="sum")
        return torch.autograd.grad(loss, xr)[0]

    values: dict[str, float | int] = {"batch": len(x), "threads": torch.get_num_threads()}
    times = {}
    for name, (model, bf16) in settings.items():
        times[name] = (
            best_time(lambda m=model, b=bf16: forward(m, b, x)),
            best_time(lambda m=model, b=bf16: input_grad(m, b)),
        )
    base_f, base_g = times["fp32"]
    values["fp32_forward_ms_per_image"] = round(1000 * base_f / len(x), 3)
    values["fp32_input_grad_ms_per_image"] = round(1000 * base_g / len(x), 3)
    for name in ("channels_last", "bf16"):
        values[f"{name}_forward_speedup"] = round(base_f / times[name][0], 2)
        values[f"{name}_input_grad_speedup"] = round(base_g / times[name][1], 2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    one = best_time(lambda: forward(cl, False, x))
    torch.set_num_threads(threads)
    values["threads_forward_speedup_vs_1"] = round(one / times["channels_last"][0], 2)
    if "--no-compile" not in sys.argv:
        t0 = time.perf_counter()
        compiled = torch.compile(fp32)
        forward(compiled, False, x)  # compiles the forward graph
        input_grad(compiled, False)  # and the backward one
        values["compile_seconds"] = round(time.perf_counter() - t0, 1)
        values["compile_forward_speedup"] = round(
            base_f / best_time(lambda: forward(compiled, False, x)), 2
        )
        values["compile_input_grad_speedup"] = round(
            base_g / best_time(lambda: input_grad(compiled, False)), 2
        )
        diff = (forward(compiled, False, x) - forward(fp32, False, x)).abs().max()
        values["compile_max_logit_diff"] = float(f"{diff:.2e}")

    # Accuracy: every test image, clean and under PGD-10 crafted in float32.
    xs, ys = test_batch(n=10_000)
    sets = {"clean": xs}
    for eps in (2, 8):
        attack = build_attack("pgd", fp32, eps=eps / 255, seed=0, steps=10)
        t0 = time.perf_counter()
        sets[f"pgd10_{eps}"] = torch.cat(
            [attack(xs[i : i + 256], ys[i : i + 256], seed=0) for i in range(0, len(xs), 256)]
        )
        values[f"pgd10_{eps}_craft_s"] = round(time.perf_counter() - t0, 1)
    values["images"] = len(xs)
    for set_name, images in sets.items():
        ref = forward(fp32, False, images)
        for name in ("channels_last", "bf16"):
            out = forward(*settings[name], images)
            same = (out.argmax(1) == ref.argmax(1)).float().mean().item()
            values[f"{name}_{set_name}_same_prediction_%"] = round(100 * same, 2)
            values[f"{name}_{set_name}_max_logit_diff"] = float(f"{(out - ref).abs().max():.2e}")
        values[f"fp32_{set_name}_accuracy_%"] = round(
            100 * (ref.argmax(1) == ys).float().mean().item(), 2
        )
    report("levers", values)


if __name__ == "__main__":
    main()
