"""Server-side SVG line charts for monitoring series, with horizontal limit lines; no script, no network."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from html import escape

from markupsafe import Markup

from ingot.core.timeutil import SHANGHAI

SERIES_COLOURS = ("#1d4ed8", "#047857", "#a16207", "#7c3aed", "#be185d", "#0e7490")
LIMIT_COLOUR = "#b91c1c"


def _label(value: Decimal) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value.normalize():f}"


def line_chart(series: list[tuple[str, list[tuple[datetime, Decimal]]]], *, limits: list[tuple[str, Decimal]] = (),
               unit: str = "", width: int = 900, height: int = 260, empty_text: str = "") -> Markup:
    """series: [(name, [(time, value), ...]), ...]; limits: [(label, value), ...] drawn as dashed red lines.

    Points flagged invalid should be left out by the caller; gaps longer than three typical steps break the line
    so an outage shows as a gap rather than a straight interpolation.
    """
    points = [point for _name, values in series for point in values]
    if not points:
        return Markup(f'<svg class="chart" viewBox="0 0 {width} 60" role="img"><text x="10" y="35" fill="#6b7280">'
                      f'{escape(empty_text)}</text></svg>')
    left, right, top, bottom = 70, 20, 14, 34
    times = [moment for moment, _value in points]
    values = [value for _moment, value in points] + [value for _label_text, value in limits]
    first, last = min(times), max(times)
    span = (last - first).total_seconds() or 1.0
    low, high = min(values + [Decimal(0)]), max(values)
    if high == low:
        high = low + 1
    high += (high - low) / 10
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(moment: datetime) -> float:
        return left + plot_w * (moment - first).total_seconds() / span

    def y(value: Decimal) -> float:
        return top + plot_h * float((high - value) / (high - low))

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" xmlns="http://www.w3.org/2000/svg">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#e5e7eb"/>']
    for step in range(5):
        value = low + (high - low) * step / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#f1f5f9"/>'
                     f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end" font-size="11" fill="#6b7280">'
                     f'{escape(_label(value))}</text>')
    for moment in (first, first + (last - first) / 2, last):
        parts.append(f'<text x="{x(moment):.1f}" y="{height - 12}" text-anchor="middle" font-size="11" fill="#6b7280">'
                     f'{moment.astimezone(SHANGHAI):%m-%d %H:%M}</text>')
    for index, (name, values_in_series) in enumerate(series):
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        ordered = sorted(values_in_series)
        steps = sorted((b[0] - a[0]).total_seconds() for a, b in zip(ordered, ordered[1:]))
        typical = steps[len(steps) // 2] if steps else 0
        path, previous = [], None
        for moment, value in ordered:
            breaks = previous is None or (typical and (moment - previous).total_seconds() > 3 * typical)
            path.append(f'{"M" if breaks else "L"}{x(moment):.1f},{y(value):.1f}')
            previous = moment
        parts.append(f'<path d="{" ".join(path)}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
        if len(ordered) == 1:
            moment, value = ordered[0]
            parts.append(f'<circle cx="{x(moment):.1f}" cy="{y(value):.1f}" r="3" fill="{colour}"/>')
        parts.append(f'<text x="{left + 8 + 160 * index}" y="{top + 14}" font-size="12" fill="{colour}">'
                     f'{escape(name)}</text>')
    for label_text, value in limits:
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                     f'stroke="{LIMIT_COLOUR}" stroke-dasharray="6 4" stroke-width="1.4"/>'
                     f'<text x="{left + plot_w - 4}" y="{y(value) - 4:.1f}" text-anchor="end" font-size="11" '
                     f'fill="{LIMIT_COLOUR}">{escape(label_text)} {escape(_label(value))} {escape(unit)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
