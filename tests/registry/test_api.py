"""The registry over HTTP: auth, scope, filtering, sorting, pagination, history and errors (never a 500)."""
from __future__ import annotations

import pytest

from ingot.core import auth
from tests.conftest import login

from .helpers import build_world, uscc

PASSWORD = "correct-horse-42"


@pytest.fixture
def world(session):
    made = build_world(session)
    for username, role, division, enterprise in (
        ("root", auth.ADMIN, None, None),
        ("audit", auth.AUDITOR, None, None),
        ("yunnan", auth.REGULATOR, "530000", None),
        ("kunming", auth.REGULATOR, "530100", None),
        ("km_user", auth.ENTERPRISE, None, made.kunming["id"]),
    ):
        auth.create_user(session, username=username, password=PASSWORD, role=role, division_code=division, enterprise_id=enterprise)
    session.commit()
    return made


@pytest.fixture
def as_user(client, world):
    cache = {}

    def headers(username):
        if username not in cache:
            cache[username] = login(client, username, PASSWORD)
        return cache[username]

    return headers


def test_anonymous_requests_are_401(client, world):
    response = client.get("/api/registry/enterprises")
    assert response.status_code == 401
    assert response.json()["detail"][0]["code"] == "not_authenticated"


def test_enterprise_user_gets_404_for_another_enterprise_over_http(client, world, as_user):
    headers = as_user("km_user")
    own = client.get(f"/api/registry/enterprises/{world.kunming['id']}", headers=headers)
    assert own.status_code == 200, own.text
    for path in (f"/api/registry/enterprises/{world.honghe['id']}", f"/api/registry/units/{world.honghe_unit['id']}",
                 f"/api/registry/sites/{world.honghe_site['id']}", f"/api/registry/units/{world.honghe_unit['id']}/status",
                 f"/api/registry/enterprises/{world.honghe['id']}/versions"):
        assert client.get(path, headers=headers).status_code == 404, path
    response = client.patch(f"/api/registry/units/{world.honghe_unit['id']}", json={"name": "x"}, headers=headers)
    assert response.status_code == 404
    assert client.post("/api/registry/groups", json={"name": "x"}, headers=headers).status_code == 403
    listing = client.get("/api/registry/units", headers=headers).json()
    assert listing["total"] == 1 and listing["items"][0]["enterprise_id"] == world.kunming["id"]


def test_auditor_writes_are_403(client, world, as_user):
    response = client.patch(f"/api/registry/enterprises/{world.kunming['id']}", json={"name": "x"}, headers=as_user("audit"))
    assert response.status_code == 403
    assert response.json()["detail"][0]["msg"] and response.json()["detail"][0]["msg_en"]


def test_filtering_sorting_and_pagination(client, world, as_user):
    headers = as_user("root")
    page = client.get("/api/registry/enterprises", params={"sort": "name", "limit": 2, "offset": 0}, headers=headers).json()
    rest = client.get("/api/registry/enterprises", params={"sort": "name", "limit": 2, "offset": 2}, headers=headers).json()
    assert page["total"] == rest["total"] == 3
    assert len(page["items"]) == 2 and len(rest["items"]) == 1
    names = [e["name"] for e in page["items"] + rest["items"]]
    assert names == sorted(names)
    assert client.get("/api/registry/units", params={"metal": "tin"}, headers=headers).json()["items"][0]["process_type"] == "sn_smelting"
    assert client.get("/api/registry/units", params={"province": "510000"}, headers=headers).json()["total"] == 1
    assert client.get("/api/registry/units", params={"prefecture": "530100"}, headers=headers).json()["total"] == 1
    assert client.get("/api/registry/units", params={"process_type": "ti_sponge"}, headers=headers).json()["total"] == 1
    assert client.get("/api/registry/units", params={"status": "idle"}, headers=headers).json()["total"] == 0
    assert client.get("/api/registry/enterprises", params={"q": "honghe"}, headers=headers).json()["total"] == 1
    divisions = client.get("/api/registry/divisions", params={"province": "150000", "level": "prefecture", "limit": 100}, headers=headers).json()
    assert divisions["total"] == 12 and {d["code"] for d in divisions["items"]} >= {"150200", "152900"}
    assert client.get("/api/registry/enterprises", headers=as_user("kunming")).json()["total"] == 1


