"""Monitoring services: points and permit limits (scoped CRUD), measurement and packet queries, alarm inbox,
the periodic alarm scan and the overview. Every query is filtered by the caller's scope; every write is audited.
"""
from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import and_, delete, func, select
from sqlalchemy.orm import Session

from ingot.core.audit import record_change
from ingot.core.auth import ADMIN, ENTERPRISE, REGULATOR, SYSTEM, Principal, division_prefix
from ingot.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from ingot.core.timeutil import utcnow
from ingot.monitoring.alarms import missing_data, open_alarms, prolonged_flags
from ingot.monitoring.models import (ALARM_KINDS, ALARM_STATES, MEASUREMENT_KINDS, Alarm, Measurement, MonitoringPoint,
                                      PermitLimit, PlatformCommand, RawPacket)
from ingot.monitoring.storage import VALUE_FIELDS, new_password_secret
from ingot.monitoring.validity import Sample, ValidityRules, aggregate_series, default_rules

log = logging.getLogger(__name__)

# HJ 212-2017 6.3.2: MN is up to 24 characters (HJ/T 212-2005 used 14 digits); PW is up to 9 printable characters
# in 2017 (C9), and it must not contain the CP separators.
MN_PATTERN = re.compile(r"^[0-9A-Za-z]{1,24}$")
PASSWORD_PATTERN = re.compile(r"^[^;,=&\s]{1,9}$")
# Appendix B codes of HJ 212-2017 (a21026 SO2, a34013 particulate, w01018 COD …); 2005 codes are mapped by the codec.
POLLUTANT_PATTERN = re.compile(r"^[a-z][0-9]{5}$")
UNIT_PATTERN = re.compile(r"^[A-Za-z0-9/%.³·μ]{1,16}$")
MAX_ROWS = 20_000

POINT_FIELDS = {"site_id", "name", "mn", "password", "pollutants", "active"}
LIMIT_FIELDS = {"value", "unit", "source_standard", "clause", "is_demo"}


def point_view(point: MonitoringPoint, limits: list[PermitLimit] | None = None) -> dict:
    """The API's view of a point; the device password never leaves the service."""
    view = {
        "id": point.id,
        "site_id": point.site_id,
        "enterprise_id": point.enterprise_id,
        "division_code": point.division_code,
        "province_code": point.division_code[:2] + "0000",
        "name": point.name,
        "mn": point.mn,
        "pollutants": list(point.pollutants or []),
        "active": bool(point.active),
        "is_demo": bool(point.is_demo),
        "last_packet_at": point.last_packet_at,
    }
    if limits is not None:
        view["limits"] = [limit_view(limit) for limit in limits]
    return view


def limit_view(limit: PermitLimit) -> dict:
    return {
        "point_id": limit.point_id,
        "pollutant": limit.pollutant,
        "value": limit.value,
        "unit": limit.unit,
        "source_standard": limit.source_standard,
        "clause": limit.clause,
        "is_demo": bool(limit.is_demo),
    }


def measurement_view(row: Measurement) -> dict:
    view = {"point_id": row.point_id, "pollutant": row.pollutant, "kind": row.kind, "data_time": row.data_time,
            "flag": row.flag, "received_at": row.received_at}
    view.update({name: getattr(row, name) for name in VALUE_FIELDS})
    return view


def packet_view(row: RawPacket) -> dict:
    return {"id": row.id, "received_at": row.received_at, "point_id": row.point_id, "mn": row.mn, "peer": row.peer,
            "text": row.text, "accepted": row.accepted, "reason_code": row.reason_code, "reason": row.reason}


# --- scope ----------------------------------------------------------------------------------------------------


def _scoped(query, principal: Principal, model):
    if principal.sees_everything:
        return query
    if principal.role == ENTERPRISE:
        return query.where(model.enterprise_id == (principal.enterprise_id if principal.enterprise_id is not None else -1))
    if principal.role == REGULATOR and principal.division_code:
        return query.where(model.division_code.startswith(division_prefix(principal.division_code)))
    return query.where(False)


