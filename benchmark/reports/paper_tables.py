"""Tables laid out as in a paper, so that ours and theirs read the same way: Xu et al.'s
Table 5 (block ``table5``)."""

from __future__ import annotations

from benchmark.errors import ResultsError
from benchmark.reports.base import Docs, register_report
from benchmark.results.naming import ThreatModel
from benchmark.results.view import RunView

TABLE5_ROWS = {
    "pgd_at": "Standard (PGD-AT)",
    "mpadvt": "MPAdvT",
    "maadvt": "MAAdvT",
    "trades": "TRADES",
    "mart": "MART",
}
"""Row names of the training-time defenses: Xu et al. Table 5's three (Standard, MPAdvT,
MAAdvT) in the paper's order, then TRADES and MART, which the table does not have."""

_ON_THE_MODEL = (ThreatModel.WHITE_BOX, ThreatModel.ADAPTIVE)


def _table5_pgd(run: RunView) -> float | None:
    """Robust accuracy under Table 5's attack (PGD, eps 4/255, 4 steps) on the evaluated
    model itself: the white-box cell of an undefended run, the adaptive one of a robust model."""
    for a in run.attacks:
        if (
            a.attack == "pgd"
            and a.at_linf(4 / 255)
            and a.steps == 4
            and a.threat_model in _ON_THE_MODEL
        ):
            return a.robust_accuracy.value
    return None


def _table5_cells(docs: Docs) -> tuple[list[str], dict[tuple[str, str], dict[str, float]]]:
    """The datasets in first-seen order and (dataset, defense) -> {"clean", "pgd", "mfp"}."""
    datasets: list[str] = []
    cells: dict[tuple[str, str], dict[str, float]] = {}
    owner: dict[tuple[str, str], str] = {}  # (dataset, defense) -> the model configuration
    for source, doc in docs:
        run = RunView(doc, source)
        ds, defense = run.dataset, run.defense or "none"
        if defense != "none" and defense not in TABLE5_ROWS:
            continue
        config = f"{run.model_id} {sorted(run.defense_params.items())}"
        if owner.setdefault((ds, defense), config) != config:
            raise ResultsError(
                f"table5: {source} is a second configuration of {defense} on {ds} "
                f"({config} vs {owner[(ds, defense)]}); narrow the block's globs to one"
            )
        if ds not in datasets:
            datasets.append(ds)
        slot = cells.setdefault((ds, defense), {})
        if run.sequences:
            slot["mfp"] = run.sequences["mfp"]
        pgd = _table5_pgd(run)
        if pgd is not None:
            slot["pgd"] = pgd
        if pgd is not None or "clean" not in slot:
            slot["clean"] = run.clean_accuracy.value  # type: ignore[assignment]
    return datasets, cells


def render_table5(docs: Docs) -> str:
    """Xu et al. Table 5, one column per dataset: "None" is the undefended model's clean
    accuracy, "Attack" the undefended model under PGD (4/255, 4 steps), then each
    training-time defense's robust model under the same attack, white-box (its clean accuracy
    in brackets). A corruption run of the same model adds its mean flip probability (the paper
    quotes MPAdvT's FP beside Table 5; the undefended model's goes to the "None" row). ``-``
    marks a model not evaluated yet. Two configurations of one defense (or two undefended
    models) on one dataset are an error: the table has one cell for them."""
    datasets, cells = _table5_cells(docs)

    def text(ds: str, defense: str, key: str) -> str:
        slot = cells.get((ds, defense), {})
        if key not in slot:
            return "-"
        out = f"{100 * slot[key]:.1f}"
        if defense != "none" and "clean" in slot:
            out += f" ({100 * slot['clean']:.1f})"
        if "mfp" in slot and (defense != "none" or key == "clean"):
            out += f"; mFP {100 * slot['mfp']:.1f}"
        return out

    lines = ["| method | " + " | ".join(datasets) + " |", "|---|" + "---|" * len(datasets)]
    lines.append("| None | " + " | ".join(text(d, "none", "clean") for d in datasets) + " |")
    lines.append("| Attack | " + " | ".join(text(d, "none", "pgd") for d in datasets) + " |")
    for defense, name in TABLE5_ROWS.items():
        row = [text(d, defense, "pgd") for d in datasets]
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


register_report(
    "table5",
    render_table5,
    "Xu et al. Table 5: clean, PGD 4/255 t=4 and each training-time defense, per dataset",
)
