"""Server-side SVG charts: plain markup with a visible title, axis labels, gridlines and a tooltip per bar.

No chart library in the browser. ``bar_chart`` is pure: the same input always gives the same SVG text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 1000  # viewBox units; the SVG scales to its container (about the width of a page card)
HEIGHT = 240
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 64, 12, 34, 40  # room for y labels, the title and x labels
MAX_X_LABELS = 10  # more than this and the day labels overlap


@dataclass(frozen=True, slots=True)
class Bar:
    label: str  # x-axis label ("12 Mar")
    value: int
    tooltip: str  # "12 Mar 2025: 5 requests"


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 x 10^k at or above ``value`` (at least 1), so gridlines land on round numbers."""
    if value <= 1:
        return 1
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover


def _fmt(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def bar_chart(bars: Sequence[Bar], *, chart_id: str, title: str, description: str, y_label: str,
              value_format: Callable[[int], str], empty_text: str) -> Markup:
    top = nice_ceiling(max((b.value for b in bars), default=0))
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    base_y = PAD_TOP + plot_h
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{escape(chart_id)}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(description)}</desc>',
        f'<text class="chart-title" x="{PAD_LEFT}" y="20">{escape(title)}</text>',
        f'<text class="axis-label" x="12" y="{PAD_TOP + plot_h / 2:.0f}" '
        f'transform="rotate(-90 12 {PAD_TOP + plot_h / 2:.0f})" text-anchor="middle">{escape(y_label)}</text>',
    ]
    for fraction in (0.0, 0.5, 1.0) if top % 2 == 0 else (0.0, 1.0):  # a middle line only on a whole number
        y = base_y - plot_h * fraction
        parts.append(f'<line class="grid" x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{_fmt(y)}" y2="{_fmt(y)}"/>')
        parts.append(f'<text class="tick" x="{PAD_LEFT - 6}" y="{_fmt(y + 4)}" text-anchor="end">'
                     f'{escape(value_format(round(top * fraction)))}</text>')
    if bars:
        slot = plot_w / len(bars)
        bar_w = max(1.0, slot * 0.7)
        every = max(1, -(-len(bars) // MAX_X_LABELS))
        for i, bar in enumerate(bars):
            h = plot_h * bar.value / top
            x = PAD_LEFT + i * slot + (slot - bar_w) / 2
            parts.append(f'<rect class="bar" x="{_fmt(x)}" y="{_fmt(base_y - h)}" width="{_fmt(bar_w)}" '
                         f'height="{_fmt(h)}" data-value="{bar.value}"><title>{escape(bar.tooltip)}</title></rect>')
            if i % every == 0 or (i == len(bars) - 1 and len(bars) <= MAX_X_LABELS):
                parts.append(f'<text class="tick" x="{_fmt(x + bar_w / 2)}" y="{base_y + 16}" '
                             f'text-anchor="middle">{escape(bar.label)}</text>')
    if not any(b.value for b in bars):
        parts.append(f'<text class="chart-empty" x="{PAD_LEFT + plot_w / 2:.0f}" y="{PAD_TOP + plot_h / 2:.0f}" '
                     f'text-anchor="middle">{escape(empty_text)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text above is escaped