def _require_point_writer(principal: Principal) -> None:
    if principal.role not in (ADMIN, REGULATOR):
        raise Forbidden("仅监管人员和管理员可维护监测点", "only regulators and administrators may change monitoring points",
                        code="monitoring_write_forbidden")


def visible_point(session: Session, principal: Principal, point_id: Any) -> MonitoringPoint:
    try:
        point = session.get(MonitoringPoint, int(point_id))
    except (TypeError, ValueError):
        point = None
    if point is None or not principal.sees_enterprise(point.enterprise_id, point.division_code):
        raise NotFound(f"监测点不存在：{point_id}", f"no such monitoring point: {point_id}", field="point_id",
                       code="point_not_found")
    return point


# --- validation -----------------------------------------------------------------------------------------------


def _reject_unknown(values: dict, allowed: set[str]) -> None:
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise InvalidInput(f"未知字段：{', '.join(unknown)}", f"unknown field(s): {', '.join(unknown)}",
                           field=unknown[0], code="unknown_field")


def _text(values: dict, name: str, pattern: re.Pattern | None = None, max_length: int = 128, *,
          zh_rule: str = "", en_rule: str = "") -> str:
    value = values.get(name)
    value = "" if value is None else str(value).strip()
    if not value:
        raise InvalidInput(f"{name}：不能为空", f"{name}: must not be empty", field=name, code="missing")
    if len(value) > max_length:
        raise InvalidInput(f"{name}：不能超过 {max_length} 个字符", f"{name}: at most {max_length} characters",
                           field=name, code="too_long")
    if pattern is not None and not pattern.match(value):
        raise InvalidInput(f"{name}：{zh_rule}", f"{name}: {en_rule}", field=name, code=f"{name}_invalid")
    return value


def _pollutants(values: dict) -> list[str]:
    codes = values.get("pollutants")
    if not isinstance(codes, list) or not codes:
        raise InvalidInput("pollutants：须为非空的污染物编码列表", "pollutants: must be a non-empty list of pollutant codes",
                           field="pollutants", code="pollutants_invalid")
    cleaned = []
    for code in codes:
        if not isinstance(code, str) or not POLLUTANT_PATTERN.match(code):
            raise InvalidInput(f"pollutants：“{code}”不是 HJ 212-2017 附录 B 的污染物编码（如 a21026）",
                               f"pollutants: '{code}' is not an HJ 212-2017 appendix B code (e.g. a21026)",
                               field="pollutants", code="pollutant_code_invalid")
        if code not in cleaned:
            cleaned.append(code)
    return cleaned


def _site(session: Session, principal: Principal, site_id: Any):
    from ingot.registry.models import Site

    try:
        site = session.get(Site, int(site_id))
    except (TypeError, ValueError):
        site = None
    if site is None or not principal.sees_enterprise(site.enterprise_id, site.division_code):
        raise InvalidInput(f"site_id：厂区不存在：{site_id}", f"site_id: no such site: {site_id}", field="site_id",
                           code="unknown_site")
    return site


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, float) or isinstance(value, bool):
        raise InvalidInput(f"{name}：请以字符串或整数给出精确数值", f"{name}: give an exact number as a string or integer",
                           field=name, code="inexact_number")
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise InvalidInput(f"{name}：不是数字：{value}", f"{name}: not a number: {value}", field=name,
                           code="not_a_number") from None
    if not number.is_finite() or number <= 0:
        raise InvalidInput(f"{name}：须为正数", f"{name}: must be positive", field=name, code="not_positive")
    return number


# --- points ---------------------------------------------------------------------------------------------------


def _unique_mn(session: Session, mn: str, own_id: int | None = None) -> None:
    existing = session.scalar(select(MonitoringPoint.id).where(MonitoringPoint.mn == mn))
    if existing is not None and existing != own_id:
        raise Conflict(f"mn：设备编码 {mn} 已登记", f"mn: device {mn} is already registered", field="mn", code="mn_taken")


