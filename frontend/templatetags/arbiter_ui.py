"""Template helpers: the one markdown renderer as a filter, number formatting, and the SVG charts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import template
from django.utils.safestring import SafeString, mark_safe

from arbiter.markdown import render_markdown
from frontend import charts

register = template.Library()


@register.filter
def markdown(text: str) -> SafeString:
    """Render untrusted markdown with arbiter.markdown (sanitized by nh3, so it is safe to mark safe)."""
    return mark_safe(render_markdown(text or ""))


@register.filter
def duration_ms(value: int | None) -> str:
    if value is None:
        return "–"
    seconds = value / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    return f"{minutes} min {sec:02d} s"


@register.filter
def percent(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.{int(digits)}f}%"


@register.filter
def fixed(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "–"
    return f"{value:.{int(digits)}f}"


@register.inclusion_tag("frontend/charts/line.html")
def progress_chart(days: Sequence[Any], target: int, title: str, chart_id: str) -> dict[str, Any]:
    chart = charts.line_chart([d.day for d in days], [d.cumulative for d in days], target=target or None)
    return {"c": chart, "title": title, "id": chart_id, "days": days}


@register.inclusion_tag("frontend/charts/bars.html")
def daily_bars(days: Sequence[Any], title: str, chart_id: str) -> dict[str, Any]:
    chart = charts.bar_chart([d.day for d in days], [d.count for d in days])
    return {"c": chart, "title": title, "id": chart_id}


@register.inclusion_tag("frontend/charts/hbars.html")
def label_bars(items: Sequence[Any], title: str, chart_id: str) -> dict[str, Any]:
    chart = charts.hbar_chart([i.label for i in items], [i.count for i in items])
    total = sum(i.count for i in items)
    return {"c": chart, "title": title, "id": chart_id, "items": items, "total": total}
