"""Inline SVG charts rendered at build time: no JavaScript, no network, byte-deterministic.

Every label is escaped here (``html.escape``); the templates insert the returned markup as
trusted. Numbers are formatted with fixed precision so that two builds are identical.
"""

from __future__ import annotations

from html import escape
from typing import Any

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _f(x: float) -> str:
    return f"{x:.1f}"


def bar_chart(
    bars: list[tuple[str, float]], *, title: str, unit: str = "%", width: int = 560
) -> str:
    """Horizontal bars of values in [0, 1] (shown in percent), one per label."""
    row, left, right = 22, 190, 60
    height = 30 + row * len(bars)
    span = width - left - right
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="4" y="16" class="chart-title">{escape(title)}</text>',
    ]
    for i, (label, value) in enumerate(bars):
        y = 26 + i * row
        w = max(0.0, min(1.0, value)) * span
        parts.append(
            f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{_f(w)}" height="{row - 6}" '
            f'fill="{PALETTE[0]}"/>'
            f'<text x="{_f(left + w + 4)}" y="{y + 14}">{100 * value:.1f}{escape(unit)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    series: dict[str, list[tuple[float, float]]],
    *,
    title: str,
    x_label: str,
    x_ticks: list[tuple[float, str]],
    width: int = 560,
    height: int = 260,
) -> str:
    """Lines of (x, y in [0, 1]) points, y in percent on a 0-100 axis, with a legend."""
    left, right, top, bottom = 48, 150, 28, 40
    xs = [x for pts in series.values() for x, _ in pts] + [t for t, _ in x_ticks]
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x1 == x0:
        x1 = x0 + 1.0
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + (1 - max(0.0, min(1.0, y))) * ph

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="4" y="16" class="chart-title">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" class="axis"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" class="axis"/>',
    ]
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<text x="{left - 4}" y="{_f(py(v) + 4)}" text-anchor="end">{100 * v:.0f}</text>'
        )
    for x, label in x_ticks:
        parts.append(
            f'<text x="{_f(px(x))}" y="{top + ph + 16}" text-anchor="middle">{escape(label)}</text>'
        )
    parts.append(
        f'<text x="{left + pw / 2:.1f}" y="{height - 4}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    n = len(series)
    for i, (name, pts) in enumerate(sorted(series.items())):
        color = PALETTE[i % len(PALETTE)]
        dash = DASHES[i % len(DASHES)]
        # Earlier series are drawn wider, so a later one on the same points leaves them
        # visible around it; each has its own dash pattern and marker (also readable in grey).
        width = 2 + 2 * (n - 1 - i)
        pts = sorted(pts)
        coords = " ".join(f"{_f(px(x))},{_f(py(y))}" for x, y in pts)
        parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{color}" '
            f'stroke-width="{_f(width)}"{dash} stroke-opacity="0.85"/>'
        )
        parts += [_marker(i, px(x), py(y), color) for x, y in pts]
        ly = top + 14 + 18 * i
        parts.append(
            f'<line x1="{left + pw + 8}" y1="{ly - 4}" x2="{left + pw + 30}" y2="{ly - 4}" '
            f'stroke="{color}" stroke-width="2"{dash}/>{_marker(i, left + pw + 19, ly - 4, color)}'
            f'<text x="{left + pw + 34}" y="{ly}">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


DASHES = ("", ' stroke-dasharray="7 4"', ' stroke-dasharray="2 3"', ' stroke-dasharray="9 3 2 3"')
"""Dash patterns of successive line-chart series."""


def _marker(i: int, x: float, y: float, color: str) -> str:
    """Marker ``i`` (circle, square, triangle, diamond) at (x, y)."""
    shape = i % 4
    if shape == 0:
        return f'<circle cx="{_f(x)}" cy="{_f(y)}" r="3.5" fill="{color}"/>'
    if shape == 1:
        return f'<rect x="{_f(x - 3.5)}" y="{_f(y - 3.5)}" width="7" height="7" fill="{color}"/>'
    if shape == 2:
        return (
            f'<path d="M{_f(x)},{_f(y - 4.5)}L{_f(x + 4.5)},{_f(y + 3.5)}'
            f'L{_f(x - 4.5)},{_f(y + 3.5)}Z" fill="{color}"/>'
        )
    return (
        f'<path d="M{_f(x)},{_f(y - 4.5)}L{_f(x + 4.5)},{_f(y)}L{_f(x)},{_f(y + 4.5)}'
        f'L{_f(x - 4.5)},{_f(y)}Z" fill="{color}"/>'
    )


def confusion_matrix(matrix: list[list[int]], labels: list[str], *, title: str) -> str:
    """A confusion matrix as shaded cells with counts: rows the true class, columns the
    predicted class, both axes labelled."""
    n = len(matrix)
    cell, left, top = 34, 130, 62
    width, height = left + cell * n + 10, top + cell * n + 10
    peak = max((max(r) for r in matrix if r), default=1) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="4" y="16" class="chart-title">{escape(title)}</text>',
        f'<text x="{left + cell * n / 2:.1f}" y="34" text-anchor="middle">predicted class</text>',
        f'<text x="12" y="{top + cell * n / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 12 {top + cell * n / 2:.1f})">true class</text>',
    ]
    for j in range(n):
        name = labels[j] if j < len(labels) else str(j)
        parts.append(
            f'<text x="{left + cell * j + cell / 2:.1f}" y="{top - 6}" text-anchor="middle">'
            f"<title>{escape(name)}</title>{escape(name[:4])}</text>"
        )
    for i, row in enumerate(matrix):
        name = labels[i] if i < len(labels) else str(i)
        parts.append(
            f'<text x="{left - 6}" y="{top + cell * i + 21}" text-anchor="end">'
            f"{escape(name[:16])}</text>"
        )
        for j, v in enumerate(row):
            shade = 255 - int(200 * v / peak)
            parts.append(
                f'<rect x="{left + cell * j}" y="{top + cell * i}" width="{cell}" '
                f'height="{cell}" fill="rgb({shade},{shade},255)" stroke="#fff"/>'
                f'<text x="{left + cell * j + cell / 2:.1f}" y="{top + cell * i + 21}" '
                f'text-anchor="middle">{int(v)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


_SHADES = ("#1b1b1b", "#6b3fa0", "#c0392b", "#e67e22", "#d4c200", "#2e86c1", "#7f8c8d")


def scatter_svg(
    panels: list[dict[str, Any]], names: list[str] | None = None, side: int = 220
) -> str:
    """A deterministic SVG of embedding panels (``{"layer", "points": [[x, y, group, class]]}``
    with x, y in [0, 1] and group ``train``, ``clean`` or ``adversarial``): dots, circles and
    crosses, coloured by class, a legend below. Every text is escaped; the site renders it
    from the figure index rather than copying a file."""
    pad, w = 10, len(panels) * (side + 20) + 20
    h = side + 70
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{w}" height="{h}" fill="#fff"/>',
    ]
    for k, panel in enumerate(panels):
        ox = 20 + k * (side + 20)
        out.append(
            f'<rect x="{ox}" y="20" width="{side}" height="{side}" fill="none" stroke="#999"/>'
        )
        out.append(f'<text x="{ox}" y="14">{escape(panel["layer"])}</text>')
        for x, y, g, c in panel["points"]:
            cx, cy = ox + pad + x * (side - 2 * pad), 20 + pad + y * (side - 2 * pad)
            col = _SHADES[c % len(_SHADES)]
            if g == "train":
                out.append(
                    f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="1.6" fill="{col}" '
                    'fill-opacity="0.45"/>'
                )
            elif g == "clean":
                out.append(
                    f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.2" fill="none" stroke="{col}"/>'
                )
            else:
                out.append(
                    f'<path d="M{cx - 3:.1f},{cy - 3:.1f}l6,6m0,-6l-6,6" stroke="{col}" '
                    'stroke-width="1.4"/>'
                )
    ly = side + 45
    out.append(
        f'<circle cx="26" cy="{ly - 4}" r="1.6" fill="#333"/>'
        f'<text x="34" y="{ly}">training (control)</text>'
    )
    out.append(
        f'<circle cx="156" cy="{ly - 4}" r="3.2" fill="none" stroke="#333"/>'
        f'<text x="164" y="{ly}">clean test</text>'
    )
    out.append(
        f'<path d="M263,{ly - 7}l6,6m0,-6l-6,6" stroke="#333"/>'
        f'<text x="276" y="{ly}">adversarial test</text>'
    )
    classes = sorted({p[3] for panel in panels for p in panel["points"]})
    x = 26
    for c in classes:
        label = names[c] if names and c < len(names) else f"class {c}"
        out.append(
            f'<rect x="{x}" y="{ly + 8}" width="9" height="9" fill="{_SHADES[c % len(_SHADES)]}"/>'
            f'<text x="{x + 13}" y="{ly + 16}">{escape(label)}</text>'
        )
        x += 20 + 7 * len(label)
    out.append("</svg>")
    return "\n".join(out) + "\n"