def create_point(session: Session, principal: Principal, values: dict, *, is_demo: bool = False) -> dict:
    _require_point_writer(principal)
    _reject_unknown(values, POINT_FIELDS)
    site = _site(session, principal, values.get("site_id"))
    if not principal.sees_division(site.division_code):
        raise Forbidden(f"厂区所在行政区划 {site.division_code} 不在您的管辖范围内",
                        f"the site's division {site.division_code} is outside your jurisdiction", field="site_id")
    name = _text(values, "name")
    mn = _text(values, "mn", MN_PATTERN, 24, zh_rule="须为 1–24 位字母或数字（HJ 212-2017 6.3.2）",
               en_rule="must be 1-24 letters or digits (HJ 212-2017 6.3.2)")
    password = _text(values, "password", PASSWORD_PATTERN, 9, zh_rule="须为 1–9 个可打印字符，不含 ; , = & 和空白",
                     en_rule="must be 1-9 printable characters without ; , = & or spaces")
    pollutants = _pollutants(values)
    _unique_mn(session, mn)
    if session.scalar(select(MonitoringPoint.id).where(MonitoringPoint.site_id == site.id, MonitoringPoint.name == name)):
        raise Conflict(f"name：该厂区已有名为“{name}”的监测点", f"name: the site already has a point named '{name}'",
                       field="name", code="point_name_taken")
    salt, digest = new_password_secret(password)
    point = MonitoringPoint(site_id=site.id, enterprise_id=site.enterprise_id, division_code=site.division_code, name=name,
                            mn=mn, password_salt=salt, password_digest=digest, pollutants=pollutants,
                            active=bool(values.get("active", True)), is_demo=is_demo, created_at=utcnow())
    session.add(point)
    session.flush()
    record_change(session, principal, "monitoring_point", point.id, "create", None, point_view(point),
                  division_code=point.division_code, enterprise_id=point.enterprise_id)
    return point_view(point)


def update_point(session: Session, principal: Principal, point_id: Any, changes: dict) -> dict:
    _require_point_writer(principal)
    _reject_unknown(changes, POINT_FIELDS - {"site_id"})
    point = visible_point(session, principal, point_id)
    before = point_view(point)
    if "name" in changes:
        point.name = _text(changes, "name")
    if "mn" in changes:
        point.mn = _text(changes, "mn", MN_PATTERN, 24, zh_rule="须为 1–24 位字母或数字（HJ 212-2017 6.3.2）",
                         en_rule="must be 1-24 letters or digits (HJ 212-2017 6.3.2)")
        _unique_mn(session, point.mn, point.id)
    if "password" in changes:
        password = _text(changes, "password", PASSWORD_PATTERN, 9, zh_rule="须为 1–9 个可打印字符，不含 ; , = & 和空白",
                         en_rule="must be 1-9 printable characters without ; , = & or spaces")
        point.password_salt, point.password_digest = new_password_secret(password)
    if "pollutants" in changes:
        point.pollutants = _pollutants(changes)
    if "active" in changes:
        if not isinstance(changes["active"], bool):
            raise InvalidInput("active：须为 true 或 false", "active: must be true or false", field="active",
                               code="not_boolean")
        point.active = changes["active"]
    session.flush()
    after = point_view(point)
    # The audit shows that the password changed, never what it is.
    if "password" in changes:
        after = {**after, "password": "changed"}
    record_change(session, principal, "monitoring_point", point.id, "update", before, after,
                  division_code=point.division_code, enterprise_id=point.enterprise_id)
    return point_view(point)


def delete_point(session: Session, principal: Principal, point_id: Any) -> None:
    """Only a point that never stored data can be deleted; one with data is deactivated instead."""
    _require_point_writer(principal)
    point = visible_point(session, principal, point_id)
    if session.scalar(select(Measurement.id).where(Measurement.point_id == point.id).limit(1)) is not None:
        raise Conflict("该监测点已有监测数据，不能删除，请停用（active=false）",
                       "the point has stored data and cannot be deleted; deactivate it (active=false)",
                       code="point_has_data")
    before = point_view(point)
    session.execute(delete(PermitLimit).where(PermitLimit.point_id == point.id))
    session.execute(delete(RawPacket).where(RawPacket.point_id == point.id))
    session.execute(delete(Alarm).where(Alarm.point_id == point.id))
    session.execute(delete(PlatformCommand).where(PlatformCommand.point_id == point.id))
    session.delete(point)
    session.flush()
    record_change(session, principal, "monitoring_point", before["id"], "delete", before, None,
                  division_code=before["division_code"], enterprise_id=before["enterprise_id"])


