"""Run every speed figure, each in its own process (so that peak memory is per figure), and
append the results to benchmarks/history.jsonl. Usage: python benchmarks/run_all.py [NAMES]"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIGURES = [
    "attack_overhead",
    "medrdf_throughput",
    "mdda_speed",
    "reuse",
    "corruption_fps",
    "end_to_end",
    "levers",
    "sandbox_overhead",
    "cpu_pin_cost",
]


def main() -> None:
    names = sys.argv[1:] or FIGURES
    failed = []
    for name in names:
        print(f"== {name}", flush=True)
        # From the repository root: submissions/ and the data paths resolve as for `bench`.
        if subprocess.run([sys.executable, str(HERE / f"{name}.py")], cwd=HERE.parent).returncode:
            failed.append(name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
