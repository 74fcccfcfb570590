"""Commands the platform sends to devices: validation, scope, audit, the queue's steps, the API, the CLI, the point page,
and the whole path over loopback — queued by a user, sent by the receiver process, answered by a simulated device."""
from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from ingot.core.audit import AuditEntry
from ingot.core.auth import create_user
from ingot.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from ingot.monitoring import commands, service
from ingot.monitoring.models import PlatformCommand
from tests.conftest import login

from .world import ADMIN_P, AUDITOR_P, KUNMING_P, SICHUAN_P, T0, YUNNAN_P, build_world

runner = CliRunner()


# --- validation -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cn, params, field, code", [
    ("9999", {}, "cn", "command_unsupported"),
    ("2011", {}, "cn", "command_unsupported"),          # data uploads are the device's to send, not a request here
    ("1062", {}, "params.RtdInterval", "missing"),
    ("1062", {"RtdInterval": "29"}, "params.RtdInterval", "out_of_range"),
    ("1062", {"RtdInterval": "3601"}, "params.RtdInterval", "out_of_range"),
    ("1062", {"RtdInterval": "60s"}, "params.RtdInterval", "not_an_integer"),
    ("1062", {"RtdInterval": 60.0}, "params.RtdInterval", "not_an_integer"),
    ("1064", {"MinInterval": "7"}, "params.MinInterval", "not_allowed"),
    ("1012", {"SystemTime": "20261301000000"}, "params.SystemTime", "time_invalid"),
    ("1012", {"SystemTime": "2026-11-01T08:00:00"}, "params.SystemTime", "naive_time"),
    ("1011", {"SystemTime": "20261101080000"}, "params.SystemTime", "unknown_field"),
    ("2051", {"BeginTime": "20261101090000"}, "params.EndTime", "missing"),
    ("2051", {"BeginTime": "20261101090000", "EndTime": "20261101080000"}, "params.BeginTime", "empty_time_range"),
    ("2051", {"BeginTime": "20261101000000", "EndTime": "20261103000000"}, "params.EndTime", "time_range_too_long"),
    ("1062", "RtdInterval=60", "params", "params_invalid"),
])
def test_bad_codes_and_fields_are_refused_naming_the_field(cn, params, field, code):
    with pytest.raises(InvalidInput) as refused:
        commands.validate_command(cn, params)
    assert (refused.value.field, refused.value.code) == (field, code)
    assert refused.value.message_zh and refused.value.message_en


def test_fields_are_normalised_to_what_the_device_receives():
    assert commands.validate_command("1062", {"RtdInterval": 60}) == ("1062", {"RtdInterval": "60"})
    assert commands.validate_command("1064", {"MinInterval": "05"}) == ("1064", {"MinInterval": "5"})
    assert commands.validate_command("1012", {}) == ("1012", {})
    # A zoned ISO time becomes the standard's YYYYMMDDhhmmss in Beijing time.
    assert commands.validate_command("1012", {"SystemTime": "2026-11-01T00:30:00+00:00"}) == (
        "1012", {"SystemTime": "20261101083000"})
    assert commands.validate_command("2061", {"BeginTime": "20261101000000", "EndTime": "20261102000000"})[1] == {
        "BeginTime": "20261101000000", "EndTime": "20261102000000"}
    assert {entry["cn"] for entry in commands.catalogue()} >= {"1011", "1012", "1061", "1062", "1063", "1064", "2051",
                                                               "2061"}


# --- who may queue and see ------------------------------------------------------------------------------------


def test_regulators_in_scope_and_admins_queue_audited_enterprise_sees(session):
    world = build_world(session)
    kunming = world.points["kunming"]["id"]
    queued = commands.queue_command(session, KUNMING_P, kunming, "1062", {"RtdInterval": "60"})
    assert (queued["state"], queued["requested_by"], queued["params"], queued["mn"]) == (
        "queued", "km_regulator", {"RtdInterval": "60"}, world.points["kunming"]["mn"])
    commands.queue_command(session, ADMIN_P, kunming, "1011")
    audit = session.scalars(select(AuditEntry).where(AuditEntry.entity == "monitoring_command")).all()
    assert [(entry.actor, entry.action) for entry in audit] == [("km_regulator", "create"), ("admin", "create")]
    assert audit[0].enterprise_id == world.enterprises["kunming"]

    owner = world.enterprise_user("kunming")
    assert [row["cn"] for row in commands.list_commands(session, owner, kunming)] == ["1011", "1062"]
    assert commands.get_command(session, owner, queued["id"])["id"] == queued["id"]
    assert len(commands.list_commands(session, AUDITOR_P, kunming)) == 2
    with pytest.raises(Forbidden):
        commands.queue_command(session, owner, kunming, "1011")
    with pytest.raises(Forbidden):
        commands.queue_command(session, AUDITOR_P, kunming, "1011")
    with pytest.raises(NotFound):
        commands.queue_command(session, SICHUAN_P, kunming, "1011")
    with pytest.raises(NotFound):
        commands.list_commands(session, world.enterprise_user("honghe"), kunming)
    with pytest.raises(NotFound):
        commands.get_command(session, world.enterprise_user("honghe"), queued["id"])
    with pytest.raises(NotFound):
        commands.get_command(session, SICHUAN_P, queued["id"])


