"""``bench evaluate``: score a zoo model (behind a defense) clean, under attack and under
corruptions, and write one results JSON."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from benchmark.cli.app import app
from benchmark.cli.options import DATA_DIR_HELP, ISOLATION_HELP, SANDBOX_LIMIT_HELP, ZOO_HELP
from benchmark.reports.terminal import render_evaluation


@app.command("evaluate")
def evaluate_cmd(
    dataset: str = typer.Option(..., "--dataset", "-d", help="Registered dataset id."),
    arch: str = typer.Option(..., "--model", "--arch", "-m", help="Registered model id."),
    protocol: str | None = typer.Option(
        None,
        help="A versioned protocol (bench list protocols): its attacks and budgets on the "
        "whole split; the only runs a board ranks (of the current version).",
    ),
    attacks: str | None = typer.Option(
        None, help="A preset (bench list presets) or a comma list of attacks (fgsm,pgd)."
    ),
    eps: list[str] = typer.Option([], help="eps for an attack list, e.g. 2/255,8/255."),
    attack_param: list[str] = typer.Option(
        [], help="Override an attack parameter: pgd.steps=20 (or steps=20 for all)."
    ),
    defense: str | None = typer.Option(
        None, help="Defense to evaluate: a submission id (submissions/<id>) or its folder."
    ),
    defense_param: list[str] = typer.Option([], help="Override a defense parameter: name=value."),
    isolation: str | None = typer.Option(None, help=ISOLATION_HELP),
    sandbox_limit: list[str] = typer.Option([], help=SANDBOX_LIMIT_HELP),
    threat_model: list[str] = typer.Option(
        ["oblivious"], help="With --defense: oblivious and/or adaptive (repeat the option)."
    ),
    eot_samples: int = typer.Option(
        20, help="Draws per step of adaptive attacks on randomized defenses (EOT)."
    ),
    draws: int = typer.Option(
        1,
        help="Answers of a randomized defense per scored image; an image is correct only if "
        "every answer is (worst-of-draws scoring).",
    ),
    adaptive_gradient: str = typer.Option(
        "exact",
        help="Adaptive pass through a differentiable purifier: exact (autograd) or bpda "
        "(identity backward; a second adaptive run, suite <preset>-bpda).",
    ),
    corruptions: str | None = typer.Option(
        None,
        help="A corruption preset (bench list corruption_presets), a comma list "
        "(rotate_seq,pixelate), or the corruption protocol mrb_corruption_v1 (bench list "
        "corruption_protocols: the whole split, fixed draws; the runs its boards rank).",
    ),
    corruption_reference: str | None = typer.Option(
        None, help="Zoo model id of the reference model for relative FP and CE / mCE."
    ),
    n_examples: int | None = typer.Option(
        None, help="Evaluate a seeded random subset of this many test images."
    ),
    subset_seed: int | None = typer.Option(
        None,
        help="Seed of the --n-examples subset (default: --seed); the same value for every "
        "seed of a recipe scores them on the same images.",
    ),
    size: int | None = typer.Option(None, help="Image size (default: the dataset's)."),
    split: str = typer.Option("test", help="Split to score: test | val | train."),
    seed: int = typer.Option(
        0, help="Seed of the model, the subset (unless --subset-seed), the attacks and the CIs."
    ),
    batch_size: str = typer.Option(
        "256",
        help="Inference and attack batch size, or auto: the largest that fits the free memory "
        "(a size that does not fit is refused before any work).",
    ),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:N]."),
    data_dir: Path | None = typer.Option(None, help=DATA_DIR_HELP),
    download: bool = typer.Option(False, "--download", help="Download a missing MedMNIST file."),
    zoo: Path | None = typer.Option(None, help=ZOO_HELP),
    out: Path | None = typer.Option(
        None, help="Results folder (else $BENCH_RESULTS_DIR, else ./results)."
    ),
    cache_dir: Path | None = typer.Option(
        None, help="Adversarial-example cache (else $BENCH_CACHE_DIR, else the user cache)."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the cache."),
    sanity_attack: bool = typer.Option(
        True,
        "--sanity-attack/--no-sanity-attack",
        help="Run the large-eps sanity attack at 64/255 (PGD-10; a protocol's own from v2).",
    ),
    train_if_missing: bool = typer.Option(
        False, "--train-if-missing", help="Train the model first if the zoo lacks it."
    ),
    epochs: int = typer.Option(100, help="Epochs when --train-if-missing trains."),
    executor: str = typer.Option(
        "local", help="Where attack passes are crafted: local | ray (a Ray cluster)."
    ),
    ray_address: str | None = typer.Option(
        None,
        help="With --executor ray: unset starts a local Ray (or joins $RAY_ADDRESS); 'auto' "
        "or ray://host:10001.",
    ),
    ray_gpus: float = typer.Option(0, help="With --executor ray: GPUs per task."),
    as_json: bool = typer.Option(False, "--json", help="Print the result document as JSON."),
) -> None:
    """Evaluate a zoo model clean, under attack and under corruptions; write one results JSON."""
    from benchmark.defenses.sandbox import SandboxLimits
    from benchmark.evaluation import EvaluationConfig, evaluate
    from benchmark.evaluation.cache import AdversarialCache
    from benchmark.models.zoo import ModelZoo

    config = EvaluationConfig.from_options(
        dataset=dataset,
        arch=arch,
        attacks=attacks,
        eps=eps,
        attack_params=attack_param,
        defense=defense,
        defense_params=defense_param,
        threat_models=threat_model,
        eot_samples=eot_samples,
        draws=draws,
        adaptive_gradient=adaptive_gradient,
        corruptions=corruptions,
        corruption_reference=corruption_reference,
        n_examples=n_examples,
        subset_seed=subset_seed,
        size=size,
        split=split,
        seed=seed,
        batch_size=batch_size,
        device=device,
        sanity_attack=sanity_attack,
        executor=executor,
        use_cache=not no_cache,
        protocol=protocol,
    )
    runner = None
    if executor == "ray":
        from benchmark.evaluation.executors import RayExecutor

        runner = RayExecutor(address=ray_address, num_gpus=ray_gpus)
    doc, path = evaluate(
        config,
        data_dir=data_dir,
        zoo=ModelZoo(zoo),
        out_dir=out,
        download=download,
        train_if_missing=train_if_missing,
        train_config=config.train_config(epochs),
        cache=AdversarialCache(cache_dir, enabled=not no_cache),
        executor=runner,
        isolation=isolation,
        sandbox_limits=SandboxLimits.parse(sandbox_limit),
    )
    if as_json:
        typer.echo(json.dumps(doc, indent=2, sort_keys=True))
        return
    typer.echo(render_evaluation(doc, path, dataset=dataset, split=split))
