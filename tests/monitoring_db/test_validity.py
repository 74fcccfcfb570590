"""Validity rules of HJ 212-2017 appendix D on crafted series; thresholds come from validity.yaml."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction

import pytest
import yaml

from ingot.monitoring.validity import Sample, aggregate, aggregate_series, default_rules, period_start, rules_from_mapping

HOUR = datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc)


def minutes(count, value="10", flag="N", start=HOUR, converted=None):
    return [Sample(start + timedelta(minutes=i), Decimal(value), flag, Decimal(converted) if converted else None)
            for i in range(count)]


def test_thresholds_come_from_the_yaml_with_their_clause():
    rules = default_rules()
    assert rules.rule("hour").min_valid_inputs == 45 and "45≤k" in rules.rule("hour").clause
    assert rules.rule("day").min_valid_inputs == 20 and "20≤m" in rules.rule("day").clause
    assert rules.normal_share == Fraction(3, 4)


def test_hour_with_45_valid_minutes_is_valid_and_44_is_not():
    assert aggregate(minutes(45), "hour", HOUR).valid
    short = aggregate(minutes(44), "hour", HOUR)
    assert not short.valid and short.reason == "insufficient_valid_inputs" and short.valid_inputs == 44


def test_invalid_flags_do_not_count_towards_validity():
    series = minutes(44) + minutes(16, flag="M", start=HOUR + timedelta(minutes=44))
    result = aggregate(series, "hour", HOUR)
    assert result.inputs == 60 and result.valid_inputs == 44 and not result.valid


def test_flag_n_needs_three_quarters_normal_inputs():
    exactly = minutes(45) + minutes(15, flag="T", start=HOUR + timedelta(minutes=45))
    assert aggregate(exactly, "hour", HOUR).flag == "N"  # 45/60 = 75 %
    below = minutes(44) + minutes(16, flag="T", start=HOUR + timedelta(minutes=44))
    result = aggregate(below, "hour", HOUR)
    assert result.valid and result.flag == "T"  # T still counts as a valid reading


def test_most_frequent_abnormal_flag_wins_ties_alphabetically():
    series = minutes(2, flag="M") + minutes(2, flag="D", start=HOUR + timedelta(minutes=2))
    assert aggregate(series, "hour", HOUR).flag == "D"


def test_mean_min_max_are_exact_decimals():
    series = [Sample(HOUR + timedelta(minutes=i), Decimal(v), "N") for i, v in enumerate(["1.1", "2.2", "3.3"] * 15)]
    result = aggregate(series, "hour", HOUR)
    assert result.avg == Decimal("2.200000") and result.min == Decimal("1.1") and result.max == Decimal("3.3")


def test_converted_average_only_when_every_valid_input_has_one():
    assert aggregate(minutes(45, converted="12"), "hour", HOUR).converted_avg == Decimal("12")
    mixed = minutes(44, converted="12") + minutes(1, start=HOUR + timedelta(minutes=44))
    assert aggregate(mixed, "hour", HOUR).converted_avg is None


def test_day_needs_20_valid_hours():
    hours = [Sample(HOUR + timedelta(hours=i), Decimal("5"), "N") for i in range(20)]
    day = period_start(HOUR, "day")
    assert aggregate(hours, "day", day).valid
    assert not aggregate(hours[:19], "day", day).valid


def test_days_are_beijing_calendar_days():
    # 15:59 UTC is 23:59 in Beijing, 16:00 UTC is the next Beijing day.
    late = datetime(2026, 11, 1, 15, 59, tzinfo=timezone.utc)
    assert period_start(late, "day") == datetime(2026, 10, 31, 16, 0, tzinfo=timezone.utc)
    assert period_start(late + timedelta(minutes=1), "day") == datetime(2026, 11, 1, 16, 0, tzinfo=timezone.utc)


def test_series_groups_by_hour_in_order():
    series = minutes(50, start=HOUR + timedelta(hours=1)) + minutes(30)
    result = aggregate_series(series, "hour")
    assert [(a.period_start, a.valid) for a in result] == [(HOUR, False), (HOUR + timedelta(hours=1), True)]


def test_naive_time_is_refused():
    with pytest.raises(ValueError):
        period_start(datetime(2026, 1, 1), "hour")


def test_rules_from_other_mapping_change_the_outcome():
    data = yaml.safe_load(open(__import__("ingot.monitoring.validity", fromlist=["x"]).__file__.replace("validity.py", "validity.yaml"), encoding="utf-8"))
    data["aggregations"]["hour"]["min_valid_inputs"] = 50
    rules = rules_from_mapping(data)
    assert not aggregate(minutes(45), "hour", HOUR, rules).valid
    del data["normal_flag"]
    with pytest.raises(KeyError):
        rules_from_mapping(data)