def test_inactive_point_takes_no_command(session):
    world = build_world(session)
    honghe = world.points["honghe"]["id"]
    service.update_point(session, YUNNAN_P, honghe, {"active": False})
    with pytest.raises(Conflict) as refused:
        commands.queue_command(session, YUNNAN_P, honghe, "1011")
    assert refused.value.code == "point_inactive"


def test_steps_move_forward_only_and_are_audited(session):
    world = build_world(session)
    queued = commands.queue_command(session, ADMIN_P, world.points["kunming"]["id"], "1012")
    assert [c.id for c in commands.queued_commands(session)] == [queued["id"]]
    assert commands.claim_command(session, queued["id"], {"SystemTime": "20261101080000"}, now=T0)
    assert not commands.claim_command(session, queued["id"], {}, now=T0)  # a second receiver cannot take it again
    assert commands.queued_commands(session) == []
    assert commands.record_sent(session, queued["id"], "20261101080000123")
    assert commands.record_accepted(session, queued["id"], 1, now=T0 + timedelta(seconds=1))
    assert commands.finish_command(session, queued["id"], "executed", exe_rtn=1, now=T0 + timedelta(seconds=2))
    assert not commands.finish_command(session, queued["id"], "timed_out")  # finished is final
    done = commands.get_command(session, ADMIN_P, queued["id"])
    assert (done["state"], done["qn"], done["qn_rtn"], done["exe_rtn"], done["params"]) == (
        "executed", "20261101080000123", 1, 1, {"SystemTime": "20261101080000"})
    assert done["exe_rtn_text_en"] == "executed" and done["finished_at"] == T0 + timedelta(seconds=2)
    steps = session.scalars(select(AuditEntry).where(AuditEntry.entity == "monitoring_command")
                            .order_by(AuditEntry.id)).all()
    assert [(entry.actor, entry.action, (entry.after or {}).get("state")) for entry in steps] == [
        ("admin", "create", "queued"), ("system", "update", "sent"), ("system", "update", "sent"),
        ("system", "update", "accepted"), ("system", "update", "executed")]


def test_a_restarted_receiver_times_out_what_was_left_in_flight(session):
    world = build_world(session)
    point = world.points["kunming"]["id"]
    first = commands.queue_command(session, ADMIN_P, point, "1011")
    second = commands.queue_command(session, ADMIN_P, point, "1061")
    commands.claim_command(session, first["id"], {})
    assert commands.abandon_unfinished(session) == 1
    assert commands.get_command(session, ADMIN_P, first["id"])["state"] == "timed_out"
    assert commands.get_command(session, ADMIN_P, second["id"])["state"] == "queued"


def test_deleting_a_point_without_data_removes_its_commands(session):
    world = build_world(session)
    point = world.points["sichuan"]["id"]
    commands.queue_command(session, ADMIN_P, point, "1011")
    service.delete_point(session, ADMIN_P, point)
    assert session.scalars(select(PlatformCommand)).all() == []


# --- API ------------------------------------------------------------------------------------------------------


@pytest.fixture
def api(client, session):
    world = build_world(session)
    create_user(session, username="yn_reg", password="regulator-1", role="regulator", division_code="530000")
    create_user(session, username="sc_reg", password="regulator-2", role="regulator", division_code="510000")
    create_user(session, username="km_ent", password="enterprise-1", role="enterprise", enterprise_id=world.enterprises["kunming"])
    create_user(session, username="hh_ent", password="enterprise-2", role="enterprise", enterprise_id=world.enterprises["honghe"])
    session.commit()
    heads = {name: login(client, name, password) for name, password in (
        ("yn_reg", "regulator-1"), ("sc_reg", "regulator-2"), ("km_ent", "enterprise-1"), ("hh_ent", "enterprise-2"))}
    return client, world, heads


