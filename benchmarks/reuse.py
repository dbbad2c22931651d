"""Figure 4: reuse. k defenses under the oblivious threat model cost one attack plus k defense
passes: T(8) / T(1) should stay near (1 + 8d) / (1 + d), d = one defense pass over the attack.
And a second identical `evaluate` does no attack work (cache hits, no misses)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from common import DATA, report

from benchmark.attacks.presets import AttackCell
from benchmark.evaluation import EvaluationConfig, evaluate
from benchmark.evaluation.cache import AdversarialCache

DEFENSES = [
    ("median_filter", {}),
    ("gaussian_smoothing", {}),
    ("bit_depth_reduction", {}),
    ("jpeg", {}),
    ("median_filter", {"kernel_size": 2}),
    ("gaussian_smoothing", {"sigma": 0.5}),
    ("bit_depth_reduction", {"bits": 3}),
    ("jpeg", {"quality": 50}),
]


def _run(cache: AdversarialCache, out: Path, defense: str, params: dict) -> tuple[float, dict]:
    config = EvaluationConfig(
        dataset="pneumoniamnist",
        arch="resnet18",
        attacks=[AttackCell.make("pgd", "8/255", steps=10)],
        suite="custom",
        n_examples=128,
        sanity_attack=False,
        defense=defense,
        defense_params=params,
        threat_models=["oblivious"],
    )
    t0 = time.perf_counter()
    doc, _ = evaluate(config, data_dir=DATA, out_dir=out, cache=cache, progress=False)
    return time.perf_counter() - t0, doc


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # A (one attack) and D (one defense pass) measured apart from T8: a cold run and a
        # warm rerun of the same configuration on one cache.
        t1, _ = _run(AdversarialCache(tmp / "c1"), tmp / "o", *DEFENSES[0])
        d_pass, warm = _run(AdversarialCache(tmp / "c1"), tmp / "o", *DEFENSES[0])
        attack = max(t1 - d_pass, 1e-9)
        d = d_pass / attack
        cache8 = AdversarialCache(tmp / "c8")
        runs = [_run(cache8, tmp / "o", name, params) for name, params in DEFENSES]
        t8 = sum(t for t, _ in runs)
        reused = all(a["timing"]["cached"] for _, doc in runs[1:] for a in doc["attacks"])
    report(
        "reuse",
        {
            "T1_seconds": round(t1, 1),
            "attack_seconds_A": round(attack, 1),
            "defense_pass_seconds_D": round(d_pass, 1),
            "T8_seconds": round(t8, 1),
            "T8_over_T1_measured": round(t8 / t1, 3),
            "T8_over_T1_expected (1+8d)/(1+d)": round((1 + 8 * d) / (1 + d), 3),
            "runs_2_to_8_reuse_the_attack": reused,
            "rerun_cache_misses (target 0)": warm["timing"]["cache_misses"],
        },
    )


if __name__ == "__main__":
    main()