def get_point(session: Session, principal: Principal, point_id: Any) -> dict:
    point = visible_point(session, principal, point_id)
    limits = list(session.scalars(select(PermitLimit).where(PermitLimit.point_id == point.id).order_by(PermitLimit.pollutant)))
    return point_view(point, limits)


def list_points(session: Session, principal: Principal, *, province: str | None = None,
                enterprise_id: int | None = None, pollutant: str | None = None) -> list[MonitoringPoint]:
    query = _scoped(select(MonitoringPoint), principal, MonitoringPoint).order_by(MonitoringPoint.division_code,
                                                                                   MonitoringPoint.name, MonitoringPoint.id)
    if province:
        if not re.fullmatch(r"\d{6}", province):
            raise InvalidInput("province：须为 6 位行政区划代码", "province: must be a 6-digit division code",
                               field="province", code="division_invalid")
        query = query.where(MonitoringPoint.division_code.startswith(province[:2]))
    if enterprise_id is not None:
        query = query.where(MonitoringPoint.enterprise_id == enterprise_id)
    points = list(session.scalars(query))
    if pollutant:
        points = [point for point in points if pollutant in (point.pollutants or [])]
    return points


# --- limits ---------------------------------------------------------------------------------------------------


def set_limit(session: Session, principal: Principal, point_id: Any, pollutant: str, values: dict,
              *, is_demo: bool | None = None) -> dict:
    _require_point_writer(principal)
    _reject_unknown(values, LIMIT_FIELDS)
    point = visible_point(session, principal, point_id)
    if not POLLUTANT_PATTERN.match(pollutant or ""):
        raise InvalidInput(f"pollutant：“{pollutant}”不是 HJ 212-2017 附录 B 的污染物编码",
                           f"pollutant: '{pollutant}' is not an HJ 212-2017 appendix B code", field="pollutant",
                           code="pollutant_code_invalid")
    if pollutant not in (point.pollutants or []):
        raise InvalidInput(f"pollutant：监测点不监测 {pollutant}", f"pollutant: the point does not measure {pollutant}",
                           field="pollutant", code="pollutant_not_measured")
    value = _decimal(values.get("value"), "value")
    unit = _text(values, "unit", UNIT_PATTERN, 16, zh_rule="不是有效的计量单位", en_rule="not a valid unit")
    source = _text(values, "source_standard", max_length=128)
    clause = str(values.get("clause") or "").strip()[:128]
    demo = bool(values.get("is_demo", False)) if is_demo is None else is_demo
    limit = session.scalar(select(PermitLimit).where(PermitLimit.point_id == point.id, PermitLimit.pollutant == pollutant))
    before = limit_view(limit) if limit else None
    if limit is None:
        limit = PermitLimit(point_id=point.id, pollutant=pollutant)
        session.add(limit)
    limit.value, limit.unit, limit.source_standard, limit.clause, limit.is_demo = value, unit, source, clause, demo
    session.flush()
    record_change(session, principal, "monitoring_limit", f"{point.id}:{pollutant}", "update" if before else "create",
                  before, limit_view(limit), division_code=point.division_code, enterprise_id=point.enterprise_id)
    return limit_view(limit)


def delete_limit(session: Session, principal: Principal, point_id: Any, pollutant: str) -> None:
    _require_point_writer(principal)
    point = visible_point(session, principal, point_id)
    limit = session.scalar(select(PermitLimit).where(PermitLimit.point_id == point.id, PermitLimit.pollutant == pollutant))
    if limit is None:
        raise NotFound(f"监测点没有 {pollutant} 的限值", f"the point has no limit for {pollutant}", field="pollutant",
                       code="limit_not_found")
    before = limit_view(limit)
    session.delete(limit)
    session.flush()
    record_change(session, principal, "monitoring_limit", f"{point.id}:{pollutant}", "delete", before, None,
                  division_code=point.division_code, enterprise_id=point.enterprise_id)