def test_api_queue_list_show_in_scope(api):
    client, world, heads = api
    point = world.points["kunming"]["id"]
    url = f"/api/monitoring/points/{point}/commands"
    created = client.post(url, json={"cn": "1062", "params": {"RtdInterval": 120}}, headers=heads["yn_reg"])
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["state"], body["params"], body["requested_by"]) == ("queued", {"RtdInterval": "120"}, "yn_reg")
    assert client.post(url, json={"cn": "1011"}, headers=heads["km_ent"]).status_code == 403
    assert client.post(url, json={"cn": "1011"}, headers=heads["sc_reg"]).status_code == 404
    assert client.post(url, json={"cn": "1011"}).status_code == 401

    listed = client.get(url, headers=heads["km_ent"])
    assert listed.status_code == 200 and [row["id"] for row in listed.json()] == [body["id"]]
    assert client.get(url, headers=heads["hh_ent"]).status_code == 404
    assert client.get(f"{url}?state=queued", headers=heads["yn_reg"]).json()[0]["id"] == body["id"]
    assert client.get(f"{url}?state=lost", headers=heads["yn_reg"]).status_code == 422
    assert client.get(f"/api/monitoring/commands/{body['id']}", headers=heads["km_ent"]).json()["cn"] == "1062"
    assert client.get(f"/api/monitoring/commands/{body['id']}", headers=heads["hh_ent"]).status_code == 404
    assert client.get(f"/api/monitoring/commands/{body['id']}", headers=heads["sc_reg"]).status_code == 404
    codes = client.get("/api/monitoring/command-codes", headers=heads["km_ent"]).json()
    assert any(entry["cn"] == "1064" and entry["params"][0]["choices"][-1] == 30 for entry in codes)


def test_api_422_names_the_field_in_both_languages(api):
    client, world, heads = api
    for body, field, code in (
        ({"cn": "1234"}, "cn", "command_unsupported"),
        ({"cn": "1062", "params": {"RtdInterval": "10"}}, "params.RtdInterval", "out_of_range"),
        ({"cn": "1064", "params": {"MinInterval": "8"}}, "params.MinInterval", "not_allowed"),
        ({"cn": "1011", "params": {"Bogus": "1"}}, "params.Bogus", "unknown_field"),
        ({"cn": "2061", "params": {"BeginTime": "2026-11-01T00:00:00", "EndTime": "20261101100000"}},
         "params.BeginTime", "naive_time"),
    ):
        response = client.post(f"/api/monitoring/points/{world.points['kunming']['id']}/commands", json=body,
                               headers=heads["yn_reg"])
        assert response.status_code == 422, response.text
        detail = response.json()["detail"][0]
        assert (detail["field"], detail["code"]) == (field, code) and detail["msg"] and detail["msg_en"]


def test_api_schema_refuses_extra_and_malformed_bodies(api):
    client, world, heads = api
    url = f"/api/monitoring/points/{world.points['kunming']['id']}/commands"
    assert client.post(url, json={"cn": "1011", "mn": "x"}, headers=heads["yn_reg"]).status_code == 422
    assert client.post(url, json={"params": {}}, headers=heads["yn_reg"]).status_code == 422
    assert client.post(url, json={"cn": "1062", "params": {"RtdInterval": [60]}}, headers=heads["yn_reg"]).status_code == 422


# --- page -----------------------------------------------------------------------------------------------------


def test_point_page_form_queues_and_shows_history(api):
    client, world, heads = api
    point = world.points["kunming"]["id"]
    page = client.get(f"/monitoring/points/{point}", headers=heads["yn_reg"])
    assert page.status_code == 200 and 'data-testid="command-form"' in page.text and "设备命令" in page.text
    sent = client.post(f"/monitoring/points/{point}/commands", headers=heads["yn_reg"], follow_redirects=False,
                       data={"cn": "2051", "BeginTime": "2026-11-01T08:00", "EndTime": "2026-11-01T08:10",
                             "RtdInterval": "", "SystemTime": "", "MinInterval": ""})
    assert sent.status_code == 303 and sent.headers["location"].endswith("#commands")
    page = client.get(f"/monitoring/points/{point}", headers=heads["yn_reg"])
    assert "BeginTime=20261101080000" in page.text and "排队中" in page.text
    bad = client.post(f"/monitoring/points/{point}/commands", headers=heads["yn_reg"],
                      data={"cn": "1062", "RtdInterval": "5"})
    assert bad.status_code == 422 and 'data-testid="command-error"' in bad.text and "RtdInterval" in bad.text
    english = client.get(f"/monitoring/points/{point}?lang=en", headers=heads["yn_reg"])
    assert "Device commands" in english.text and "queued" in english.text

    owner = client.get(f"/monitoring/points/{point}", headers=heads["km_ent"])
    assert owner.status_code == 200 and "BeginTime=20261101080000" in owner.text
    assert 'data-testid="command-form"' not in owner.text
    refused = client.post(f"/monitoring/points/{point}/commands", headers=heads["km_ent"], data={"cn": "1011"})
    assert refused.status_code == 403
    assert client.post(f"/monitoring/points/{point}/commands", headers=heads["hh_ent"],
                       data={"cn": "1011"}).status_code == 404


