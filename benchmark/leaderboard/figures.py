"""The diagnostic figures of an entry page (written by ``bench diagnose`` beside each run).

For every run of an entry whose figure index belongs to its current results file
(:func:`benchmark.results.diagnostics.read_diagnostics` checks the results file's and every
image's sha256), the images are copied into the site under ``diag/<entry>/<run_id>/`` and the
template gets, per figure, its caption and alt text and, for a sprite, one cell per tile with
the CSS that cuts it out of the sprite, its alt text and its label. Figures that fail the check
are left out and the page says why. An embedding's SVG is drawn here from the points in the
index (:func:`benchmark.leaderboard.svg.scatter_svg`, every text escaped), never copied: a file
from the results folder is not served as active content from the site's origin.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from benchmark.leaderboard import svg
from benchmark.leaderboard.runs import Entry
from benchmark.results.diagnostics import diagnostics_folder, read_diagnostics


def entry_figures(entry: Entry, results_root: Path, out: Path) -> list[dict[str, Any]]:
    """The figure groups of ``entry`` (one per run that has figures), files copied to ``out``."""
    groups = []
    for run in entry.runs:
        result = results_root / run.path
        index, problems = read_diagnostics(result)
        if index is None and not problems:
            continue
        group: dict[str, Any] = {"run": run, "problems": problems, "figures": []}
        if index is not None:
            rel = Path("diag") / entry.slug / result.stem
            (out / rel).mkdir(parents=True, exist_ok=True)
            for fig in index["figures"]:
                target = out / rel / fig["sprite"]
                if fig.get("panels") is not None:  # drawn here from the index: no foreign SVG
                    target.write_text(
                        svg.scatter_svg(fig["panels"], fig.get("classes")), encoding="utf-8"
                    )
                else:  # a PNG whose sha256 read_diagnostics checked
                    shutil.copyfile(diagnostics_folder(result) / fig["sprite"], target)
                group["figures"].append(_figure(fig, (rel / fig["sprite"]).as_posix()))
        groups.append(group)
    return groups


def missing_figures_note(entry: Entry, card: dict[str, Any] | None, cards_known: bool) -> str:
    """Why ``entry``'s page has no figures: its weights are not distributed, or not drawn yet.

    ``card``: the committed model card of the entry's deployed checkpoint (None without one);
    ``cards_known``: whether the site was built from the committed cards (without them, the
    note makes no claim about the weights). Empty when no run of the entry has attacks (its
    figures would have nothing to show).
    """
    if not any(run.doc.get("attacks") for run in entry.runs):
        return ""
    how = (
        "bench diagnose --published leaderboard/results draws them from the cached attacks, "
        "with the checkpoint in the zoo (bench zoo import)."
    )
    if card is None and cards_known:
        model = entry.newest().doc.get("model") or {}
        sha = str(model.get("checkpoint_sha256") or entry.checkpoint or "")
        recipe = (model.get("card") or {}).get("recipe") or {}
        device = recipe.get("device")
        where = f" (trained on {device})" if device not in (None, "auto") else ""
        return (
            f"Its checkpoint{where}, sha256 {sha[:16]}..., has no committed model card: its "
            "weights are not distributed with this benchmark, so its runs cannot be repeated "
            "from here and the figures, which are drawn from the weights, are missing. Its "
            "numbers stand as measured, with their per-image outcomes in the runs below."
        )
    return "No figures have been drawn for this entry's runs yet: " + how


def _figure(fig: dict[str, Any], src: str) -> dict[str, Any]:
    """The template's view of one figure: ``rows`` of tiles for a sprite, else one image."""
    view = {
        "id": fig["id"],
        "title": fig.get("title", fig["id"]),
        "caption": fig.get("caption", ""),
        "alt": fig.get("alt", fig["id"]),
        "src": src,
        "rows": None,
        "col_labels": fig.get("col_labels") or [],
    }
    geometry = fig.get("geometry")
    if not geometry:
        return view
    w, h, gap = int(geometry["tile_w"]), int(geometry["tile_h"]), int(geometry["gap"])
    rows = []
    labels = fig.get("row_labels") or []
    for i, cells in enumerate(fig.get("cells") or []):
        tiles = []
        for j, cell in enumerate(cells):
            if cell is None:
                tiles.append(None)
                continue
            tiles.append(
                {
                    "alt": f"{cell.get('alt', '')}"
                    + (f": {cell['text']}" if cell.get("text") else ""),
                    "text": cell.get("text", ""),
                    "wrong": bool(cell.get("wrong")),
                    "width": w,
                    "height": h,
                    "style": "object-fit:none;"
                    f"object-position:-{j * (w + gap)}px -{i * (h + gap)}px",
                }
            )
        rows.append({"label": labels[i] if i < len(labels) else "", "tiles": tiles})
    view["rows"] = rows
    return view


__all__ = ["entry_figures", "missing_figures_note"]
