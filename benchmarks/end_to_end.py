"""Figure 5: end to end. `bench evaluate` with the `quick` preset on PneumoniaMNIST (all 624
test images) for the zoo's resnet18, bare and then behind each baseline defense (oblivious),
in one fresh cache: the bare run crafts every attack (cold), the defended runs reuse them, as a
user evaluating several defenses would. Wall time of each command, and the largest peak RSS of
one command (RUSAGE_CHILDREN)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DATA, report

BASELINES = [
    "bit_depth_reduction",
    "median_filter",
    "gaussian_smoothing",
    "jpeg",
    "random_resize_pad",
]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "BENCH_DATA_DIR": str(DATA),
            "BENCH_CACHE_DIR": str(Path(tmp) / "cache"),
            "HF_HUB_OFFLINE": "1",
        }
        base = [sys.executable, "-m", "benchmark.cli.main", "evaluate", "-d", "pneumoniamnist"]
        base += ["-m", "resnet18", "--attacks", "quick", "--out", str(Path(tmp) / "out")]
        values = {}
        for defense in [None, *BASELINES]:
            cmd = base + (["--defense", defense, "--threat-model", "oblivious"] if defense else [])
            t0 = time.perf_counter()
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{' '.join(cmd)} failed: {done.stderr.strip()[-400:]}")
            values[f"{defense or 'undefended'}_seconds"] = round(time.perf_counter() - t0, 1)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
        values["total_seconds"] = round(sum(values.values()), 1)
        values["peak_rss_of_a_run_mib"] = round(peak, 1)
    report("end_to_end", values)


if __name__ == "__main__":
    main()
