"""Figure 8: device parity. The same checkpoint, data and protocol evaluated on two devices
(the CPU rows of the leaderboard, and a run on a GPU): every attack cell's robust accuracy on
both, the images that differ, and the ratio of the evaluations' wall times.

Usage: python benchmarks/device_parity.py [GPU_RESULT.json CPU_RESULT.json]
(default: `records/breastmnist_xu2021_table5_cuda_h100.json`, a `bench evaluate -d breastmnist
-m resnet18 --attacks xu2021_table5 --attack-param autoattack.steps=20 --attack-param
autoattack.n_queries=500 --n-examples 100 --device cuda` run on a lent H100, against the
leaderboard's CPU run of the same command).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from common import report

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_GPU = (
    Path(__file__).resolve().parent / "records" / "breastmnist_xu2021_table5_cuda_h100.json"
)
DEFAULT_CPU_DIR = (
    ROOT / "leaderboard/results/breastmnist/xu2021_table5/resnet18_breastmnist_28px_s0"
)


def _same_run(a: dict, b: dict) -> None:
    """Exit with one line unless the two runs differ only in their device."""
    differs = sorted(k for k in a["config"] if a["config"][k] != b["config"].get(k))
    if differs != ["device"]:
        sys.exit(
            f"error: the runs differ in {differs}, not only in the device; pass two runs "
            "of the same command"
        )
    if a["model"]["checkpoint_sha256"] != b["model"]["checkpoint_sha256"]:
        sys.exit("error: the runs used different checkpoints; pass two runs of the same model")
    if a["data"]["sha256"] != b["data"]["sha256"]:
        sys.exit("error: the runs read different data files")


def main() -> None:
    if len(sys.argv) == 3:
        gpu_path, cpu_path = Path(sys.argv[1]), Path(sys.argv[2])
    else:
        gpu_path, cpu_path = DEFAULT_GPU, sorted(DEFAULT_CPU_DIR.glob("*.json"))[-1]
    gpu, cpu = (json.loads(p.read_text()) for p in (gpu_path, cpu_path))
    _same_run(gpu, cpu)
    n = gpu["data"]["n"]
    values: dict[str, object] = {
        "devices": f"{gpu['environment'].get('device_name', gpu['environment']['device'])} vs "
        f"{cpu['environment']['device']} ({cpu['environment']['num_threads']} threads)",
        "torch": f"{gpu['environment']['torch']} vs {cpu['environment']['torch']}",
        "clean_acc": f"{gpu['metrics']['clean']['accuracy']['value']:.3f} vs "
        f"{cpu['metrics']['clean']['accuracy']['value']:.3f}",
    }
    moved = 0
    for a, b in zip(gpu["attacks"], cpu["attacks"], strict=True):
        ra = a["metrics"]["robust_accuracy"]["value"]
        rb = b["metrics"]["robust_accuracy"]["value"]
        moved += round(abs(ra - rb) * n)
        values[a["cell_id"]] = f"{ra:.3f} vs {rb:.3f}"
    values["images_moved_over_all_cells"] = f"{moved} of {n * len(gpu['attacks'])}"
    values["wall_time_ratio_cpu_over_gpu"] = round(
        cpu["timing"]["seconds"] / gpu["timing"]["seconds"], 1
    )
    report("device_parity", values)


if __name__ == "__main__":
    main()
