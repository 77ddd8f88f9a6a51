"""Metric charts as SVG drawn on the server: no script, no library, nothing from the network.

Every text that ends up in the SVG (a metric's name, a run's id) is escaped here, since the
result is marked safe for the templates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from markupsafe import Markup, escape

from ..metrics import MetricPoint

__all__ = ["PALETTE", "Line", "line_chart", "numeric_points"]

#: One colour per run in a comparison (at most 10 runs), distinct for common colour blindness first.
PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d")
WIDTH, HEIGHT = 560, 220
LEFT, RIGHT, TOP, BOTTOM = 60, 16, 14, 30


@dataclass(frozen=True)
class Line:
    label: str
    colour: str
    points: tuple[tuple[float, float], ...]


def numeric_points(points: Sequence[MetricPoint]) -> tuple[tuple[float, float], ...]:
    """(step, value) for the finite numbers of a series; a point without a step is placed by its
    position, as MLflow does."""
    out = []
    for index, point in enumerate(points):
        value = point.value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        out.append((float(point.step if point.step is not None else index), float(value)))
    return tuple(out)


def line_chart(title: str, lines: Sequence[Line]) -> Markup:
    """An SVG line chart of one metric, one line per run, with its axes labelled."""
    drawn = [line for line in lines if line.points]
    xs = [x for line in drawn for x, _ in line.points] or [0.0]
    ys = [y for line in drawn for _, y in line.points] or [0.0]
    x_lo, x_hi = _span(min(xs), max(xs))
    y_ticks = _ticks(min(ys), max(ys))
    y_lo, y_hi = y_ticks[0], y_ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x_lo) / (x_hi - x_lo) * plot_w

    def py(y: float) -> float:
        return TOP + plot_h - (y - y_lo) / (y_hi - y_lo) * plot_h

    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for tick in y_ticks:
        y = py(tick)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
                     f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#6b7280">'
                     f'{escape(_number(tick))}</text>')
    for x in sorted({x_lo, x_hi} if x_lo != x_hi else {x_lo}):
        parts.append(f'<text x="{px(x):.1f}" y="{HEIGHT - 10}" text-anchor="middle" font-size="11" fill="#6b7280">'
                     f'{escape(_number(x))}</text>')
    parts.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 10}" text-anchor="middle" font-size="11" fill="#9ca3af">step</text>')
    for line in drawn:
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in line.points)
        parts.append(f'<polyline class="series" fill="none" stroke="{line.colour}" stroke-width="2" '
                     f'stroke-linejoin="round" points="{coords}"><title>{escape(line.label)}</title></polyline>')
        if len(line.points) <= 60:
            for x, y in line.points:
                parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{line.colour}">'
                             f'<title>{escape(line.label)}: step {escape(_number(x))}, {escape(_number(y))}</title></circle>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _span(lo: float, hi: float) -> tuple[float, float]:
    return (lo - 1, hi + 1) if lo == hi else (lo, hi)


def _ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Round tick values that cover [lo, hi]: 0.2, 0.4, … rather than 0.213, 0.426."""
    lo, hi = _span(lo, hi) if lo == hi else (lo, hi)
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(lo / step) * step
    ticks = [start]
    while ticks[-1] < hi - step * 1e-9:
        ticks.append(ticks[-1] + step)
    return ticks


def _number(value: Any) -> str:
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.4g}"
    return str(value)
