"""``bench corruptions``: preview perturbation sequences and corruptions on a real image."""

from __future__ import annotations

from pathlib import Path

import typer

from benchmark.cli.app import command_group
from benchmark.cli.options import DATA_DIR_HELP
from benchmark.errors import ConfigError

corruptions_app = command_group("corruptions", "Inspect perturbation sequences and corruptions.")


@corruptions_app.command("preview")
def corruptions_preview_cmd(
    dataset: str = typer.Option(..., "--dataset", "-d", help="Registered dataset id."),
    out: Path = typer.Option(..., help="PNG file to write."),
    kind: str = typer.Option("sequence", help="sequence | severity."),
    corruptions: str | None = typer.Option(
        None, help="Comma list of ids (default: every registered one of the kind)."
    ),
    index: int = typer.Option(0, help="Index of the image in the split."),
    split: str = typer.Option("test", help="Split to take the image from."),
    size: int | None = typer.Option(None, help="Image size (default: the dataset's)."),
    severity: int = typer.Option(3, help="Severity of the sequences (kind sequence)."),
    seed: int = typer.Option(0, help="Seed (the same frames an evaluation with it draws)."),
    scale: int = typer.Option(3, help="Enlargement of each tile."),
    data_dir: Path | None = typer.Option(None, help=DATA_DIR_HELP),
    download: bool = typer.Option(False, "--download", help="Download a missing MedMNIST file."),
) -> None:
    """Render a PNG strip: one row per type, frames (or severities) across, on a real image."""
    from benchmark.corruptions import CORRUPTIONS, SequenceType
    from benchmark.corruptions.preview import png_bytes, sequence_sheet, severity_sheet
    from benchmark.datasets.base import load_split
    from benchmark.results.io import atomic_write_bytes

    if kind not in ("sequence", "severity"):
        raise ConfigError(f"--kind must be 'sequence' or 'severity', got '{kind}'")
    ids = [c.strip() for c in corruptions.split(",")] if corruptions else None
    for name in ids or []:
        CORRUPTIONS.get(name)  # unknown names fail here, before loading any data
    if ids is None:
        ids = [
            n for n, v in CORRUPTIONS.items() if isinstance(v, SequenceType) == (kind == "sequence")
        ]
    full = load_split(
        dataset,
        split,
        size=size,
        data_dir=data_dir,
        download=download,
    )
    if not 0 <= index < len(full):
        raise ConfigError(f"--index {index} is outside the {split} split (0..{len(full) - 1})")
    image = full.images[index].numpy()
    if kind == "sequence":
        sheet = sequence_sheet(image, ids, index=index, severity=severity, seed=seed, scale=scale)
    else:
        colour = image.shape[0] == 3
        ids = [n for n in ids if colour or not CORRUPTIONS.get(n).colour_only]
        sheet = severity_sheet(image, ids, index=index, seed=seed, scale=scale)
    atomic_write_bytes(out, png_bytes(sheet))
    typer.echo(f"wrote {out} ({len(ids)} rows, {dataset} {split}[{index}])")
