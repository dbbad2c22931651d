"""The validation curve that chose a checkpoint's epoch, drawn from its committed card.

A model card keeps the training history (per epoch: validation accuracy and AUC; for a
training-time defense also the validation balanced accuracy, clean and under the selection
attack) and the epoch the selection rule kept (``best_epoch``). The entry page draws those
curves, so a reader sees whether the epoch budget let the validation figures level off and
whether adversarial training collapsed (clean balanced accuracy at 1/K).
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from benchmark.leaderboard import svg

#: History fields drawn, with their legend names (in this order of preference).
CURVES = (
    ("val_balanced_acc", "val balanced acc (clean)"),
    ("val_robust_balanced_acc", "val balanced acc (attacked)"),
    ("val_acc", "val acc"),
    ("val_auc", "val AUC"),
)


def training_curve(card: dict[str, Any] | None) -> Markup | None:
    """The SVG of ``card``'s validation history (None without a history of two epochs)."""
    history = (card or {}).get("history") or []
    if len(history) < 2:
        return None
    series: dict[str, list[tuple[float, float]]] = {}
    for key, name in CURVES:
        pts = [
            (float(h["epoch"]), float(h[key]))
            for h in history
            if isinstance(h.get(key), (int, float)) and isinstance(h.get("epoch"), int)
        ]
        if len(pts) == len(history):
            series[name] = pts
    if not series:
        return None
    epochs = [int(h["epoch"]) for h in history]
    step = max(1, len(epochs) // 10)
    best = card.get("best_epoch")
    title = f"{card.get('model_id', '')}: validation per epoch (kept: epoch {best})"
    ticks = [(float(e), str(e) + ("*" if e == best else "")) for e in epochs[::step]]
    if best in epochs and all(t[0] != best for t in ticks):
        ticks.append((float(best), f"{best}*"))
    # Every text in the SVG (the model id from the untrusted card included) is escaped there.
    return Markup(svg.line_chart(series, title=title, x_label="epoch (* kept)", x_ticks=ticks))


__all__ = ["CURVES", "training_curve"]
