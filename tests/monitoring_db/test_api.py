"""The monitoring API: scope, 422s with bilingual reasons, alarm actions, no password ever returned."""
from __future__ import annotations

from decimal import Decimal

import pytest

from ingot.core.auth import create_user
from ingot.monitoring.storage import IngestRecord, Reading, write_batch
from tests.conftest import login

from .world import T0, build_world


@pytest.fixture
def api(client, session):
    world = build_world(session)
    create_user(session, username="admin1", password="admin-pass-1", role="admin")
    create_user(session, username="yn_reg", password="regulator-1", role="regulator", division_code="530000")
    create_user(session, username="sc_reg", password="regulator-2", role="regulator", division_code="510000")
    create_user(session, username="km_ent", password="enterprise-1", role="enterprise", enterprise_id=world.enterprises["kunming"])
    create_user(session, username="hh_ent", password="enterprise-2", role="enterprise", enterprise_id=world.enterprises["honghe"])
    point_id = world.points["kunming"]["id"]
    write_batch(session, [IngestRecord(received_at=T0, text="##0001hour", accepted=True, point_id=point_id, kind="hour",
                                       data_time=T0, mn="888888800000000000000001",
                                       readings=(Reading("a21026", {"avg": Decimal("350"), "zs_avg": Decimal("420.5")}, "N"),))])
    session.commit()
    heads = {name: login(client, name, password) for name, password in (
        ("admin1", "admin-pass-1"), ("yn_reg", "regulator-1"), ("sc_reg", "regulator-2"),
        ("km_ent", "enterprise-1"), ("hh_ent", "enterprise-2"))}
    return client, world, heads


def test_requires_login(client):
    assert client.get("/api/monitoring/points").status_code == 401


def test_points_scoped_and_without_password(api):
    client, world, heads = api
    mine = client.get("/api/monitoring/points", headers=heads["km_ent"]).json()
    assert [p["id"] for p in mine] == [world.points["kunming"]["id"]]
    assert "password" not in str(mine) and "digest" not in str(mine)
    assert len(client.get("/api/monitoring/points", headers=heads["yn_reg"]).json()) == 2
    other = world.points["honghe"]["id"]
    assert client.get(f"/api/monitoring/points/{other}", headers=heads["km_ent"]).status_code == 404
    assert client.get(f"/api/monitoring/points/{other}/measurements", headers=heads["km_ent"]).status_code == 404


def test_enterprise_cannot_create_points(api):
    client, world, heads = api
    body = {"site_id": world.sites["kunming"], "name": "2号", "mn": "12345678901234", "password": "123456",
            "pollutants": ["a21026"]}
    assert client.post("/api/monitoring/points", json=body, headers=heads["km_ent"]).status_code == 403
    created = client.post("/api/monitoring/points", json=body, headers=heads["yn_reg"])
    assert created.status_code == 201 and created.json()["mn"] == "12345678901234"


@pytest.mark.parametrize("body, code", [
    ({"mn": "bad mn!"}, "mn_invalid"),
    ({"pollutants": ["SO2"]}, "pollutant_code_invalid"),
    ({"site_id": 999999}, "unknown_site"),
])
def test_point_422s_carry_reason_and_both_languages(api, body, code):
    client, world, heads = api
    base = {"site_id": world.sites["kunming"], "name": "9号", "mn": "12345678901239", "password": "123456",
            "pollutants": ["a21026"]}
    response = client.post("/api/monitoring/points", json={**base, **body}, headers=heads["admin1"])
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["code"] == code and detail["msg"] and detail["msg_en"]


def test_schema_422s(api):
    client, world, heads = api
    point = world.points["kunming"]["id"]
    assert client.post("/api/monitoring/points", json={"name": "x"}, headers=heads["admin1"]).status_code == 422
    assert client.put(f"/api/monitoring/points/{point}/limits/a21026", headers=heads["admin1"],
                      json={"value": 1.5, "unit": "mg/m3", "source_standard": "x"}).status_code == 422
    assert client.get(f"/api/monitoring/points/{point}/measurements?kind=weekly", headers=heads["admin1"]).status_code == 422
    naive = client.get(f"/api/monitoring/points/{point}/measurements", headers=heads["admin1"],
                       params={"start": "2026-11-01T00:00:00", "end": "2026-11-02T00:00:00+00:00"})
    assert naive.status_code == 422 and naive.json()["detail"][0]["code"] == "naive_time"


def test_limits_and_measurements(api):
    client, world, heads = api
    point = world.points["kunming"]["id"]
    put = client.put(f"/api/monitoring/points/{point}/limits/a34013", headers=heads["yn_reg"],
                     json={"value": "20", "unit": "mg/m3", "source_standard": "GB 25467-2010", "clause": "表5"})
    assert put.status_code == 200 and put.json()["value"] == "20"
    limits = client.get(f"/api/monitoring/points/{point}/limits", headers=heads["km_ent"]).json()
    assert {limit["pollutant"] for limit in limits} == {"a21026", "a34013"}
    rows = client.get(f"/api/monitoring/points/{point}/measurements", headers=heads["km_ent"], params={
        "kind": "hour", "start": "2026-11-01T07:00:00+08:00", "end": "2026-11-01T09:00:00+08:00"}).json()
    assert [(r["data_time"], r["zs_avg"]) for r in rows] == [("2026-11-01T00:00:00+00:00", "420.5")]
    packets = client.get(f"/api/monitoring/points/{point}/packets", headers=heads["km_ent"],
                         params={"start": "2026-10-31T00:00:00+00:00", "end": "2026-11-02T00:00:00+00:00"}).json()
    assert [p["text"] for p in packets] == ["##0001hour"]


def test_alarm_inbox_and_actions(api):
    client, world, heads = api
    mine = client.get("/api/monitoring/alarms", headers=heads["km_ent"]).json()
    assert len(mine) == 1 and mine[0]["kind"] == "exceedance" and mine[0]["value"] == "420.5"
    alarm = mine[0]["id"]
    assert client.get("/api/monitoring/alarms", headers=heads["hh_ent"]).json() == []
    assert client.get("/api/monitoring/alarms", headers=heads["sc_reg"]).json() == []
    assert client.post(f"/api/monitoring/alarms/{alarm}/acknowledge", headers=heads["hh_ent"]).status_code == 404
    acked = client.post(f"/api/monitoring/alarms/{alarm}/acknowledge", json={"note": "停炉检修"}, headers=heads["km_ent"])
    assert acked.status_code == 200 and acked.json()["state"] == "acknowledged"
    again = client.post(f"/api/monitoring/alarms/{alarm}/acknowledge", headers=heads["km_ent"])
    assert again.status_code == 409 and again.json()["detail"][0]["code"] == "alarm_state_conflict"
    closed = client.post(f"/api/monitoring/alarms/{alarm}/close", headers=heads["yn_reg"])
    assert closed.json()["state"] == "closed" and closed.json()["closed_by"] == "yn_reg"
    assert client.get("/api/monitoring/alarms?state=open", headers=heads["yn_reg"]).json() == []
    assert client.get("/api/monitoring/alarms?state=bogus", headers=heads["yn_reg"]).status_code == 422


def test_overview_api(api):
    client, world, heads = api
    rows = client.get("/api/monitoring/overview", headers=heads["yn_reg"]).json()
    assert {row["point"]["id"] for row in rows} == {world.points["kunming"]["id"], world.points["honghe"]["id"]}
    kunming = next(row for row in rows if row["point"]["id"] == world.points["kunming"]["id"])
    assert kunming["status"] == "exceedance"
