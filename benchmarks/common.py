"""Shared helpers of the speed scripts: timing, peak memory, the history file, the models.

Every figure is a ratio of two times measured in the same run on the same machine, so that
the figure means the same on a faster or a loaded machine; absolute times are printed too.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
HISTORY = ROOT / "benchmarks" / "history.jsonl"
DATA = Path(os.environ.get("BENCH_DATA_DIR", ROOT.parent / "shared" / "data"))


def best_time(fn: Callable[[], Any], repeat: int = 3, warmup: int = 1) -> float:
    """The fastest of ``repeat`` wall-clock timings of ``fn()`` after ``warmup`` calls (the
    minimum is the least disturbed by other load on the machine)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _code_state() -> str:
    """The short commit, with ``-dirty`` when tracked code differs from it (results aside)."""
    head = _git("rev-parse", "--short", "HEAD")
    if not head:
        return "unknown"
    changed = _git(
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ".",
        ":!leaderboard",
        ":!benchmarks/history.jsonl",
    )
    return head + ("-dirty" if changed or changed is None else "")


_STATE_AT_START = _code_state()


def git_commit() -> str:
    """The code state the figures were measured on: the commit at the start of the script,
    ``-dirty`` if the code differed from it then, or changed (edited or committed) since."""
    now = _code_state()
    if now != _STATE_AT_START and not _STATE_AT_START.endswith("-dirty"):
        return _STATE_AT_START + "-dirty"
    return _STATE_AT_START


def report(figure: str, values: dict[str, Any], *, append: bool = True) -> dict[str, Any]:
    """Print one figure's values and append them, with the commit, to ``history.jsonl``."""
    record = {
        "figure": figure,
        "commit": git_commit(),
        "threads": torch.get_num_threads(),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        **values,
    }
    for key, value in values.items():
        print(f"{figure:18s} {key:42s} {value}")
    print(f"{figure:18s} {'peak_rss_mib':42s} {record['peak_rss_mib']}")
    if append:
        with HISTORY.open("a") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
    return record


def zoo_model(dataset: str = "pneumoniamnist", arch: str = "resnet18"):
    """The zoo's model (trained with `bench train`); exits with a one-line hint if missing."""
    from benchmark.models.zoo import ModelZoo, model_id

    mid = model_id(arch, dataset, 28, 0)
    zoo = ModelZoo()
    if not zoo.exists(mid):
        sys.exit(f"{mid} is not in the zoo: run `bench train -d {dataset} -m {arch} --epochs 10`")
    model, _ = zoo.load(mid)
    return model.eval()


def test_batch(dataset: str = "pneumoniamnist", n: int = 128):
    """The first ``n`` test images of ``dataset`` as float [0, 1] and their labels."""
    from benchmark.datasets.base import load_split

    split = load_split(dataset, "test", size=28, data_dir=DATA)
    x = split.images[:n].float().div(255.0)
    y = torch.as_tensor(split.labels[:n]).long().view(-1)
    return x, y
