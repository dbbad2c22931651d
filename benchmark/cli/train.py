"""``bench train``: train a model (or a training-time defense's robust model) into the zoo."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from benchmark.cli.app import app
from benchmark.cli.options import DATA_DIR_HELP, ISOLATION_HELP, SANDBOX_LIMIT_HELP, ZOO_HELP
from benchmark.params import parse_params
from benchmark.reports.terminal import render_train_card


@app.command("train")
def train_cmd(
    dataset: str = typer.Option(..., "--dataset", "-d", help="Registered dataset id."),
    arch: str = typer.Option(..., "--arch", "--model", "-m", help="Registered model id."),
    size: int | None = typer.Option(None, help="Image size (default: the dataset's)."),
    epochs: int = typer.Option(100, help="Epochs (MedMNIST v2 recipe: 100)."),
    batch_size: int = typer.Option(128, help="Minibatch size."),
    lr: float = typer.Option(1e-3, help="Adam learning rate."),
    seed: int = typer.Option(0, help="Seed of initialisation and data order."),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:N]."),
    data_dir: Path | None = typer.Option(None, help=DATA_DIR_HELP),
    download: bool = typer.Option(False, "--download", help="Download a missing MedMNIST file."),
    zoo: Path | None = typer.Option(None, help=ZOO_HELP),
    defense: str | None = typer.Option(
        None, help="Training-time defense submission (pgd_at, mpadvt, maadvt, trades, mart)."
    ),
    defense_param: list[str] = typer.Option(
        [], help="Override a defense parameter: name=value (e.g. steps=3 on a CPU)."
    ),
    select: str = typer.Option(
        "auto", help="Model selection on the validation split: auto | auc | robust."
    ),
    select_eps: str = typer.Option("4/255", help="Eps of the PGD used by --select robust."),
    select_steps: int = typer.Option(4, help="Steps of the PGD used by --select robust."),
    init_from: str | None = typer.Option(
        None, help="Zoo id whose weights start the training (adversarial fine-tuning)."
    ),
    fresh: bool = typer.Option(
        False, "--fresh", help="Start afresh instead of resuming an interrupted run."
    ),
    cpu_isa: str = typer.Option(
        "native",
        help="CPU kernels' instruction set: native, avx2 or default. A CPU checkpoint is "
        "bit-identical only for the same torch build, thread count and kernels; avx2 pins ATen "
        "and oneDNN to AVX2 and MKL to its COMPATIBLE branch, meant to reproduce on any AVX2 x86 "
        "machine (recorded in the card; what is measured: README). Start the process "
        "with the variables the refusal names.",
    ),
    isolation: str | None = typer.Option(None, help=ISOLATION_HELP),
    sandbox_limit: list[str] = typer.Option(
        [], help=SANDBOX_LIMIT_HELP + " A sandboxed training run's wall time defaults to 7 days."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the model card as JSON."),
) -> None:
    """Train a model (MedMNIST v2 recipe, or a training-time defense) into the model zoo.

    An interrupted run resumes at its last finished epoch when started again with the same
    options (its state is kept in the zoo's .partial/ folder); --fresh starts over."""
    from benchmark.attacks.presets import parse_eps
    from benchmark.defenses.sandbox import SandboxLimits
    from benchmark.models.zoo import ModelZoo
    from benchmark.training import TrainConfig
    from benchmark.training.sandboxed import train_isolated

    config = TrainConfig(
        dataset=dataset,
        arch=arch,
        size=size,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device,
        defense=defense,
        defense_params=parse_params(defense_param),
        selection=select,
        select_eps=parse_eps(select_eps),
        select_steps=select_steps,
        init_from=init_from,
    )
    from benchmark.device import pick_device, pin_cpu_isa
    from benchmark.training.recipes import standard_departures

    config.validate()  # refuse a bad option before warning about the recipe
    departures = standard_departures(config)
    if departures:
        typer.echo(
            "warning: not the zoo's standard recipe: "
            + ", ".join(departures)
            + "; its card will say so (pass the recipe's values to train a zoo model)",
            err=True,
        )

    if pick_device(device).type == "cpu":
        pin_cpu_isa(cpu_isa)
    limits = SandboxLimits.parse([f"wall_seconds={7 * 24 * 3600}", *sandbox_limit])
    entry = train_isolated(
        config,
        isolation=isolation,
        limits=limits,
        data_dir=data_dir,
        download=download,
        zoo=ModelZoo(zoo),
        resume=not fresh,
    )
    card = entry.card
    if as_json:
        typer.echo(json.dumps(card, indent=2))
        return
    typer.echo(render_train_card(card, entry.path))
