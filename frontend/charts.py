"""Geometry for the dashboard's server-rendered SVG charts (no chart library, no JS).

Pure functions from numbers to coordinates; the templates in ``templates/frontend/charts/`` draw
them. Labels are plain strings and the templates autoescape them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class Tick:
    pos: float
    label: str
    anchor: str = "middle"  # SVG text-anchor: the first and last x labels hug the plot's edges


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int

    @property
    def end(self) -> float:
        return self.x + self.width


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str
    value: int


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    line: str = ""  # polyline points
    area: str = ""  # polygon points under the line
    target_y: float | None = None
    target_label: str = ""
    bars: list[Bar] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)

    @property
    def plot_bottom(self) -> int:
        return self.height - self.bottom

    @property
    def plot_right(self) -> int:
        return self.width - self.right


def nice_max(value: float) -> int:
    """The smallest 'round' number (1, 2, 2.5, 5 x 10^k) at or above value; at least 1."""
    if value <= 1:
        return 1
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * exp >= value:
            return math.ceil(step * exp)
    return math.ceil(10 * exp)  # pragma: no cover


def _y_ticks(top: int, bottom: int, vmax: int, n: int = 4) -> list[Tick]:
    ticks = []
    for i in range(n + 1):
        value = vmax * i / n
        ticks.append(Tick(pos=bottom - (bottom - top) * i / n, label=f"{value:,.0f}" if value == int(value) else ""))
    return [t for t in ticks if t.label]


def _anchor(i: int, n: int) -> str:
    if n > 1 and i == 0:
        return "start"
    return "end" if n > 1 and i == n - 1 else "middle"


def _day_label(day: date) -> str:
    return f"{day:%b} {day.day}"


def line_chart(
    days: Sequence[date], values: Sequence[int], *, target: int | None = None, width: int = 640, height: int = 220
) -> Chart:
    """A cumulative line over days, with an optional dashed target line."""
    left, right, top, bottom = 56, 16, 16, 32
    vmax = nice_max(max([*values, target or 0, 1]))
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(values)

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h * (1 - v / vmax)

    points = [(x(i), y(v)) for i, v in enumerate(values)]
    line = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
    area = ""
    if points:
        base = top + plot_h
        area = f"{points[0][0]:.1f},{base:.1f} {line} {points[-1][0]:.1f},{base:.1f}"
    x_ticks = []
    if n:
        idx = sorted({0, n // 2, n - 1}) if n > 2 else list(range(n))
        x_ticks = [Tick(pos=x(i), label=_day_label(days[i]), anchor=_anchor(i, n)) for i in idx]
    return Chart(
        width=width,
        height=height,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        line=line,
        area=area,
        target_y=y(target) if target else None,
        target_label=f"target {target:,}" if target else "",
        y_ticks=_y_ticks(top, top + plot_h, vmax),
        x_ticks=x_ticks,
        points=[Point(x=px, y=py, label=_day_label(days[i]), value=values[i]) for i, (px, py) in enumerate(points)],
    )


def bar_chart(days: Sequence[date], values: Sequence[int], *, width: int = 640, height: int = 180) -> Chart:
    """One bar per day."""
    left, right, top, bottom = 56, 16, 12, 32
    vmax = nice_max(max([*values, 1]))
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(values), 1)
    slot = plot_w / n
    bar_w = max(slot * 0.7, 1.0)
    bars = []
    for i, v in enumerate(values):
        h = plot_h * v / vmax
        bars.append(
            Bar(
                x=left + slot * i + (slot - bar_w) / 2,
                y=top + plot_h - h,
                width=bar_w,
                height=h,
                label=_day_label(days[i]),
                value=v,
            )
        )
    x_ticks = []
    if values:
        idx = sorted({0, len(values) // 2, len(values) - 1})
        x_ticks = [Tick(pos=left + slot * i + slot / 2, label=_day_label(days[i])) for i in idx]
    return Chart(
        width=width,
        height=height,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        bars=bars,
        y_ticks=_y_ticks(top, top + plot_h, vmax),
        x_ticks=x_ticks,
    )


def hbar_chart(labels: Sequence[str], values: Sequence[int], *, width: int = 640, row: int = 28) -> Chart:
    """Horizontal bars, one row per label (label on the left, count on the right of the bar)."""
    left, right, top, bottom = 210, 64, 4, 4
    vmax = max([*values, 1])
    plot_w = width - left - right
    bars = [
        Bar(x=left, y=top + i * row + 4, width=plot_w * v / vmax, height=row - 8, label=label, value=v)
        for i, (label, v) in enumerate(zip(labels, values, strict=True))
    ]
    return Chart(
        width=width,
        height=top + bottom + row * len(bars),
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        bars=bars,
    )