@pytest.mark.parametrize(
    ("method", "path", "payload", "field"),
    [
        ("get", "/api/registry/enterprises?sort=secret", None, "sort"),
        ("get", "/api/registry/enterprises?limit=0", None, "limit"),
        ("get", "/api/registry/enterprises?limit=abc", None, "limit"),
        ("get", "/api/registry/units?metal=gold", None, "metal"),
        ("get", "/api/registry/units?province=53", None, "province"),
        ("get", "/api/registry/units?as_of=yesterday", None, "as_of"),
        ("get", "/api/registry/enterprises/1?as_of=not-a-time", None, "as_of"),
        ("post", "/api/registry/enterprises", {"name": "x", "uscc": "91350100M000100Y44", "ownership": "private", "division_code": "530100"}, "uscc"),
        ("post", "/api/registry/enterprises", {"name": "x", "uscc": "91350100M000100Y43", "ownership": "feudal", "division_code": "530100"}, "ownership"),
        ("post", "/api/registry/enterprises", {"name": "x", "uscc": "91350100M000100Y43", "ownership": "private", "division_code": "999999"}, "division_code"),
        ("post", "/api/registry/enterprises", {"name": "x", "uscc": "91350100M000100Y43", "ownership": "private", "division_code": "530100", "hack": 1}, "hack"),
        ("post", "/api/registry/enterprises", [1, 2, 3], ""),
        ("post", "/api/registry/units/1/parameters", {"code": "ore_capacity", "value": "1", "unit": "t/d", "effective_from": "2020-01-01"}, "code"),
        ("post", "/api/registry/units/1/parameters", {"code": "cell_current", "value": "400", "unit": "A", "effective_from": "2020-01-01"}, "unit"),
        ("post", "/api/registry/units/1/parameters", {"code": "cell_current", "value": "abc", "unit": "kA", "effective_from": "2020-01-01"}, "value"),
        ("post", "/api/registry/units/1/status", {"status": "dormant", "effective_on": "2020-01-01"}, "status"),
        ("post", "/api/registry/units/1/status", {"status": "idle", "effective_on": "2020-13-01"}, "effective_on"),
        ("post", "/api/registry/units/1/declarations", {"year": 99999, "measure_code": "current_efficiency", "value": "90", "unit": "percent"}, "year"),
        ("post", "/api/registry/units", {"site_id": 1, "name": "x", "process_type": "alchemy"}, "process_type"),
    ],
)
def test_malformed_input_is_a_422_naming_the_field(client, world, as_user, method, path, payload, field):
    response = getattr(client, method)(path, headers=as_user("root"), **({"json": payload} if payload is not None else {}))
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert field in (detail.get("field") or "") + ".".join(detail.get("loc", []))
    assert detail["msg"] and detail["msg_en"]


def test_garbage_never_produces_a_500(client, world, as_user):
    headers = as_user("root")
    probes = [
        ("post", "/api/registry/enterprises", {"content": b"\xff\xfe not json", "headers": {**headers, "content-type": "application/json"}}),
        ("get", "/api/registry/units/99999999999999999999", {"headers": headers}),
        ("get", "/api/registry/units/-1", {"headers": headers}),
        ("get", "/api/registry/divisions/abc", {"headers": headers}),
        ("post", "/api/registry/units/1/declarations", {"json": {"year": 2020, "measure_code": "x" * 500, "value": "1e999999", "unit": "t"}, "headers": headers}),
        ("post", "/api/registry/units/1/capacities", {"json": {"product_code": "primary_aluminium", "value": "NaN", "effective_from": "2020-01-01"}, "headers": headers}),
        ("post", "/api/registry/units/1/nonsense", {"json": {}, "headers": headers}),
        ("get", "/api/registry/export/users", {"headers": headers}),
        ("get", "/api/registry/enterprises?q=%25%27%3B--", {"headers": headers}),
    ]
    for method, path, kwargs in probes:
        response = getattr(client, method)(path, **kwargs)
        assert response.status_code < 500, (path, response.text)
        assert response.status_code in (400, 404, 422) or path.endswith("--"), (path, response.status_code)


