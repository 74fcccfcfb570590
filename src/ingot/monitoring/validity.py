"""Aggregation and data validity of HJ 212 flue-gas data (HJ 212-2017 appendix D, D.2.2), pure functions.

The thresholds live in validity.yaml beside this module, each with the clause it comes from; nothing here hard-codes
a count or a share. Hours are UTC hours (identical to Beijing hours, the offset being whole); days are Beijing
calendar days, since that is the day a Chinese daily value (CN 2031) reports.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import yaml

from ingot.core.timeutil import SHANGHAI

_SCALE = Decimal("0.000001")


@dataclass(frozen=True)
class AggregationRule:
    kind: str
    source_kind: str
    min_valid_inputs: int
    clause: str


@dataclass(frozen=True)
class ValidityRules:
    aggregations: dict[str, AggregationRule]
    valid_input_flags: frozenset[str]
    normal_flag: str
    normal_share: Fraction
    missing_data_after: timedelta
    prolonged_flags: frozenset[str]
    prolonged_flag_after: timedelta
    standard: str

    def rule(self, kind: str) -> AggregationRule:
        try:
            return self.aggregations[kind]
        except KeyError:
            raise ValueError(f"no aggregation rule for kind {kind!r}") from None


def rules_from_mapping(data: dict) -> ValidityRules:
    """Build rules from the YAML's structure; every key is required so a typo fails loudly."""
    aggregations = {
        kind: AggregationRule(kind, entry["from"], int(entry["min_valid_inputs"]), str(entry["clause"]))
        for kind, entry in data["aggregations"].items()
    }
    share = data["normal_share_for_normal_flag"]
    alarms = data["alarms"]
    return ValidityRules(
        aggregations=aggregations,
        valid_input_flags=frozenset(data["valid_input_flags"]),
        normal_flag=str(data["normal_flag"]),
        normal_share=Fraction(int(share["numerator"]), int(share["denominator"])),
        missing_data_after=timedelta(minutes=int(alarms["missing_data_after_minutes"])),
        prolonged_flags=frozenset(alarms["prolonged_flags"]),
        prolonged_flag_after=timedelta(minutes=int(alarms["prolonged_flag_minutes"])),
        standard=str(data["standard"]),
    )


@lru_cache(maxsize=1)
def default_rules() -> ValidityRules:
    text = (Path(__file__).with_name("validity.yaml")).read_text(encoding="utf-8")
    return rules_from_mapping(yaml.safe_load(text))


@dataclass(frozen=True)
class Sample:
    """One input value: a real-time value, or a minute or hourly average, with its data flag (table 8)."""

    data_time: datetime
    value: Decimal | None
    flag: str | None = "N"
    converted: Decimal | None = None  # the Zs (折算) value when the device sends one


@dataclass(frozen=True)
class Aggregate:
    kind: str
    period_start: datetime
    inputs: int
    valid_inputs: int
    valid: bool
    avg: Decimal | None
    min: Decimal | None
    max: Decimal | None
    converted_avg: Decimal | None
    flag: str | None
    reason: str | None  # why the aggregate is not valid, as a reason code


def _mean(values: Sequence[Decimal]) -> Decimal | None:
    if not values:
        return None
    return (sum(values, Decimal(0)) / len(values)).quantize(_SCALE, rounding=ROUND_HALF_EVEN)


def _is_valid(sample: Sample, rules: ValidityRules) -> bool:
    return sample.value is not None and (sample.flag or rules.normal_flag) in rules.valid_input_flags


def _aggregate_flag(samples: Sequence[Sample], rules: ValidityRules) -> str | None:
    flags = [sample.flag or rules.normal_flag for sample in samples]
    normal = sum(1 for flag in flags if flag == rules.normal_flag)
    if flags and Fraction(normal, len(flags)) >= rules.normal_share:
        return rules.normal_flag
    others = Counter(flag for flag in flags if flag != rules.normal_flag)
    if not others:
        return None
    # Most frequent abnormal flag; ties go to the alphabetically first so the result never depends on input order.
    best = max(others.values())
    return min(flag for flag, count in others.items() if count == best)


def aggregate(samples: Sequence[Sample], kind: str, period_start: datetime, rules: ValidityRules | None = None) -> Aggregate:
    """Aggregate one period's inputs into a `kind` value (minute, hour or day) under the validity rules."""
    rules = rules or default_rules()
    rule = rules.rule(kind)
    valid = [sample for sample in samples if _is_valid(sample, rules)]
    values = [sample.value for sample in valid]
    converted = [sample.converted for sample in valid if sample.converted is not None]
    enough = len(valid) >= rule.min_valid_inputs
    return Aggregate(
        kind=kind,
        period_start=period_start,
        inputs=len(samples),
        valid_inputs=len(valid),
        valid=enough,
        avg=_mean(values),
        min=min(values) if values else None,
        max=max(values) if values else None,
        # Converted values are averaged only when every valid input has one; a partial mean would mislead.
        converted_avg=_mean(converted) if valid and len(converted) == len(valid) else None,
        flag=_aggregate_flag(samples, rules),
        reason=None if enough else "insufficient_valid_inputs",
    )


def period_start(moment: datetime, kind: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every time in Ingot carries its zone")
    moment = moment.astimezone(timezone.utc)
    if kind == "minute":
        return moment.replace(second=0, microsecond=0)
    if kind == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    if kind == "day":
        local = moment.astimezone(SHANGHAI).replace(hour=0, minute=0, second=0, microsecond=0)
        return local.astimezone(timezone.utc)
    raise ValueError(f"no period for kind {kind!r}")


def aggregate_series(samples: Iterable[Sample], kind: str, rules: ValidityRules | None = None) -> list[Aggregate]:
    """Group inputs by period (minute, hour, or Beijing day) and aggregate each, in time order."""
    rules = rules or default_rules()
    groups: dict[datetime, list[Sample]] = {}
    for sample in samples:
        groups.setdefault(period_start(sample.data_time, kind), []).append(sample)
    return [aggregate(groups[start], kind, start, rules) for start in sorted(groups)]
