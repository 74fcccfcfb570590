"""Server-side SVG charts: the UI needs no script library and no network."""
from __future__ import annotations

from decimal import Decimal
from html import escape

from markupsafe import Markup

PALETTE = ("#9a3412", "#1d4ed8", "#047857", "#a16207", "#7c3aed", "#be185d", "#0e7490", "#4d7c0f", "#b91c1c", "#334155",
           "#c2410c", "#0369a1", "#15803d", "#854d0e", "#6d28d9", "#9d174d", "#155e75", "#3f6212", "#991b1b")


def _format(value: Decimal) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value.normalize():f}"


def stacked_bars(rows: list[tuple[str, list[tuple[str, Decimal]]]], *, unit: str, width: int = 900) -> Markup:
    """One horizontal bar per row, split into coloured segments; a legend lists the segment names.

    rows: [(row label, [(segment name, value), ...]), ...]
    """
    segment_names: list[str] = []
    for _label, segments in rows:
        for name, _value in segments:
            if name not in segment_names:
                segment_names.append(name)
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(segment_names)}
    totals = [sum((value for _n, value in segments), Decimal(0)) for _l, segments in rows]
    largest = max(totals, default=Decimal(0)) or Decimal(1)
    label_width, bar_height, gap = 130, 26, 12
    plot_width = width - label_width - 140
    legend_rows = (len(segment_names) + 5) // 6
    height = len(rows) * (bar_height + gap) + 24 * legend_rows + 20
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="chart">']
    y = 10
    for (label, segments), total in zip(rows, totals):
        parts.append(f'<text x="{label_width - 8}" y="{y + 18}" text-anchor="end" font-size="13">{escape(label)}</text>')
        x = Decimal(label_width)
        for name, value in segments:
            w = Decimal(plot_width) * value / largest
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_height}" fill="{colours[name]}">'
                f'<title>{escape(label)} · {escape(name)}: {_format(value)} {escape(unit)}</title></rect>'
            )
            x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 18}" font-size="12" fill="#616e7c">{_format(total)} {escape(unit)}</text>')
        y += bar_height + gap
    for i, name in enumerate(segment_names):
        lx, ly = label_width + (i % 6) * 125, y + 8 + (i // 6) * 24
        parts.append(f'<rect x="{lx}" y="{ly}" width="12" height="12" fill="{colours[name]}"/>')
        parts.append(f'<text x="{lx + 16}" y="{ly + 11}" font-size="12">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
