"""Scoped services: points, limits, queries, alarm lifecycle and scans."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from ingot.core.audit import AuditEntry
from ingot.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from ingot.monitoring import service
from ingot.monitoring.alarms import change_alarm_state
from ingot.monitoring.models import Alarm, MonitoringPoint
from ingot.monitoring.storage import IngestRecord, Reading, write_batch

from .world import ADMIN_P, AUDITOR_P, KUNMING_P, SICHUAN_P, T0, YUNNAN_P, build_world


def _minutes(point_id, count, flag="N", value="100", start=T0, pollutant="a21026"):
    return [IngestRecord(received_at=start + timedelta(minutes=i, seconds=5), text="m", accepted=True, point_id=point_id,
                         kind="minute", data_time=start + timedelta(minutes=i),
                         readings=(Reading(pollutant, {"avg": Decimal(value), "zs_avg": Decimal(value)}, flag),))
            for i in range(count)]


def test_points_are_scoped(session):
    world = build_world(session)
    names = lambda principal: sorted(p.enterprise_id for p in service.list_points(session, principal))  # noqa: E731
    assert names(ADMIN_P) == sorted(world.enterprises.values())
    assert names(YUNNAN_P) == sorted([world.enterprises["kunming"], world.enterprises["honghe"]])
    assert names(KUNMING_P) == [world.enterprises["kunming"]]
    assert names(world.enterprise_user("honghe")) == [world.enterprises["honghe"]]
    with pytest.raises(NotFound):
        service.get_point(session, world.enterprise_user("kunming"), world.points["honghe"]["id"])
    with pytest.raises(NotFound):
        service.get_point(session, SICHUAN_P, world.points["kunming"]["id"])


def test_password_is_never_shown_nor_stored_in_clear(session):
    world = build_world(session)
    view = service.get_point(session, ADMIN_P, world.points["kunming"]["id"])
    assert "password" not in view and "password_digest" not in view
    point = session.get(MonitoringPoint, view["id"])
    assert "123456" not in (point.password_digest + point.password_salt)
    service.update_point(session, ADMIN_P, view["id"], {"password": "abc123"})
    entry = session.scalars(select(AuditEntry).where(AuditEntry.entity == "monitoring_point", AuditEntry.action == "update")).one()
    assert "abc123" not in str(entry.after) and entry.after["password"] == "changed"


def test_enterprise_users_cannot_write_points_and_regulators_only_in_scope(session):
    world = build_world(session)
    with pytest.raises(Forbidden):
        service.update_point(session, world.enterprise_user("kunming"), world.points["kunming"]["id"], {"name": "x"})
    with pytest.raises(Forbidden):
        service.set_limit(session, AUDITOR_P, world.points["kunming"]["id"], "a21026", {})
    with pytest.raises(InvalidInput):  # the Honghe site is invisible to the Kunming regulator
        service.create_point(session, KUNMING_P, {"site_id": world.sites["honghe"], "name": "2号", "mn": "12345678901234",
                                                  "password": "1", "pollutants": ["a21026"]})
    created = service.create_point(session, KUNMING_P, {"site_id": world.sites["kunming"], "name": "2号",
                                                        "mn": "12345678901234", "password": "1", "pollutants": ["a21026"]})
    assert created["enterprise_id"] == world.enterprises["kunming"]


@pytest.mark.parametrize("values, field, code", [
    ({"mn": "bad mn!"}, "mn", "mn_invalid"),
    ({"password": "a;b"}, "password", "password_invalid"),
    ({"pollutants": ["SO2"]}, "pollutants", "pollutant_code_invalid"),
    ({"pollutants": []}, "pollutants", "pollutants_invalid"),
    ({"colour": "red"}, "colour", "unknown_field"),
])
def test_point_validation(session, values, field, code):
    world = build_world(session)
    base = {"site_id": world.sites["kunming"], "name": "3号", "mn": "12345678901235", "password": "123456",
            "pollutants": ["a21026"]}
    with pytest.raises(InvalidInput) as error:
        service.create_point(session, ADMIN_P, {**base, **values})
    assert error.value.field == field and error.value.code == code
    assert error.value.message_zh and error.value.message_en


def test_duplicate_mn_conflicts(session):
    world = build_world(session)
    with pytest.raises(Conflict):
        service.create_point(session, ADMIN_P, {"site_id": world.sites["kunming"], "name": "4号", "mn": "888888800000000000000001",
                                                "password": "1", "pollutants": ["a21026"]})


def test_limit_validation(session):
    world = build_world(session)
    point_id = world.points["kunming"]["id"]
    with pytest.raises(InvalidInput) as error:
        service.set_limit(session, ADMIN_P, point_id, "a21026", {"value": 1.5, "unit": "mg/m3", "source_standard": "x"})
    assert error.value.code == "inexact_number"
    with pytest.raises(InvalidInput) as error:
        service.set_limit(session, ADMIN_P, point_id, "a05002", {"value": "1", "unit": "mg/m3", "source_standard": "x"})
    assert error.value.code == "pollutant_not_measured"
    limit = service.set_limit(session, ADMIN_P, point_id, "a34013", {"value": "10", "unit": "mg/m3",
                                                                     "source_standard": "GB 25467-2010", "clause": "表5"})
    assert limit["value"] == Decimal("10") and not limit["is_demo"]


def test_hourly_aggregation_query_applies_validity(session):
    world = build_world(session)
    point_id = world.points["kunming"]["id"]
    write_batch(session, _minutes(point_id, 50) + _minutes(point_id, 40, start=T0 + timedelta(hours=1)))
    rows = service.query_measurements(session, ADMIN_P, service.SeriesQuery(
        point_id, "a21026", "minute", T0, T0 + timedelta(hours=2), aggregation="hour"))
    assert [(r["data_time"], r["valid"], r["valid_inputs"]) for r in rows] == [(T0, True, 50), (T0 + timedelta(hours=1), False, 40)]
    raw = service.query_measurements(session, ADMIN_P, service.SeriesQuery(point_id, None, "minute", T0, T0 + timedelta(minutes=3)))
    assert len(raw) == 3
    with pytest.raises(InvalidInput) as error:
        service.query_measurements(session, ADMIN_P, service.SeriesQuery(point_id, None, "minute", T0 + timedelta(hours=1), T0))
    assert error.value.code == "empty_time_range"


def test_alarm_lifecycle_and_scope(session):
    world = build_world(session)
    point_id = world.points["kunming"]["id"]
    write_batch(session, [IngestRecord(received_at=T0, text="h", accepted=True, point_id=point_id, kind="hour", data_time=T0,
                                       readings=(Reading("a21026", {"avg": Decimal("300"), "zs_avg": Decimal("401")}, "N"),))])
    alarm = session.scalar(select(Alarm))
    owner = world.enterprise_user("kunming")
    assert [a.id for a in service.list_alarms(session, owner)] == [alarm.id]
    assert service.list_alarms(session, world.enterprise_user("honghe")) == []
    assert service.list_alarms(session, SICHUAN_P) == []
    with pytest.raises(NotFound):
        change_alarm_state(session, world.enterprise_user("honghe"), alarm.id, "acknowledge")
    with pytest.raises(Forbidden):
        change_alarm_state(session, AUDITOR_P, alarm.id, "acknowledge")
    change_alarm_state(session, owner, alarm.id, "acknowledge", note="检修中")
    assert (alarm.state, alarm.acknowledged_by) == ("acknowledged", "kunming_user")
    with pytest.raises(Conflict):
        change_alarm_state(session, KUNMING_P, alarm.id, "acknowledge")
    change_alarm_state(session, KUNMING_P, alarm.id, "close")
    assert (alarm.state, alarm.closed_by) == ("closed", "km_regulator")
    with pytest.raises(Conflict):
        change_alarm_state(session, KUNMING_P, alarm.id, "close")
    actions = session.scalars(select(AuditEntry.action).where(AuditEntry.entity == "monitoring_alarm").order_by(AuditEntry.id)).all()
    assert actions == ["open", "acknowledge", "close"]


def test_scan_opens_missing_data_and_flag_alarms_once(session):
    world = build_world(session)
    kunming = world.points["kunming"]["id"]
    write_batch(session, _minutes(kunming, 70, flag="D", start=T0))
    for point in session.scalars(select(MonitoringPoint)):
        point.created_at = T0
    now = T0 + timedelta(minutes=75)
    opened = service.scan_alarms(session, now=now)
    kinds = sorted((a.kind, a.point_id) for a in opened)
    # Kunming sent until minute 69 (so it is not silent) but with flag D for 70 min; the others never sent.
    assert ("flag", kunming) in kinds and ("missing_data", kunming) not in kinds
    assert ("missing_data", world.points["honghe"]["id"]) in kinds and ("missing_data", world.points["sichuan"]["id"]) in kinds
    assert service.scan_alarms(session, now=now + timedelta(minutes=1)) == []


def test_overview_status(session):
    world = build_world(session)
    kunming = world.points["kunming"]["id"]
    write_batch(session, _minutes(kunming, 3, start=T0))
    rows = service.overview(session, YUNNAN_P, now=T0 + timedelta(minutes=5))
    by_point = {row["point"]["id"]: row for row in rows}
    assert set(by_point) == {kunming, world.points["honghe"]["id"]}
    assert by_point[kunming]["status"] == "normal"
    assert by_point[world.points["honghe"]["id"]]["status"] == "missing_data"
    so2 = next(v for v in by_point[kunming]["values"] if v["pollutant"] == "a21026")
    assert so2["value"] == Decimal("100") and so2["data_time"] == T0 + timedelta(minutes=2)
    assert service.overview(session, YUNNAN_P, pollutant="a99999") == []


def test_scan_computes_hourly_exceedance_from_valid_minutes_only(session):
    world = build_world(session)
    kunming, honghe = world.points["kunming"]["id"], world.points["honghe"]["id"]
    write_batch(session, _minutes(kunming, 45, value="401"))  # 45 valid minutes above 400: a valid hour, exceeded
    write_batch(session, _minutes(honghe, 44, value="900"))  # 44 minutes: no valid hour, no exceedance
    opened = service.scan_alarms(session, now=T0 + timedelta(hours=1, minutes=5))
    exceeded = [(a.point_id, a.data_time, a.value) for a in opened if a.kind == "exceedance"]
    assert exceeded == [(kunming, T0, Decimal("401.000000"))]
    # The device's own hourly value for that hour arrives later: same fact, no second alarm.
    write_batch(session, [IngestRecord(received_at=T0 + timedelta(hours=1, minutes=6), text="h", accepted=True,
                                       point_id=kunming, kind="hour", data_time=T0,
                                       readings=(Reading("a21026", {"avg": Decimal("401"), "zs_avg": Decimal("401")}, "N"),))])
    assert session.scalar(select(func.count()).select_from(Alarm).where(Alarm.kind == "exceedance")) == 1