def list_limits(session: Session, principal: Principal, point_id: Any) -> list[dict]:
    point = visible_point(session, principal, point_id)
    return [limit_view(limit) for limit in
            session.scalars(select(PermitLimit).where(PermitLimit.point_id == point.id).order_by(PermitLimit.pollutant))]


# --- measurements and packets ---------------------------------------------------------------------------------


def _time_range(start: datetime | None, end: datetime | None, default_span: timedelta) -> tuple[datetime, datetime]:
    for name, moment in (("start", start), ("end", end)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidInput(f"{name}：时间须带时区（如 2026-11-01T08:00:00+08:00）",
                               f"{name}: the time needs a zone (e.g. 2026-11-01T08:00:00+08:00)", field=name,
                               code="naive_time")
    end = end or utcnow()
    start = start or end - default_span
    if start >= end:
        raise InvalidInput("start：开始时间须早于结束时间", "start: must be before end", field="start",
                           code="empty_time_range")
    if end - start > timedelta(days=400):
        raise InvalidInput("时间范围不得超过 400 天", "the time range must not exceed 400 days", field="start",
                           code="time_range_too_long")
    return start, end


@dataclass(frozen=True)
class SeriesQuery:
    point_id: int
    pollutant: str | None
    kind: str
    start: datetime | None
    end: datetime | None
    aggregation: str = "none"  # none | hour | day


AGGREGATION_SOURCE = {"hour": "minute", "day": "hour"}


def query_measurements(session: Session, principal: Principal, query: SeriesQuery,
                       rules: ValidityRules | None = None) -> list[dict]:
    """Stored values of one kind in a time range, or hourly/daily aggregates computed with the validity rules."""
    point = visible_point(session, principal, query.point_id)
    if query.aggregation not in ("none", "hour", "day"):
        raise InvalidInput("aggregation：须为 none、hour 或 day", "aggregation: must be none, hour or day",
                           field="aggregation", code="aggregation_invalid")
    kind = AGGREGATION_SOURCE.get(query.aggregation, query.kind)
    if kind not in MEASUREMENT_KINDS:
        raise InvalidInput("kind：须为 rtd、minute、hour 或 day", "kind: must be rtd, minute, hour or day", field="kind",
                           code="kind_invalid")
    if query.pollutant is not None and not POLLUTANT_PATTERN.match(query.pollutant):
        raise InvalidInput(f"pollutant：“{query.pollutant}”不是污染物编码", f"pollutant: '{query.pollutant}' is not a pollutant code",
                           field="pollutant", code="pollutant_code_invalid")
    start, end = _time_range(query.start, query.end, timedelta(days=1))
    select_rows = (
        select(Measurement)
        .where(Measurement.point_id == point.id, Measurement.kind == kind,
               Measurement.data_time >= start, Measurement.data_time < end)
        .order_by(Measurement.pollutant, Measurement.data_time, Measurement.id)
        .limit(MAX_ROWS + 1)
    )
    if query.pollutant:
        select_rows = select_rows.where(Measurement.pollutant == query.pollutant)
    rows = list(session.scalars(select_rows))
    if len(rows) > MAX_ROWS:
        raise InvalidInput(f"结果超过 {MAX_ROWS} 行，请缩小时间范围或指定污染物",
                           f"more than {MAX_ROWS} rows; narrow the time range or name a pollutant", field="start",
                           code="too_many_rows")
    if query.aggregation == "none":
        return [measurement_view(row) for row in rows]
    series: dict[str, list[Sample]] = {}
    for row in rows:
        series.setdefault(row.pollutant, []).append(Sample(row.data_time, row.avg, row.flag, row.zs_avg))
    result = []
    for pollutant, samples in series.items():
        for aggregate in aggregate_series(samples, query.aggregation, rules):
            result.append({
                "point_id": point.id, "pollutant": pollutant, "kind": query.aggregation,
                "data_time": aggregate.period_start, "avg": aggregate.avg, "min": aggregate.min, "max": aggregate.max,
                "zs_avg": aggregate.converted_avg, "flag": aggregate.flag, "valid": aggregate.valid,
                "inputs": aggregate.inputs, "valid_inputs": aggregate.valid_inputs, "reason": aggregate.reason,
            })
    return result


def list_packets(session: Session, principal: Principal, point_id: Any, *, start: datetime | None = None,
                 end: datetime | None = None, accepted: bool | None = None, limit: int = 100) -> list[dict]:
    point = visible_point(session, principal, point_id)
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit：须在 1 到 1000 之间", "limit: must be between 1 and 1000", field="limit",
                           code="limit_out_of_range")
    start, end = _time_range(start, end, timedelta(days=7))
    query = (select(RawPacket).where(RawPacket.point_id == point.id, RawPacket.received_at >= start,
                                     RawPacket.received_at < end)
             .order_by(RawPacket.received_at.desc(), RawPacket.id.desc()).limit(limit))
    if accepted is not None:
        query = query.where(RawPacket.accepted.is_(accepted))
    return [packet_view(row) for row in session.scalars(query)]