# --- CLI ------------------------------------------------------------------------------------------------------


def test_cli_queue_list_show(session):
    from ingot.monitoring.cli import app

    world = build_world(session)
    create_user(session, username="hh_ent", password="enterprise-2", role="enterprise", enterprise_id=world.enterprises["honghe"])
    session.commit()
    point = str(world.points["kunming"]["id"])
    bad = runner.invoke(app, ["command", "queue", "--point", point, "--cn", "1062", "-p", "RtdInterval=5"])
    assert bad.exit_code == 2 and "out_of_range" in bad.output
    malformed = runner.invoke(app, ["command", "queue", "--point", point, "--cn", "1062", "-p", "RtdInterval"])
    assert malformed.exit_code == 2 and "NAME=VALUE" in malformed.output
    outsider = runner.invoke(app, ["command", "queue", "--point", point, "--cn", "1011", "--user", "hh_ent"])
    assert outsider.exit_code == 2 and "command_forbidden" in outsider.output
    queued = runner.invoke(app, ["command", "queue", "--point", point, "--cn", "1064", "-p", "MinInterval=10",
                                 "--format", "json"])
    assert queued.exit_code == 0, queued.output
    row = json.loads(queued.stdout)
    assert (row["state"], row["params"], row["requested_by"]) == ("queued", {"MinInterval": "10"}, "system")
    # With no receiver running, --wait gives up after its time and says so, exiting non-zero.
    waited = runner.invoke(app, ["command", "show", str(row["id"]), "--wait", "--wait-seconds", "0.1"])
    assert waited.exit_code == 0 and "queued" in waited.output
    waited = runner.invoke(app, ["command", "queue", "--point", point, "--cn", "1011", "--wait", "--wait-seconds", "0.1"])
    assert waited.exit_code == 1 and "is still queued" in waited.output
    listed = runner.invoke(app, ["command", "list", "--point", point, "--format", "json"])
    assert [json.loads(line)["cn"] for line in listed.stdout.splitlines()] == ["1011", "1064"]
    assert runner.invoke(app, ["command", "codes"]).exit_code == 0
    assert runner.invoke(app, ["command", "show", "999999"]).exit_code == 2


# --- over loopback, with the simulated device answering --------------------------------------------------------


def _wait_until(predicate, what: str):
    async def wait():
        while not predicate():
            await asyncio.sleep(0.02)
    # A guard against a hang, not a speed limit: the condition normally holds within a fraction of a second.
    return asyncio.wait_for(wait(), 60)


