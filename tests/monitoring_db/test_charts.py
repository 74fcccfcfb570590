"""The SVG line chart: limit lines, gaps broken, empty series, escaping."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from ingot.monitoring.charts import line_chart

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def test_limit_line_and_labels_in_beijing_time():
    svg = str(line_chart([("SO2", [(T0 + timedelta(minutes=i), Decimal(300 + i)) for i in range(10)])],
                         limits=[("限值", Decimal("400"))], unit="mg/m3"))
    assert svg.startswith("<svg") and 'stroke-dasharray="6 4"' in svg and "限值 400 mg/m3" in svg
    assert "11-01 08:00" in svg  # 00:00 UTC shown as Beijing time


def test_outage_breaks_the_line():
    values = [(T0 + timedelta(minutes=i), Decimal(1)) for i in range(5)]
    values += [(T0 + timedelta(minutes=60 + i), Decimal(2)) for i in range(5)]
    path = str(line_chart([("x", values)])).split('<path d="')[1].split('"')[0]
    assert path.count("M") == 2 and path.count("L") == 8


def test_empty_and_escaped():
    assert "暂无数据" in str(line_chart([("x", [])], empty_text="暂无数据"))
    assert "<script>" not in str(line_chart([("<script>", [(T0, Decimal(1))])]))
