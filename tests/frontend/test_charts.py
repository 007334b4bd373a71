"""SVG chart geometry, template helpers, and the generated Pygments stylesheet."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from frontend import charts
from frontend.pygments_css import CSS_PATH, pygments_css
from frontend.templatetags.arbiter_ui import duration_ms, markdown, percent


@pytest.mark.parametrize(("value", "expected"), [(0, 1), (1, 1), (3, 5), (7, 10), (27, 50), (120, 200), (2400, 2500)])
def test_nice_max(value, expected):
    assert charts.nice_max(value) == expected


def test_line_chart_geometry():
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(3)]
    c = charts.line_chart(days, [0, 5, 10], target=10, width=200, height=100)
    # plot box: x 56..184, y 16..68; vmax 10
    assert c.line == "56.0,68.0 120.0,42.0 184.0,16.0"
    assert c.target_y == pytest.approx(16.0) and c.target_label == "target 10"
    assert [t.label for t in c.x_ticks] == ["Jan 1", "Jan 2", "Jan 3"]
    assert [p.value for p in c.points] == [0, 5, 10]


def test_bar_and_hbar_charts():
    days = [date(2026, 1, 1), date(2026, 1, 2)]
    c = charts.bar_chart(days, [4, 0], width=200, height=100)
    assert c.bars[0].height > 0 and c.bars[1].height == 0 and c.bars[0].x < c.bars[1].x
    h = charts.hbar_chart(["a", "b"], [2, 1], width=400)
    assert h.bars[0].width == 2 * h.bars[1].width and h.height == 8 + 2 * 28


def test_template_helpers():
    assert str(markdown("<b>x</b> **y**")) == "<p>&lt;b&gt;x&lt;/b&gt; <strong>y</strong></p>\n"
    assert duration_ms(None) == "–" and duration_ms(1500) == "1.5 s" and duration_ms(65_000) == "1 min 05 s"
    assert percent(0.756) == "76%" and percent(None) == "–"


def test_committed_pygments_css_is_current():
    assert CSS_PATH.read_text() == pygments_css()
    call_command("pygments_css", "--check")


def test_pygments_css_check_fails_when_stale(tmp_path, monkeypatch):
    stale = tmp_path / "pygments.css"
    stale.write_text("/* old */")
    monkeypatch.setattr("frontend.management.commands.pygments_css.CSS_PATH", stale)
    with pytest.raises(CommandError):
        call_command("pygments_css", "--check")
    call_command("pygments_css")
    assert stale.read_text() == pygments_css()