def test_create_update_and_version_history_over_http(client, world, as_user):
    headers = as_user("yunnan")
    created = client.post("/api/registry/enterprises", headers=headers, json={
        "name": "滇西示例矿业有限公司", "uscc": uscc(4242, "533100"), "ownership": "mixed", "division_code": "533100", "above_designated": True,
    })
    assert created.status_code == 201, created.text
    enterprise_id = created.json()["id"]
    duplicate = client.post("/api/registry/enterprises", headers=headers, json={
        "name": "重复", "uscc": uscc(4242, "533100"), "ownership": "mixed", "division_code": "533100",
    })
    assert duplicate.status_code == 409
    first_version = client.get(f"/api/registry/enterprises/{enterprise_id}/versions", headers=headers).json()[0]
    assert client.patch(f"/api/registry/enterprises/{enterprise_id}", headers=headers, json={"name": "滇西示例矿业股份有限公司"}).status_code == 200
    history = client.get(f"/api/registry/enterprises/{enterprise_id}/versions", headers=headers).json()
    assert [v["data"]["name"] for v in history] == ["滇西示例矿业有限公司", "滇西示例矿业股份有限公司"]
    then = client.get(f"/api/registry/enterprises/{enterprise_id}", params={"as_of": first_version["valid_from"]}, headers=headers)
    assert then.json()["name"] == "滇西示例矿业有限公司"
    audit = client.get("/api/audit", params={"entity": "enterprise", "entity_id": str(enterprise_id)}, headers=headers).json()
    assert [entry["action"] for entry in audit] == ["update", "create"]


def test_unit_detail_facts_and_status_timeline(client, world, as_user):
    headers = as_user("km_user")
    unit_id = world.kunming_unit["id"]
    assert client.post(f"/api/registry/units/{unit_id}/status", headers=headers, json={"status": "idle", "effective_on": "2020-07-01", "note": "检修"}).status_code == 201
    capacity = client.post(f"/api/registry/units/{unit_id}/capacities", headers=headers,
                           json={"product_code": "primary_aluminium", "value": "400000", "unit": "t/a", "effective_from": "2012-05-01"})
    assert capacity.status_code == 201 and capacity.json()["value"] == "400000"
    detail = client.get(f"/api/registry/units/{unit_id}", params={"on": "2019-01-01"}, headers=headers).json()
    assert detail["status"] == "operating" and detail["params"] == {"cell_current": "400"} and detail["capacities"] == {"primary_aluminium": "400000"}
    assert [event["status"] for event in detail["status_history"]] == ["operating", "idle"]
    assert client.get(f"/api/registry/units/{unit_id}", headers=headers).json()["status"] == "idle"
    patched = client.patch(f"/api/registry/units/{unit_id}/capacities/{capacity.json()['id']}", headers=headers, json={"value": "420000"})
    assert patched.status_code == 200 and patched.json()["value"] == "420000"
    assert client.delete(f"/api/registry/units/{unit_id}/capacities/{capacity.json()['id']}", headers=headers).status_code == 204
    overview = client.get("/api/registry/overview/capacity", params={"on": "2019-01-01"}, headers=as_user("root")).json()
    assert overview["as_of"] == "2019-01-01" and overview["rows"] == []
