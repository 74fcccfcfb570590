"""Alarm detection (pure) and the alarm lifecycle open → acknowledged → closed (audit-logged).

Detection works on plain values so it can be tested on crafted series; `open_alarms` and the lifecycle functions
write through the session, each write with its audit entry in the same transaction.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Iterable, Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingot.core.audit import record_change
from ingot.core.auth import Principal
from ingot.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from ingot.core.timeutil import utcnow
from ingot.monitoring.models import Alarm, MonitoringPoint
from ingot.monitoring.validity import Sample, ValidityRules, default_rules


@dataclass(frozen=True)
class LimitValue:
    value: Decimal
    unit: str


@dataclass(frozen=True)
class HourlyValue:
    pollutant: str
    data_time: datetime
    avg: Decimal | None
    converted_avg: Decimal | None
    flag: str | None = "N"


@dataclass(frozen=True)
class AlarmCandidate:
    kind: str
    point_id: int
    pollutant: str | None
    data_time: datetime | None
    value: Decimal | None
    limit_value: Decimal | None
    unit: str | None
    flag: str | None
    detail: str
    dedup_key: str


def exceedances(point_id: int, hours: Iterable[HourlyValue], limits: Mapping[str, LimitValue]) -> list[AlarmCandidate]:
    """Hourly averages above the point's permit limit.

    The converted (Zs, 折算) average is compared; HJ 212-2017 D.2.3 (4) says that where the discharge standard sets
    no reference oxygen or excess-air coefficient the converted value *is* the measured dry standard value, so a
    device sending no Zs value is judged on its plain average.
    """
    found = []
    for hour in hours:
        limit = limits.get(hour.pollutant)
        if limit is None:
            continue
        judged = hour.converted_avg if hour.converted_avg is not None else hour.avg
        if judged is None or judged <= limit.value:
            continue
        basis = "ZsAvg" if hour.converted_avg is not None else "Avg"
        found.append(
            AlarmCandidate(
                kind="exceedance",
                point_id=point_id,
                pollutant=hour.pollutant,
                data_time=hour.data_time,
                value=judged,
                limit_value=limit.value,
                unit=limit.unit,
                flag=hour.flag,
                detail=f"{hour.pollutant}-{basis} {judged} > {limit.value} {limit.unit}",
                dedup_key=f"exceedance:{point_id}:{hour.pollutant}:{hour.data_time.astimezone(timezone.utc).isoformat()}",
            )
        )
    return found


def missing_data(point_id: int, last_packet_at: datetime | None, since: datetime, now: datetime,
                 rules: ValidityRules | None = None) -> AlarmCandidate | None:
    """A point silent for longer than the configured time; `since` is when it was expected to start sending."""
    rules = rules or default_rules()
    reference = last_packet_at or since
    if now - reference < rules.missing_data_after:
        return None
    silent_minutes = int((now - reference) / timedelta(minutes=1))
    return AlarmCandidate(
        kind="missing_data",
        point_id=point_id,
        pollutant=None,
        data_time=last_packet_at,
        value=None,
        limit_value=None,
        unit=None,
        flag=None,
        detail=f"no packet for {silent_minutes} min",
        # One alarm per silence: a new one only after packets arrived again and stopped again.
        dedup_key=f"missing_data:{point_id}:{reference.astimezone(timezone.utc).isoformat()}",
    )


def prolonged_flags(point_id: int, pollutant: str, minutes: Sequence[Sample],
                    rules: ValidityRules | None = None) -> list[AlarmCandidate]:
    """Runs of consecutive minute values carrying one of the watched flags (D/F/M/C/T) for the configured time.

    A run is broken by any value with another flag or by a gap longer than two minutes, so an outage between two
    faults does not join them into one.
    """
    rules = rules or default_rules()
    ordered = sorted(minutes, key=lambda sample: sample.data_time)
    found = []
    run: list[Sample] = []

    def close_run() -> None:
        if run and run[-1].data_time - run[0].data_time + timedelta(minutes=1) >= rules.prolonged_flag_after:
            flag = run[0].flag
            length = int((run[-1].data_time - run[0].data_time) / timedelta(minutes=1)) + 1
            found.append(
                AlarmCandidate(
                    kind="flag",
                    point_id=point_id,
                    pollutant=pollutant,
                    data_time=run[0].data_time,
                    value=None,
                    limit_value=None,
                    unit=None,
                    flag=flag,
                    detail=f"{pollutant} flag {flag} for {length} min",
                    dedup_key=f"flag:{point_id}:{pollutant}:{flag}:{run[0].data_time.astimezone(timezone.utc).isoformat()}",
                )
            )

    for sample in ordered:
        continues = (
            run
            and sample.flag == run[-1].flag
            and sample.data_time - run[-1].data_time <= timedelta(minutes=2)
        )
        if continues:
            run.append(sample)
            continue
        close_run()
        run = [sample] if sample.flag in rules.prolonged_flags else []
    close_run()
    return found


# --- persistence and lifecycle -------------------------------------------------------------------------------


def alarm_view(alarm: Alarm) -> dict:
    return {
        "id": alarm.id,
        "point_id": alarm.point_id,
        "enterprise_id": alarm.enterprise_id,
        "division_code": alarm.division_code,
        "kind": alarm.kind,
        "pollutant": alarm.pollutant,
        "opened_at": alarm.opened_at,
        "data_time": alarm.data_time,
        "value": alarm.value,
        "limit_value": alarm.limit_value,
        "unit": alarm.unit,
        "flag": alarm.flag,
        "detail": alarm.detail,
        "state": alarm.state,
        "acknowledged_by": alarm.acknowledged_by,
        "acknowledged_at": alarm.acknowledged_at,
        "closed_by": alarm.closed_by,
        "closed_at": alarm.closed_at,
        "note": alarm.note,
    }


def open_alarms(session: Session, candidates: Iterable[AlarmCandidate], actor: Principal,
                now: datetime | None = None) -> list[Alarm]:
    """Store new alarms; a candidate whose fact already has an alarm (same dedup key) is skipped."""
    candidates = list(candidates)
    if not candidates:
        return []
    now = now or utcnow()
    keys = {candidate.dedup_key for candidate in candidates}
    existing = set(session.scalars(select(Alarm.dedup_key).where(Alarm.dedup_key.in_(keys))))
    point_ids = {candidate.point_id for candidate in candidates}
    points = {point.id: point for point in session.scalars(select(MonitoringPoint).where(MonitoringPoint.id.in_(point_ids)))}
    opened = []
    for candidate in candidates:
        if candidate.dedup_key in existing:
            continue
        existing.add(candidate.dedup_key)
        point = points[candidate.point_id]
        alarm = Alarm(
            point_id=point.id,
            enterprise_id=point.enterprise_id,
            division_code=point.division_code,
            kind=candidate.kind,
            pollutant=candidate.pollutant,
            dedup_key=candidate.dedup_key,
            opened_at=now,
            data_time=candidate.data_time,
            value=candidate.value,
            limit_value=candidate.limit_value,
            unit=candidate.unit,
            flag=candidate.flag,
            detail=candidate.detail,
            state="open",
            note="",
        )
        session.add(alarm)
        session.flush()
        record_change(session, actor, "monitoring_alarm", alarm.id, "open", None, alarm_view(alarm),
                      division_code=alarm.division_code, enterprise_id=alarm.enterprise_id)
        opened.append(alarm)
    return opened


def _visible_alarm(session: Session, principal: Principal, alarm_id: int) -> Alarm:
    alarm = session.get(Alarm, alarm_id)
    if alarm is None or not principal.sees_enterprise(alarm.enterprise_id, alarm.division_code):
        raise NotFound(f"报警 {alarm_id} 不存在", f"alarm {alarm_id} not found", code="alarm_not_found")
    return alarm


_NEXT_STATE = {"acknowledge": ("open", "acknowledged"), "close": (None, "closed")}


def change_alarm_state(session: Session, principal: Principal, alarm_id: int, action: str, note: str = "",
                       now: datetime | None = None) -> Alarm:
    """acknowledge: open → acknowledged; close: open or acknowledged → closed. Auditors only read."""
    if action not in _NEXT_STATE:
        raise InvalidInput(f"未知的报警操作：{action}", f"unknown alarm action: {action}", field="action",
                           code="unknown_alarm_action")
    if principal.role == "auditor":
        raise Forbidden("审计人员只能查阅报警", "auditors may only read alarms", code="alarm_read_only")
    if len(note) > 2000:
        raise InvalidInput("备注不得超过 2000 字", "the note must not exceed 2000 characters", field="note",
                           code="note_too_long")
    alarm = _visible_alarm(session, principal, alarm_id)
    required, target = _NEXT_STATE[action]
    if alarm.state == "closed" or (required and alarm.state != required):
        raise Conflict(
            f"报警当前状态为 {alarm.state}，不能执行 {action}",
            f"alarm is {alarm.state}; cannot {action}",
            code="alarm_state_conflict",
        )
    now = now or utcnow()
    before = alarm_view(alarm)
    alarm.state = target
    if target == "acknowledged":
        alarm.acknowledged_by, alarm.acknowledged_at = principal.username, now
    else:
        alarm.closed_by, alarm.closed_at = principal.username, now
    if note:
        alarm.note = (alarm.note + "\n" if alarm.note else "") + f"[{principal.username}] {note}"
    session.flush()
    record_change(session, principal, "monitoring_alarm", alarm.id, action, before, alarm_view(alarm),
                  division_code=alarm.division_code, enterprise_id=alarm.enterprise_id)
    return alarm
