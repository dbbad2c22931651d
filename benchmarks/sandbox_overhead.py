"""Figure 11: the sandbox's cost. ``purify`` of the median filter on 256 BreastMNIST test images
through :class:`~benchmark.defenses.sandbox.SandboxedDefense` (the tensor over a pipe to a
bubblewrap worker, checked on return) over the same ``purify`` in this process; and the
worker's start-up time (once per sandbox, not per call)."""

from __future__ import annotations

import time

import torch
from common import DATA, ROOT, best_time, report

from benchmark.datasets.base import load_split
from benchmark.defenses import read_submission
from benchmark.defenses.sandbox import SandboxedDefense

N = 256


def main() -> None:
    split = load_split("breastmnist", "test", size=28, data_dir=DATA)
    x = split.images[:N].float().div(255.0)
    x = x.repeat(-(-N // len(x)), 1, 1, 1)[:N].contiguous()
    folder = ROOT / "submissions" / "median_filter"
    local = read_submission(folder).build(seed=0)
    t0 = time.perf_counter()
    remote = SandboxedDefense(folder, seed=0)
    start = time.perf_counter() - t0
    try:
        assert torch.equal(remote.purify(x), local.purify(x))
        inside = best_time(lambda: remote.purify(x), repeat=5)
    finally:
        remote.close()
    here = best_time(lambda: local.purify(x), repeat=5)
    report(
        "sandbox_overhead",
        {
            "images": N,
            "in_process_ms": round(here * 1000, 2),
            "sandboxed_ms": round(inside * 1000, 2),
            "ratio_sandboxed_over_in_process": round(inside / here, 2),
            "worker_start_s": round(start, 2),
        },
    )


if __name__ == "__main__":
    main()