# --- alarms ---------------------------------------------------------------------------------------------------


def list_alarms(session: Session, principal: Principal, *, state: str | None = None, kind: str | None = None,
                point_id: int | None = None, limit: int = 200, offset: int = 0) -> list[Alarm]:
    if state is not None and state not in ALARM_STATES:
        raise InvalidInput("state：须为 open、acknowledged 或 closed", "state: must be open, acknowledged or closed",
                           field="state", code="state_invalid")
    if kind is not None and kind not in ALARM_KINDS:
        raise InvalidInput("kind：须为 exceedance、missing_data 或 flag", "kind: must be exceedance, missing_data or flag",
                           field="kind", code="kind_invalid")
    if not 1 <= limit <= 1000 or offset < 0:
        raise InvalidInput("limit：须在 1 到 1000 之间", "limit: must be between 1 and 1000", field="limit",
                           code="limit_out_of_range")
    query = _scoped(select(Alarm), principal, Alarm).order_by(Alarm.opened_at.desc(), Alarm.id.desc())
    if state:
        query = query.where(Alarm.state == state)
    if kind:
        query = query.where(Alarm.kind == kind)
    if point_id is not None:
        query = query.where(Alarm.point_id == visible_point(session, principal, point_id).id)
    return list(session.scalars(query.limit(limit).offset(offset)))


def scan_alarms(session: Session, *, now: datetime | None = None, rules: ValidityRules | None = None,
                actor: Principal = SYSTEM) -> list[Alarm]:
    """Missing-data and prolonged-flag alarms over every active point; run periodically by the receiver."""
    rules = rules or default_rules()
    now = now or utcnow()
    candidates = []
    points = list(session.scalars(select(MonitoringPoint).where(MonitoringPoint.active.is_(True))))
    for point in points:
        silent = missing_data(point.id, point.last_packet_at, point.created_at, now, rules)
        if silent is not None:
            candidates.append(silent)
    # A flag run is looked for over twice the alarm duration, so a run ending just now is seen whole.
    window_start = now - 2 * rules.prolonged_flag_after
    rows = session.execute(
        select(Measurement.point_id, Measurement.pollutant, Measurement.data_time, Measurement.avg, Measurement.flag)
        .where(Measurement.kind == "minute", Measurement.data_time >= window_start)
        .order_by(Measurement.point_id, Measurement.pollutant, Measurement.data_time)
    )
    series: dict[tuple[int, str], list[Sample]] = {}
    for row in rows:
        series.setdefault((row.point_id, row.pollutant), []).append(Sample(row.data_time, row.avg, row.flag))
    for (point_id, pollutant), samples in series.items():
        candidates.extend(prolonged_flags(point_id, pollutant, samples, rules))
    candidates.extend(_exceedances_from_minutes(session, now, rules))
    return open_alarms(session, candidates, actor, now)


