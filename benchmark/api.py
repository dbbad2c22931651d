"""The public Python API: what a notebook user needs, in a few calls.

```python
import benchmark as mrb

test = mrb.load_dataset("breastmnist", "test")                 # test.batches(64): [0, 1]
model = mrb.load_model("breastmnist", "resnet18")              # sha256-verified zoo model
robust = mrb.load_model("breastmnist", "resnet18", defense="pgd_at")
doc = mrb.evaluate("breastmnist", "resnet18", attacks="fgsm,pgd", eps=["8/255"])
board = mrb.results_frame("leaderboard/results")               # tidy pandas DataFrame
```

Each call is the library behind a ``bench`` command (``load_model`` checks the checkpoint's
sha256 against its card exactly as ``bench evaluate`` does), so a number found here is the
number the CLI finds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.datasets.base import ImageSplit, load_split, resolve_size
from benchmark.device import pick_device
from benchmark.models.base import ImageClassifier
from benchmark.models.zoo import ModelZoo, model_id


def load_dataset(
    name: str,
    split: str = "test",
    *,
    size: int | None = None,
    data_dir: str | Path | None = None,
    download: bool = False,
) -> ImageSplit:
    """One split of a registered dataset (``bench list datasets``): an :class:`ImageSplit`,
    whose items and ``batches(n)`` are float32 NCHW in [0, 1] (stored as uint8).

    Args:
        name: dataset id, e.g. ``"pneumoniamnist"``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        size: image size (default: the dataset's).
        data_dir: data root (default ``$BENCH_DATA_DIR``, then the loader's own folder).
        download: let MedMNIST download a missing file.
    """
    return load_split(name, split, size=size, data_dir=data_dir, download=download)


def load_model(
    dataset: str,
    arch: str = "resnet18",
    *,
    size: int | None = None,
    seed: int = 0,
    defense: str | None = None,
    defense_params: dict[str, Any] | None = None,
    zoo: str | Path | None = None,
    device: str = "auto",
) -> ImageClassifier:
    """A trained zoo model in eval mode, its checkpoint verified against its card's sha256.

    Args:
        dataset: dataset id the model was trained on.
        arch: registered model id (``bench list models``).
        size: image size (default: the dataset's).
        seed: training seed.
        defense: a training-time defense (``pgd_at``, ``trades``...): its robust model.
        defense_params: the defense's parameter overrides the robust model was trained with.
        zoo: zoo folder (default ``$BENCH_ZOO_DIR``, then the per-user cache).
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.

    Raises:
        CheckpointError: the model is not in the zoo (the message says how to train it), or
            its checkpoint does not match its card.
    """
    size = resolve_size(dataset, size)
    tag = None
    expect: dict[str, Any] = {"dataset": dataset, "arch": arch, "image_size": size, "seed": seed}
    if defense is not None:
        from benchmark.training import defense_tag

        tag = defense_tag(defense, defense_params or {})
        expect["defense.id"] = defense
    model, _ = ModelZoo(zoo).load(
        model_id(arch, dataset, size, seed, tag), device=pick_device(device), expect=expect
    )
    return model.eval()


def evaluate(
    dataset: str,
    arch: str = "resnet18",
    *,
    attacks: str | None = None,
    eps: str | float | list[str | float] = (),
    defense: str | None = None,
    data_dir: str | Path | None = None,
    zoo: str | Path | None = None,
    out_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    progress: bool | None = None,
    isolation: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate a zoo model as ``bench evaluate`` does; returns the results document (also
    written, atomically, under ``out_dir``).

    Args:
        dataset: dataset id.
        arch: model id.
        attacks: a preset (``bench list presets``) or a comma list of attacks.
        eps: budgets for an attack list: ``"8/255"``, a float on the [0, 1] scale, or a list.
        defense: a defense submission id or folder.
        data_dir: data root; zoo: zoo folder; out_dir: results folder (``$BENCH_RESULTS_DIR``,
            else ``./results``); cache_dir: adversarial-example cache.
        use_cache: False to neither read nor write the cache.
        progress: progress bars (default: only on a terminal).
        isolation: where the defense's code runs: ``sandbox`` (default, or
            ``$BENCH_ISOLATION``), ``builtin`` or ``none`` (:mod:`benchmark.defenses.isolation`).
        **options: any other ``bench evaluate`` option by its Python name, as
            :meth:`EvaluationConfig.from_options` takes them (``n_examples=100``,
            ``threat_models=["oblivious", "adaptive"]``, ``attack_params=["pgd.steps=20"]``,
            ``defense_params=["n=100"]``, ``corruptions="standard"``, ``seed``, ``device``...).

    Raises:
        ConfigError: a bad option, before any work (one line naming it and the fix).
    """
    from benchmark.evaluation import EvaluationConfig
    from benchmark.evaluation import evaluate as run_evaluation
    from benchmark.evaluation.cache import AdversarialCache

    items = eps if isinstance(eps, list | tuple) else [eps]
    config = EvaluationConfig.from_options(
        dataset=dataset,
        arch=arch,
        attacks=attacks,
        eps=[str(e) for e in items],
        defense=defense,
        use_cache=use_cache,
        **options,
    )
    doc, _ = run_evaluation(
        config,
        data_dir=data_dir,
        zoo=ModelZoo(zoo),
        out_dir=out_dir,
        cache=AdversarialCache(cache_dir, enabled=use_cache),
        progress=progress,
        isolation=isolation,
    )
    return doc


def results_frame(source: str | Path = "leaderboard/results", *, all_versions: bool = False):
    """Published (or your own) results as a tidy :class:`pandas.DataFrame`: one row per run
    for its clean scores and one per run and attack cell, with values, 95 % intervals and n.

    Args:
        source: a results folder (default: the published ones) or a results file.
        all_versions: also the superseded versions of each run folder (default: the newest).
    """
    from benchmark.results import frame

    return frame(source, all_versions=all_versions)
