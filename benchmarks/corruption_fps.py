"""Figure 6: corruption sequences. Frames generated per second (uncached) and served per second
from the cache, for one sequence type of each family on 64 PneumoniaMNIST test images."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from common import DATA, report

from benchmark.datasets.base import load_split
from benchmark.evaluation.cache import AdversarialCache
from benchmark.evaluation.corruption import CorruptionRunner

TYPES = ("gaussian_noise_seq", "motion_blur_seq", "snow_seq", "rotate_seq")
FRAMES = 21


def main() -> None:
    full = load_split("pneumoniamnist", "test", size=28, data_dir=DATA)
    idx = torch.arange(64)
    split = full.subset(idx)
    values = {}
    with tempfile.TemporaryDirectory() as tmp:
        runner = CorruptionRunner(
            None,  # frames only: no model is called
            split,
            idx,
            model_sha256="-",
            reference=None,
            seed=0,
            batch_size=256,
            cache=AdversarialCache(Path(tmp)),
        )
        for sid in TYPES:
            t0 = time.perf_counter()
            _, hit = runner.sequence_frames(sid, 3, FRAMES)
            cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            _, hit2 = runner.sequence_frames(sid, 3, FRAMES)
            warm = time.perf_counter() - t0
            assert not hit and hit2
            frames = len(split) * FRAMES
            values[f"{sid}_frames_per_s_uncached"] = round(frames / cold, 1)
            values[f"{sid}_cached_over_uncached_speedup"] = round(cold / warm, 1)
    report("corruption", values)


if __name__ == "__main__":
    main()