def _exceedances_from_minutes(session: Session, now: datetime, rules: ValidityRules, hours_back: int = 3) -> list:
    """Exceedances of hourly averages the platform computes from minute data (valid hours only), for devices that
    send no hourly packet; a device's own hourly value for the same hour shares the alarm's dedup key."""
    from ingot.monitoring.alarms import HourlyValue, LimitValue, exceedances

    last_complete = now.replace(minute=0, second=0, microsecond=0)
    first = last_complete - timedelta(hours=hours_back)
    limits: dict[int, dict[str, LimitValue]] = {}
    for limit in session.scalars(select(PermitLimit)):
        limits.setdefault(limit.point_id, {})[limit.pollutant] = LimitValue(limit.value, limit.unit)
    if not limits:
        return []
    rows = session.execute(
        select(Measurement.point_id, Measurement.pollutant, Measurement.data_time, Measurement.avg, Measurement.zs_avg,
               Measurement.flag)
        .where(Measurement.kind == "minute", Measurement.data_time >= first, Measurement.data_time < last_complete,
               Measurement.point_id.in_(sorted(limits)))
    )
    series: dict[tuple[int, str], list[Sample]] = {}
    for row in rows:
        if row.pollutant in limits[row.point_id]:
            series.setdefault((row.point_id, row.pollutant), []).append(Sample(row.data_time, row.avg, row.flag, row.zs_avg))
    found = []
    for (point_id, pollutant), samples in series.items():
        hours = [HourlyValue(pollutant, hour.period_start, hour.avg, hour.converted_avg, hour.flag)
                 for hour in aggregate_series(samples, "hour", rules) if hour.valid]
        found.extend(exceedances(point_id, hours, limits[point_id]))
    return found


# --- overview -------------------------------------------------------------------------------------------------


def latest_values(session: Session, point_ids: list[int], kinds: tuple[str, ...] = ("rtd", "minute"), *,
                  since: datetime | None = None) -> dict[int, dict[str, Measurement]]:
    """The newest stored value per point and pollutant (real-time preferred, else minute) since `since`
    (default: the last two days, so the overview never scans a point's whole history)."""
    if not point_ids:
        return {}
    since = since or utcnow() - timedelta(days=2)
    newest = (
        select(Measurement.point_id, Measurement.pollutant, Measurement.kind, func.max(Measurement.data_time).label("at"))
        .where(Measurement.point_id.in_(point_ids), Measurement.kind.in_(kinds), Measurement.data_time >= since)
        .group_by(Measurement.point_id, Measurement.pollutant, Measurement.kind)
        .subquery()
    )
    rows = session.scalars(
        select(Measurement).join(newest, and_(Measurement.point_id == newest.c.point_id,
                                              Measurement.pollutant == newest.c.pollutant,
                                              Measurement.kind == newest.c.kind,
                                              Measurement.data_time == newest.c.at))
    )
    result: dict[int, dict[str, Measurement]] = {}
    for row in rows:
        current = result.setdefault(row.point_id, {}).get(row.pollutant)
        if current is None or kinds.index(row.kind) < kinds.index(current.kind) or (
                current.kind == row.kind and row.data_time > current.data_time):
            result[row.point_id][row.pollutant] = row
    return result


def point_status(point: MonitoringPoint, open_alarm_kinds: set[str], now: datetime, rules: ValidityRules) -> str:
    if not point.active:
        return "inactive"
    if "exceedance" in open_alarm_kinds:
        return "exceedance"
    if point.last_packet_at is None or now - point.last_packet_at >= rules.missing_data_after:
        return "missing_data"
    if open_alarm_kinds:
        return "alarm"
    return "normal"


def overview(session: Session, principal: Principal, *, province: str | None = None, enterprise_id: int | None = None,
             pollutant: str | None = None, now: datetime | None = None) -> list[dict]:
    rules = default_rules()
    now = now or utcnow()
    points = list_points(session, principal, province=province, enterprise_id=enterprise_id, pollutant=pollutant)
    ids = [point.id for point in points]
    latest = latest_values(session, ids, since=now - timedelta(days=2))
    open_kinds: dict[int, set[str]] = {}
    if ids:
        for point_id, kind in session.execute(
                select(Alarm.point_id, Alarm.kind).where(Alarm.point_id.in_(ids), Alarm.state != "closed")):
            open_kinds.setdefault(point_id, set()).add(kind)
    limits: dict[int, dict[str, PermitLimit]] = {}
    if ids:
        for limit in session.scalars(select(PermitLimit).where(PermitLimit.point_id.in_(ids))):
            limits.setdefault(limit.point_id, {})[limit.pollutant] = limit
    rows = []
    for point in points:
        values = latest.get(point.id, {})
        shown = [code for code in point.pollutants or [] if not pollutant or code == pollutant]
        rows.append({
            "point": point_view(point),
            "status": point_status(point, open_kinds.get(point.id, set()), now, rules),
            "open_alarms": sorted(open_kinds.get(point.id, set())),
            "values": [
                {"pollutant": code,
                 "value": (values[code].rtd if values[code].rtd is not None else values[code].avg) if code in values else None,
                 "converted": (values[code].zs_rtd if values[code].zs_rtd is not None else values[code].zs_avg) if code in values else None,
                 "flag": values[code].flag if code in values else None,
                 "data_time": values[code].data_time if code in values else None,
                 "limit": limits.get(point.id, {}).get(code)}
                for code in shown
            ],
        })
    return rows


