"""End to end: devices over loopback TCP → receiver with the DB directory and sink → rows → an exceedance alarm."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from ingot.core.timeutil import SHANGHAI
from ingot.monitoring.models import Alarm, Measurement, MonitoringPoint, RawPacket

from .world import build_world

pytest.importorskip("ingot.monitoring.receiver", reason="the HJ 212 receiver core is not part of this build")


def crc16(data: bytes) -> int:
    """HJ 212-2017 appendix A, transcribed from its C code."""
    register = 0xFFFF
    for byte in data:
        register = (register >> 8) ^ byte
        for _ in range(8):
            carry = register & 1
            register >>= 1
            if carry:
                register ^= 0xA001
    return register


def frame(segment: str) -> bytes:
    body = segment.encode("utf-8")
    return b"##" + f"{len(body):04d}".encode() + body + f"{crc16(body):04X}".encode() + b"\r\n"


def packet(mn: str, cn: str, moment: datetime, values: str, password: str = "123456", flag: int = 5) -> bytes:
    local = moment.astimezone(SHANGHAI)
    qn = local.strftime("%Y%m%d%H%M%S") + "000"
    return frame(f"QN={qn};ST=31;CN={cn};PW={password};MN={mn};Flag={flag};"
                 f"CP=&&DataTime={local:%Y%m%d%H%M%S};{values}&&")


async def _device(host: str, port: int, packets: list[bytes], *, fragment: bool = False) -> list[bytes]:
    reader, writer = await asyncio.open_connection(host, port)
    answers = []
    for data in packets:
        if fragment:
            for offset in range(0, len(data), 7):
                writer.write(data[offset:offset + 7])
                await writer.drain()
        else:
            writer.write(data)
            await writer.drain()
        answers.append(await asyncio.wait_for(reader.readuntil(b"\r\n"), 30))
    writer.close()
    await writer.wait_closed()
    return answers


def test_devices_to_rows_to_alarm(session, db_url):
    from ingot.monitoring.storage import ingest_pipeline

    world = build_world(session)
    session.commit()
    hour = datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc)
    kunming, honghe = world.points["kunming"]["mn"], world.points["honghe"]["mn"]
    over = packet(kunming, "2061", hour, "a21026-Avg=380.0,a21026-ZsAvg=455.5,a21026-Flag=N;a34013-Avg=12.0,a34013-Flag=N")
    under = packet(honghe, "2061", hour, "a21026-Avg=120.0,a21026-ZsAvg=130.0,a21026-Flag=N")
    minutes = [packet(honghe, "2051", hour + timedelta(minutes=i), f"a21026-Avg={100 + i}.5,a21026-Flag=N") for i in range(5)]
    wrong_password = packet(kunming, "2061", hour, "a21026-Avg=999,a21026-Flag=N", password="000000")

    async def scenario():
        async with ingest_pipeline(db_url, "127.0.0.1", 0, batch_size=50, max_delay=0.05) as (_server, sink, port):
            results = await asyncio.gather(
                _device("127.0.0.1", port, [over]),
                _device("127.0.0.1", port, [under] + minutes, fragment=True),
                return_exceptions=True,
            )
            try:
                await _device("127.0.0.1", port, [wrong_password])
            except (asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError):
                pass  # the receiver may answer or drop a device with a wrong password; either way nothing is stored
            await sink.flush()
            return results

    results = asyncio.run(scenario())
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert all(b"CN=9014" in answer for answers in results for answer in answers)

    session.expire_all()
    stored = session.scalars(select(Measurement).where(Measurement.kind == "minute").order_by(Measurement.data_time)).all()
    assert [str(row.avg.normalize()) for row in stored] == ["100.5", "101.5", "102.5", "103.5", "104.5"]
    kunming_id = world.points["kunming"]["id"]
    assert session.scalar(select(func.count()).select_from(Measurement).where(Measurement.point_id == kunming_id)) == 2
    alarms = session.scalars(select(Alarm)).all()
    assert [(a.point_id, a.kind, a.pollutant, str(a.value.normalize()), a.data_time) for a in alarms] == [
        (kunming_id, "exceedance", "a21026", "455.5", hour)]
    assert session.get(MonitoringPoint, kunming_id).last_packet_at is not None
    assert session.scalar(select(func.count()).select_from(RawPacket).where(RawPacket.accepted.is_(True))) == 7
    assert session.scalar(select(func.count()).select_from(Measurement).where(Measurement.avg == 999)) == 0
