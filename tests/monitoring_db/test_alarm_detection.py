"""Alarm detection on crafted series (no database)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from ingot.monitoring.alarms import HourlyValue, LimitValue, exceedances, missing_data, prolonged_flags
from ingot.monitoring.validity import Sample

T0 = datetime(2026, 11, 1, 0, 0, tzinfo=timezone.utc)
LIMITS = {"a21026": LimitValue(Decimal("400"), "mg/m3")}


def test_exceedance_judges_converted_average():
    hours = [
        HourlyValue("a21026", T0, Decimal("380"), Decimal("420")),  # measured below, converted above: alarm
        HourlyValue("a21026", T0 + timedelta(hours=1), Decimal("450"), Decimal("390")),  # converted below: none
        HourlyValue("a21026", T0 + timedelta(hours=2), Decimal("400"), Decimal("400")),  # equal is not above
    ]
    found = exceedances(7, hours, LIMITS)
    assert [(a.data_time, a.value, a.limit_value) for a in found] == [(T0, Decimal("420"), Decimal("400"))]
    assert "ZsAvg" in found[0].detail


def test_exceedance_falls_back_to_average_without_converted_value():
    found = exceedances(7, [HourlyValue("a21026", T0, Decimal("401"), None)], LIMITS)
    assert found[0].value == Decimal("401") and "Avg" in found[0].detail


def test_no_limit_no_alarm():
    assert exceedances(7, [HourlyValue("a34013", T0, Decimal("999"), Decimal("999"))], LIMITS) == []


def test_missing_data_after_configured_silence():
    last = T0
    assert missing_data(1, last, T0, T0 + timedelta(minutes=29)) is None
    alarm = missing_data(1, last, T0, T0 + timedelta(minutes=30))
    assert alarm.kind == "missing_data" and "30" in alarm.detail
    # a point that never sent counts from when it was registered
    assert missing_data(1, None, T0, T0 + timedelta(hours=1)).data_time is None


def _run(flag, count, start=T0):
    return [Sample(start + timedelta(minutes=i), Decimal("1"), flag) for i in range(count)]


def test_prolonged_flag_needs_the_configured_duration():
    assert prolonged_flags(1, "a21026", _run("D", 59)) == []
    found = prolonged_flags(1, "a21026", _run("D", 60))
    assert len(found) == 1 and found[0].flag == "D" and found[0].data_time == T0


def test_flag_run_is_broken_by_normal_values_and_gaps():
    broken = _run("C", 30) + _run("N", 1, T0 + timedelta(minutes=30)) + _run("C", 30, T0 + timedelta(minutes=31))
    assert prolonged_flags(1, "a21026", broken) == []
    gap = _run("F", 30) + _run("F", 30, T0 + timedelta(minutes=40))
    assert prolonged_flags(1, "a21026", gap) == []


def test_normal_and_unwatched_flags_never_alarm():
    assert prolonged_flags(1, "a21026", _run("N", 200)) == []
    assert prolonged_flags(1, "a21026", _run("S", 200)) == []


def test_two_separate_runs_two_alarms_in_any_input_order():
    series = _run("M", 60) + _run("N", 5, T0 + timedelta(minutes=60)) + _run("T", 61, T0 + timedelta(minutes=65))
    found = prolonged_flags(1, "a21026", list(reversed(series)))
    assert [a.flag for a in found] == ["M", "T"]