# --- the running receiver -------------------------------------------------------------------------------------


async def serve_receiver(host: str, port: int, *, url: str | None = None, batch_size: int = 2000,
                         jobs=None, worker: int = 0, workers: int = 1) -> None:
    """`ingot monitor listen`: the receiver with the DB directory and sink, and beside it the receiver process's
    periodic jobs (ingot.monitoring.jobs: queued commands, alarm scan, retention), forever. As worker `worker` of
    `workers` > 1 it shares the port with the others (SO_REUSEPORT; see serve_receiver_workers)."""
    import signal

    from ingot.monitoring.jobs import JobSettings, receiver_jobs
    from ingot.monitoring.storage import ingest_pipeline

    if workers > 1:
        # a worker stopped by its parent (SIGTERM) still drains its sink into the database before it ends
        main = asyncio.current_task()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    async with ingest_pipeline(url, host, port, batch_size=batch_size, reuse_port=workers > 1) as (server, _sink, _port):
        async with receiver_jobs(url, server, jobs or JobSettings(), worker=worker, workers=workers):
            await asyncio.Event().wait()


def _receiver_worker(host: str, port: int, url: str | None, batch_size: int, jobs, worker: int, workers: int) -> None:
    from ingot.monitoring.receiver import run_receiver_process

    try:
        run_receiver_process(serve_receiver(host, port, url=url, batch_size=batch_size, jobs=jobs, worker=worker,
                                            workers=workers))
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass


def serve_receiver_workers(host: str, port: int, workers: int, *, url: str | None = None, batch_size: int = 2000,
                           jobs=None, poll_seconds: float = 0.5) -> int:
    """`ingot monitor listen --workers N`: N receiver processes on one port, the kernel spreading device
    connections among them (SO_REUSEPORT), each decoding and writing its own devices' packets; the Python
    interpreter runs one process on one core, so this is how the receiver uses more than one.

    This process first recovers what an earlier receiver left half-done (commands sent but never answered), then
    starts the workers and watches them: when one ends, the others are stopped (SIGTERM: each drains its sink first)
    and the exit status is non-zero; Ctrl-C or SIGTERM here stops them all. Returns the exit status."""
    import multiprocessing
    import signal
    import time

    from ingot.core.db import dispose_engines, unit_of_work
    from ingot.monitoring import commands

    if workers < 2:
        raise ValueError("serve_receiver_workers needs at least two workers; one runs as serve_receiver")
    with unit_of_work(url) as session:
        commands.abandon_unfinished(session)
    dispose_engines()  # no pooled connection in a process that only watches
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_receiver_worker, args=(host, port, url, batch_size, jobs, index, workers),
                                 name=f"ingot-hj212-receiver-{index}") for index in range(workers)]
    stopping = False

    def stop(*_args) -> None:
        nonlocal stopping
        stopping = True

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        for process in processes:
            process.start()
        while not stopping and all(process.is_alive() for process in processes):
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        stopping = True  # the workers got the terminal's SIGINT too and are stopping on their own
    finally:
        signal.signal(signal.SIGTERM, previous)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(60)
            if process.is_alive():
                process.kill()
                process.join()
    failed = [process.name for process in processes if process.exitcode not in (0, -signal.SIGTERM)]
    if not stopping or failed:
        log.error("HJ 212 receiver workers ended: %s", ", ".join(f"{p.name} ({p.exitcode})" for p in processes))
        return 1
    return 0
