"""What pinning the CPU kernels costs in training speed (issue 22: "pin the kernels' instruction
set for training, and measure what that costs").

`bench train --cpu-isa avx2` makes a checkpoint reproducible on any x86 machine with AVX2 (ATen,
oneDNN and MKL pinned, `benchmark.device.pin_cpu_isa`); on a machine whose own kernels are wider
(AVX-512) that may be slower. The variables act only when a process starts, so each setting runs
the same training steps in its own process: Adam steps of the standard recipe's loss on one
batch of real BreastMNIST training images at 28 px, channels-last as the training loop runs
them (session 27's figures ran the default layout, where more layers go through MKL), 1
thread, per architecture. The settings
alternate round by round and each keeps its fastest round, so load on the machine hits them
alike. Printed: seconds per step per setting and architecture, and each pinned setting's time
over the native one's (the figure). ``avx2`` is today's pin (MKL's COMPATIBLE branch, the one
every vendor's CPU honours); ``avx2_mkl_auto`` the pin before session 28 as a non-Intel CPU
ran it (MKL's AUTO branch). Usage: python benchmarks/cpu_pin_cost.py [--rounds 3]
[--steps 5] [--archs resnet18,densenet121,mobilenet_v2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmark.device import ISA_ENV  # noqa: E402

SETTINGS = {
    "native": ("native", {}),
    "avx2": ("avx2", ISA_ENV["avx2"]),
    # The AVX2 pin of sessions 26-27 asked MKL for its AVX2 branch, which MKL honours on Intel
    # CPUs only; elsewhere it ran the AUTO branch, measured here beside today's COMPATIBLE one.
    "avx2_mkl_auto": ("avx2", {**ISA_ENV["avx2"], "MKL_CBWR": "AUTO"}),
    "default": ("default", ISA_ENV["default"]),
}
# Every variable that caps the kernels some library picks: none may leak from the caller's
# shell into a setting (a capped "native" would make the pin look free).
KERNEL_VARIABLES = (
    *ISA_ENV["avx2"],
    "DNNL_MAX_CPU_ISA",
    "MKL_ENABLE_INSTRUCTIONS",
    "MKL_DEBUG_CPU_TYPE",
    "ONEDNN_CPU_ISA_HINTS",
)

_WORKER = """
import json, sys, time
import torch
from benchmark.device import pin_cpu_isa
from benchmark.models.base import build_model
sys.path.insert(0, {bench!r})
from common import DATA
from benchmark.datasets.base import load_split

pin_cpu_isa({isa!r}, {variables!r})
torch.set_num_threads(1)
torch.manual_seed(0)
split = load_split("breastmnist", "train", size=28, data_dir=DATA)
# The training loop's memory format (TrainConfig.channels_last): it decides which layers run
# in oneDNN and which in MKL, so the pin's cost depends on it.
x = split.images[:{batch}].float().div(255.0).contiguous(memory_format=torch.channels_last)
y = torch.as_tensor(split.labels[:{batch}]).long().view(-1)
out = {{"capability": torch.backends.cpu.get_cpu_capability()}}
for arch in {archs!r}:
    model = build_model(arch, in_channels=x.shape[1], num_classes=2, image_size=28)
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    step()  # warm-up: first-call allocations and kernel selection
    t0 = time.perf_counter()
    for _ in range({steps}):
        step()
    out[arch] = (time.perf_counter() - t0) / {steps}
print(json.dumps(out))
"""


def _run(setting: str, archs: list[str], steps: int, batch: int) -> dict:
    """One round of one setting in a fresh process started with its kernel variables."""
    env = {k: v for k, v in os.environ.items() if k not in KERNEL_VARIABLES}
    isa, variables = SETTINGS[setting]
    env.update(variables, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    code = _WORKER.format(
        isa=isa, variables=variables, archs=archs, steps=steps, batch=batch, bench=str(HERE)
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=HERE.parent, capture_output=True, text=True
    )
    if done.returncode:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        sys.exit(f"the {setting} round failed: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--archs", default="resnet18,densenet121,mobilenet_v2")
    args = ap.parse_args()
    archs = args.archs.split(",")
    import torch
    from common import report

    from benchmark.results.provenance import environment

    torch.set_num_threads(1)  # the history line's thread count is the workers' (1)
    here = environment("cpu")

    best: dict[str, dict[str, float]] = {s: {} for s in SETTINGS}
    capability: dict[str, str] = {}
    start = time.perf_counter()
    for r in range(args.rounds):
        if r == 1:  # the first round's length is each later one's: say how long the rest takes
            left = (args.rounds - 1) * (time.perf_counter() - start)
            print(
                f"estimate: about {left / 60:.0f} min more for {args.rounds - 1} rounds", flush=True
            )
        for setting in SETTINGS:
            got = _run(setting, archs, args.steps, args.batch)
            capability[setting] = got.pop("capability")
            for arch, secs in got.items():
                best[setting][arch] = min(best[setting].get(arch, secs), secs)
            print(f"round {r + 1}: {setting} ({capability[setting]}) done", flush=True)
    values: dict[str, object] = {
        "cpu": here["cpu"],
        "cpu_host_isa": here["cpu_host_isa"],
        "kernels": capability,
        "batch": args.batch,
    }
    for arch in archs:
        native = best["native"][arch]
        values[f"{arch}_native_s_per_step"] = round(native, 4)
        for setting in ("avx2", "avx2_mkl_auto", "default"):
            values[f"{arch}_{setting}_over_native"] = round(best[setting][arch] / native, 3)
    report("cpu_pin_cost", values)


if __name__ == "__main__":
    main()
