"""Figure 11: the sandbox's cost, measured in one run.

* ``purify``: the median filter on 256 BreastMNIST test images through the sandbox (the tensor
  over a pipe to a bubblewrap worker, checked on return) over the same ``purify`` here;
* the adaptive path of a wrapper: MedRDF's smoothed ``soft(x)`` forward and its input
  gradient (a vector-Jacobian product asked of the sandbox) on 32 images, a ResNet-18 base
  model with 8 attack copies, sandboxed over in process: the cost an adaptive attack pays per
  step;
* one evaluation cell end to end: ``bench evaluate`` of the median filter on 64 images, PGD-10
  oblivious and adaptive (BPDA), on a ResNet-18 with random weights (the zoo is not needed
  for timing), sandboxed over in process, with identical outcomes asserted;
* the worker's start-up time (once per sandbox, torch's import).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from common import DATA, ROOT, best_time, report

from benchmark.datasets.base import load_split
from benchmark.defenses import read_submission
from benchmark.defenses.sandbox_proxy import SandboxedSubmission
from benchmark.models.base import build_model

N = 256


def _purify(x: torch.Tensor) -> dict[str, float]:
    folder = ROOT / "submissions" / "median_filter"
    local = read_submission(folder).build(seed=0)
    t0 = time.perf_counter()
    with SandboxedSubmission(folder) as sub:
        start = time.perf_counter() - t0
        remote = sub.build(seed=0)
        assert torch.equal(remote.purify(x), local.purify(x))
        inside = best_time(lambda: remote.purify(x), repeat=5)
    here = best_time(lambda: local.purify(x), repeat=5)
    return {
        "purify_in_process_ms": round(here * 1000, 2),
        "purify_sandboxed_ms": round(inside * 1000, 2),
        "purify_ratio": round(inside / here, 2),
        "worker_start_s": round(start, 2),
    }


def _wrapper_gradient(x: torch.Tensor) -> dict[str, float]:
    folder = ROOT / "submissions" / "medrdf"
    torch.manual_seed(0)
    model = build_model("resnet18", in_channels=1, num_classes=2, image_size=28).eval()
    params = {"n": 100, "attack_copies": 8}

    def step(module: torch.nn.Module) -> torch.Tensor:
        # As an attack step differentiates: the input's gradient only (no weight gradients).
        xg = x.clone().requires_grad_(True)
        module.defense.reseed(0)
        (grad,) = torch.autograd.grad(module.soft(xg).sum(), xg)
        return grad

    local = read_submission(folder).build(seed=0, **params).wrap(model)
    with SandboxedSubmission(folder) as sub:
        remote = sub.build(seed=0, **params).wrap(model)
        assert torch.equal(step(remote), step(local))
        inside = best_time(lambda: step(remote), repeat=3)
    here = best_time(lambda: step(local), repeat=3)
    return {
        "wrapper_step_in_process_ms": round(here * 1000, 1),
        "wrapper_step_sandboxed_ms": round(inside * 1000, 1),
        "wrapper_step_ratio": round(inside / here, 2),
    }


def _evaluation_cell() -> dict[str, float]:
    from benchmark.attacks.presets import AttackCell
    from benchmark.evaluation import EvaluationConfig, evaluate
    from benchmark.evaluation.cache import AdversarialCache
    from benchmark.models.zoo import ModelZoo
    from benchmark.training import TrainConfig, train_model

    work = Path(tempfile.mkdtemp(prefix="mrb-sandbox-bench-"))
    zoo = ModelZoo(work / "zoo")
    train_model(  # one epoch on a subset: weights for the timing, not a model to rank
        TrainConfig(dataset="breastmnist", arch="resnet18", epochs=1),
        data_dir=DATA,
        zoo=zoo,
        progress=False,
    )
    config = EvaluationConfig(
        dataset="breastmnist",
        arch="resnet18",
        attacks=[AttackCell.make("pgd", "8/255", steps=10)],
        suite="custom",
        n_examples=64,
        sanity_attack=False,
        defense=str(ROOT / "submissions" / "median_filter"),
        threat_models=["oblivious", "adaptive"],
    )
    seconds, docs = {}, {}
    for mode in ("builtin", "sandbox"):
        t0 = time.perf_counter()
        docs[mode], _ = evaluate(
            config,
            data_dir=DATA,
            zoo=zoo,
            out_dir=work / mode,
            cache=AdversarialCache(work / f"cache_{mode}"),
            progress=False,
            isolation=mode,
        )
        seconds[mode] = time.perf_counter() - t0
    for a, b in zip(docs["builtin"]["attacks"], docs["sandbox"]["attacks"], strict=True):
        assert a["outcomes"] == b["outcomes"]
    return {
        "cell_in_process_s": round(seconds["builtin"], 1),
        "cell_sandboxed_s": round(seconds["sandbox"], 1),
        "cell_ratio": round(seconds["sandbox"] / seconds["builtin"], 2),
    }


def main() -> None:
    split = load_split("breastmnist", "test", size=28, data_dir=DATA)
    x = split.images[:N].float().div(255.0)
    x = x.repeat(-(-N // len(x)), 1, 1, 1)[:N].contiguous()
    report(
        "sandbox_overhead",
        {
            "images": N,
            **_purify(x),
            **_wrapper_gradient(x[:32]),
            **_evaluation_cell(),
        },
    )


if __name__ == "__main__":
    main()
