"""Several receiver processes on one port (`ingot monitor listen --workers N`): commands reach the device through
whichever process holds it and only that one; a command nobody holds ends offline, but only when no process is busy
with that device; and the command itself starts its workers, stores what every one of them receives, and stops them
all, their sinks drained."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import func, select

from ingot.core.db import unit_of_work
from ingot.monitoring import commands
from ingot.monitoring.jobs import CommandDispatcher
from ingot.monitoring.models import RawPacket
from ingot.monitoring.storage import ingest_pipeline

from .test_end_to_end import packet
from .world import ADMIN_P, T0, build_world


def test_each_command_goes_through_the_process_holding_its_device(session, db_url):
    world = build_world(session)
    session.commit()
    kunming, honghe = world.points["kunming"], world.points["honghe"]
    clock = {"now": datetime.now(timezone.utc)}

    def queue(point, cn, params=None) -> int:
        with unit_of_work(db_url) as uow:
            return commands.queue_command(uow, ADMIN_P, point["id"], cn, params)["id"]

    def state(command_id: int) -> str:
        with unit_of_work(db_url) as uow:
            return commands.get_command(uow, ADMIN_P, command_id)["state"]

    async def answer_commands(reader, writer, mn):
        # a device that takes every request (9011 QnRtn=1) and carries it out (9012 ExeRtn=1)
        while True:
            line = await reader.readuntil(b"\r\n")
            if b"CN=1062" in line:
                qn = line.split(b"QN=", 1)[1].split(b";", 1)[0].decode()
                for cn, rtn in (("9011", "QnRtn=1"), ("9012", "ExeRtn=1")):
                    writer.write(_answer(mn, cn, qn, rtn))
                await writer.drain()

    async def scenario():
        async with ingest_pipeline(db_url, "127.0.0.1", 0, batch_size=20, max_delay=0.05) as (first, _s1, port1), \
                ingest_pipeline(db_url, "127.0.0.1", 0, batch_size=20, max_delay=0.05) as (second, _s2, port2):
            reader, writer = await asyncio.open_connection("127.0.0.1", port2)  # kunming's device: on the second
            writer.write(packet(kunming["mn"], "2051", T0, "a21026-Avg=10,a21026-Flag=N"))
            await reader.readuntil(b"\r\n")
            device = asyncio.create_task(answer_commands(reader, writer, kunming["mn"]))
            now = lambda: clock["now"]  # noqa: E731 - the dispatchers' clock, moved on by the test
            marks = CommandDispatcher(db_url, first, timeout=10, clock=now, offline_after=5.0, marks_offline=True)
            holds = CommandDispatcher(db_url, second, timeout=10, clock=now, offline_after=5.0, marks_offline=False)
            held = await asyncio.to_thread(queue, kunming, "1062", {"RtdInterval": "60"})
            nobody = await asyncio.to_thread(queue, honghe, "1062", {"RtdInterval": "60"})
            # the first process holds neither device: it leaves both queued while they are young
            await marks.poll()
            await marks.drain()
            assert [await asyncio.to_thread(state, c) for c in (held, nobody)] == ["queued", "queued"]
            # the second takes kunming's up and its device carries it out; it never marks anything offline
            await holds.poll()
            await holds.drain()
            assert [await asyncio.to_thread(state, c) for c in (held, nobody)] == ["executed", "queued"]
            # later, with nobody busy with honghe's device, the first ends its command as offline
            clock["now"] = clock["now"] + timedelta(seconds=6)
            await holds.poll()
            await holds.drain()
            assert await asyncio.to_thread(state, nobody) == "queued"
            await marks.poll()
            await marks.drain()
            assert await asyncio.to_thread(state, nobody) == "offline"
            device.cancel()
            writer.close()

    asyncio.run(scenario())


def test_no_offline_while_another_process_is_busy_with_the_device(session, db_url):
    world = build_world(session)
    session.commit()
    kunming = world.points["kunming"]
    with unit_of_work(db_url) as uow:
        busy = commands.queue_command(uow, ADMIN_P, kunming["id"], "1062", {"RtdInterval": "60"})["id"]
        waiting = commands.queue_command(uow, ADMIN_P, kunming["id"], "1011")["id"]
        assert commands.claim_command(uow, busy, {"RtdInterval": "60"})  # another process sent it, no answer yet
    later = datetime.now(timezone.utc) + timedelta(minutes=1)

    async def scenario():
        async with ingest_pipeline(db_url, "127.0.0.1", 0) as (server, _sink, _port):
            dispatcher = CommandDispatcher(db_url, server, clock=lambda: later, offline_after=5.0, marks_offline=True)
            await dispatcher.poll()
            await dispatcher.drain()

    asyncio.run(scenario())
    with unit_of_work(db_url) as uow:
        assert commands.get_command(uow, ADMIN_P, waiting)["state"] == "queued"
        assert commands.get_command(uow, ADMIN_P, busy)["state"] == "sent"


def _answer(mn: str, cn: str, qn: str, rtn: str) -> bytes:
    from ingot.monitoring.hj212 import frame

    return frame(f"QN={qn};ST=91;CN={cn};PW=123456;MN={mn};Flag=4;CP=&&{rtn}&&")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_listen_with_two_workers_stores_every_packet_and_stops_cleanly(session, db_url, tmp_path):
    world = build_world(session)
    session.commit()
    mns = [point["mn"] for point in world.points.values()]
    port = _free_port()
    log = tmp_path / "listen.log"
    with log.open("wb") as output:
        listener = subprocess.Popen([str(Path(sys.executable).with_name("ingot")), "monitor", "listen", "--host", "127.0.0.1",
                                     "--port", str(port), "--workers", "2"],
                                    env={**os.environ, "INGOT_DATABASE_URL": db_url}, stdout=output, stderr=output)
    connections = 12

    async def devices() -> int:
        async def one(index: int) -> int:
            for _attempt in range(300):  # the workers take a moment to start listening
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    break
                except OSError:
                    assert listener.poll() is None, log.read_text(errors="replace")
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"nobody listens on {port}: {log.read_text(errors='replace')}")
            mn = mns[index % len(mns)]
            answers = 0
            for minute in range(5):
                writer.write(packet(mn, "2051", T0 + timedelta(minutes=minute, seconds=index),
                                    "a21026-Avg=10,a21026-Flag=N"))
                await writer.drain()
                answers += b"CN=9014" in await asyncio.wait_for(reader.readuntil(b"\r\n"), 30)
            writer.close()
            return answers

        return sum(await asyncio.gather(*(one(index) for index in range(connections))))

    try:
        assert asyncio.run(devices()) == connections * 5
    finally:
        listener.send_signal(signal.SIGTERM)
        status = listener.wait(60)
    output = log.read_text(errors="replace")
    assert status == 0, output
    assert "2 processes" in output
    with unit_of_work(db_url) as uow:  # every worker's sink was drained before it ended
        assert uow.scalar(select(func.count()).select_from(RawPacket).where(RawPacket.accepted.is_(True))) == connections * 5


def test_several_workers_need_a_fixed_port():
    from typer.testing import CliRunner

    from ingot.monitoring.cli import app

    result = CliRunner().invoke(app, ["listen", "--port", "0", "--workers", "2"])
    assert result.exit_code == 2 and "--port" in result.output
