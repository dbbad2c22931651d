"""Which MKL branch a pinned process runs: one forward and backward pass of each zoo
architecture (seed 0, 16 random 1-channel 28 px images, 1 thread), in a fresh process per MKL_CBWR
value with ATen and oneDNN pinned to AVX2, printing a digest of the gradients. Equal digests:
the same arithmetic. Usage (from the repository root): python
benchmarks/records/cpu_kernels/mkl_branch_probe.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ARCHS = ("resnet18", "resnet50", "vgg16_bn", "densenet121", "mobilenet_v2")
WORKER = """
import hashlib, torch
import benchmark.models  # registers the architectures
from benchmark.models.base import build_model
torch.set_num_threads(1)
out = []
for arch in {archs!r}:
    torch.manual_seed(0)
    model = build_model(arch, in_channels=1, num_classes=2, image_size=28)
    model(torch.rand(16, 1, 28, 28)).logsumexp(1).sum().backward()
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.grad.numpy().tobytes())
    out.append(arch + " " + h.hexdigest()[:12])
print("; ".join(out))
"""


def main() -> None:
    from benchmark.results.provenance import environment

    env = environment("cpu")
    print(f"cpu {env['cpu']}, widest kernels {env['cpu_host_isa']}")
    base = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    base.update(ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2", OMP_NUM_THREADS="1")
    for value in (None, "AUTO", "AVX2", "COMPATIBLE"):
        run_env = dict(base) if value is None else {**base, "MKL_CBWR": value}
        done = subprocess.run(
            [sys.executable, "-c", WORKER.format(archs=ARCHS)],
            env=run_env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        print(f"MKL_CBWR={value or '(unset)'}: {done.stdout.strip()}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