def test_commands_go_from_queue_to_device_and_back(session, db_url):
    from ingot.core.db import unit_of_work
    from ingot.monitoring.jobs import CommandDispatcher
    from ingot.monitoring.simulator import DeviceSpec, run_fleet
    from ingot.monitoring.storage import ingest_pipeline

    world = build_world(session)
    session.commit()
    kunming, honghe, sichuan = (world.points[key] for key in ("kunming", "honghe", "sichuan"))
    devices = [DeviceSpec(mn=kunming["mn"], pollutants=("a21026", "a21002", "a34013")),
               DeviceSpec(mn=honghe["mn"], pollutants=("a21026",), refuses=("1012",))]

    def queue(point, cn, params=None) -> int:
        with unit_of_work(db_url) as uow:
            return commands.queue_command(uow, YUNNAN_P if point is not sichuan else ADMIN_P, point["id"], cn, params)["id"]

    def state_of(command_id: int) -> dict:
        with unit_of_work(db_url) as uow:
            return commands.get_command(uow, ADMIN_P, command_id)

    async def scenario():
        async with ingest_pipeline(db_url, "127.0.0.1", 0, batch_size=50, max_delay=0.05) as (server, sink, port):
            fleet = asyncio.create_task(run_fleet("127.0.0.1", port, devices, seconds=600, interval=0.05, start=T0))
            await _wait_until(lambda: {kunming["mn"], honghe["mn"]} <= set(server.connected_mns)
                              and server.stats.packets_accepted >= 20, "devices connected with ten minutes of data")
            dispatcher = CommandDispatcher(db_url, server, timeout=20)
            ids = {}
            ids["history"] = await asyncio.to_thread(queue, kunming, "2051", {"BeginTime": "20261101080000",
                                                                              "EndTime": "20261101080400"})
            ids["set_rtd"] = await asyncio.to_thread(queue, kunming, "1062", {"RtdInterval": "60"})
            ids["refused"] = await asyncio.to_thread(queue, honghe, "1012")
            ids["offline"] = await asyncio.to_thread(queue, sichuan, "1011")
            assert await dispatcher.poll() == 3  # kunming's second command waits for its first
            await dispatcher.drain()
            ids["get_rtd"] = await asyncio.to_thread(queue, kunming, "1061")
            ids["set_min"] = await asyncio.to_thread(queue, kunming, "1064", {"MinInterval": "5"})
            await dispatcher.poll()
            await dispatcher.drain()
            ids["get_min"] = await asyncio.to_thread(queue, kunming, "1063")
            ids["calibrate"] = await asyncio.to_thread(queue, kunming, "1012")
            for _ in range(4):
                await dispatcher.poll()
                await dispatcher.drain()
            ids["read_time"] = await asyncio.to_thread(queue, kunming, "1011")
            await dispatcher.poll()
            await dispatcher.drain()
            fleet.cancel()
            await asyncio.gather(fleet, return_exceptions=True)
            await sink.flush()
            return ids

    ids = asyncio.run(scenario())
    results = {name: state_of(command_id) for name, command_id in ids.items()}
    history = results["history"]
    assert (history["state"], history["qn_rtn"], history["exe_rtn"]) == ("executed", 1, 1), history
    assert history["reply"]["data_times"] == [f"2026110108{minute:02d}00" for minute in range(5)]
    assert history["qn"] and history["sent_at"] and history["accepted_at"] and history["finished_at"]
    assert results["set_rtd"]["state"] == "executed"
    assert results["get_rtd"]["reply"]["values"] == {"RtdInterval": "60"}
    assert results["set_min"]["state"] == "executed"
    assert results["get_min"]["reply"]["values"] == {"MinInterval": "5"}
    calibrate = results["calibrate"]
    assert calibrate["state"] == "executed" and len(calibrate["params"]["SystemTime"]) == 14
    # The device's clock ran from 2026-11-01 08:00; it now runs from the calibrated time, and 1011 reads it back.
    assert results["read_time"]["state"] == "executed"
    assert results["read_time"]["reply"]["values"]["SystemTime"] >= calibrate["params"]["SystemTime"] > "20261102"
    refused = results["refused"]
    assert (refused["state"], refused["qn_rtn"], refused["exe_rtn"], refused["qn_rtn_text_en"]) == (
        "refused", 2, None, "request refused")
    offline = results["offline"]
    assert offline["state"] == "offline" and offline["qn"] is None and sichuan["mn"] in offline["detail"]


def test_a_silent_device_times_out_and_the_steps_are_recorded(session, db_url):
    from ingot.core.db import unit_of_work
    from ingot.monitoring.jobs import CommandDispatcher
    from ingot.monitoring.storage import ingest_pipeline

    from .test_end_to_end import packet

    world = build_world(session)
    session.commit()
    kunming = world.points["kunming"]
    with unit_of_work(db_url) as uow:
        command_id = commands.queue_command(uow, ADMIN_P, kunming["id"], "1062", {"RtdInterval": "300"})["id"]

    async def scenario():
        async with ingest_pipeline(db_url, "127.0.0.1", 0, batch_size=50, max_delay=0.05) as (server, sink, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(packet(kunming["mn"], "2051", T0, "a21026-Avg=10,a21026-Flag=N"))
            await reader.readuntil(b"\r\n")  # its 9014: the device is known and connected, and then says nothing
            # The time-out is what is under test (the device never answers), not a limit on the test's speed.
            dispatcher = CommandDispatcher(db_url, server, timeout=0.3)
            await dispatcher.poll()
            await dispatcher.drain()
            request = await reader.readuntil(b"\r\n")
            writer.close()
            return request

    request = asyncio.run(scenario())
    assert b"CN=1062" in request and b"RtdInterval=300" in request
    with unit_of_work(db_url) as uow:
        done = commands.get_command(uow, ADMIN_P, command_id)
        steps = [entry.after["state"] for entry in uow.scalars(
            select(AuditEntry).where(AuditEntry.entity == "monitoring_command").order_by(AuditEntry.id))]
    assert done["state"] == "timed_out" and done["qn"] and done["qn"].encode() in request
    assert steps == ["queued", "sent", "sent", "timed_out"]
