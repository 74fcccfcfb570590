"""Storage round trip: the batched sink writes packets, measurements, last-packet times and exceedance alarms."""
from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from ingot.core.audit import AuditEntry
from ingot.core.errors import InvalidInput
from ingot.monitoring.models import Alarm, Measurement, MonitoringPoint, RawPacket
from ingot.monitoring.storage import (
    VALUE_FIELDS, DbDeviceDirectory, DbPacketSink, IngestRecord, Reading, apply_retention, write_batch,
)

from .world import T0, build_world


def _hour_record(point_id, hour, zs_avg, avg="300"):
    return IngestRecord(received_at=hour + timedelta(minutes=1), text=f"packet {hour.isoformat()}", accepted=True,
                        peer="127.0.0.1:5000", mn="888888800000000000000001", point_id=point_id, kind="hour", data_time=hour,
                        readings=(Reading("a21026", {"avg": Decimal(avg), "zs_avg": Decimal(zs_avg),
                                                     "min": Decimal("1.5"), "max": Decimal("999.123456")}, "N"),))


def test_write_batch_round_trip(session):
    world = build_world(session)
    point_id = world.points["kunming"]["id"]
    records = [
        _hour_record(point_id, T0, "350"),
        _hour_record(point_id, T0 + timedelta(hours=1), "450.5"),
        IngestRecord(received_at=T0, text="##garbage", accepted=False, peer="10.0.0.9:1", reason_code="crc_mismatch",
                     reason="CRC 0000 != ABCD"),
    ]
    counts = write_batch(session, records)
    session.commit()
    assert counts == {"packets": 3, "measurements": 2, "alarms": 1}
    rows = session.scalars(select(Measurement).order_by(Measurement.data_time)).all()
    assert [(r.kind, r.data_time, r.zs_avg, r.max) for r in rows] == [
        ("hour", T0, Decimal("350"), Decimal("999.123456")),
        ("hour", T0 + timedelta(hours=1), Decimal("450.5"), Decimal("999.123456")),
    ]
    rejected = session.scalar(select(RawPacket).where(RawPacket.accepted.is_(False)))
    assert rejected.reason_code == "crc_mismatch" and rejected.point_id is None
    assert session.get(MonitoringPoint, point_id).last_packet_at == T0 + timedelta(hours=1, minutes=1)
    # a later batch of older packets (a history upload) never moves a point's last packet time back; points of
    # several devices are touched in one batch
    other_id = next(point["id"] for name, point in world.points.items() if point["id"] != point_id)
    write_batch(session, [_hour_record(point_id, T0 - timedelta(hours=5), "10"),
                          _hour_record(other_id, T0 + timedelta(hours=3), "10")])
    session.commit()
    session.expire_all()
    assert session.get(MonitoringPoint, point_id).last_packet_at == T0 + timedelta(hours=1, minutes=1)
    assert session.get(MonitoringPoint, other_id).last_packet_at == T0 + timedelta(hours=3, minutes=1)
    alarm = session.scalar(select(Alarm))
    assert (alarm.kind, alarm.value, alarm.limit_value, alarm.state) == ("exceedance", Decimal("450.5"), Decimal("400"), "open")
    assert session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.entity == "monitoring_alarm")) == 1


def test_resent_hour_does_not_open_a_second_alarm(session):
    world = build_world(session)
    point_id = world.points["kunming"]["id"]
    write_batch(session, [_hour_record(point_id, T0, "500")])
    write_batch(session, [_hour_record(point_id, T0, "500")])
    session.commit()
    assert session.scalar(select(func.count()).select_from(Alarm)) == 1


def test_async_sink_and_directory(session, db_url):
    world = build_world(session)
    session.commit()
    point_id = world.points["honghe"]["id"]

    async def scenario():
        directory = DbDeviceDirectory(db_url)
        assert await directory.authenticate("888888800000000000000002", "123456") == point_id
        assert await directory.authenticate("888888800000000000000002", "654321") is None
        assert await directory.authenticate("99999999999999", "123456") is None
        sink = DbPacketSink(db_url, batch_size=7, max_delay=0.01)
        await sink.start()
        for i in range(30):
            await sink.put(_hour_record(point_id, T0 + timedelta(hours=i), "100"))
        await sink.close()
        return sink.stats

    stats = asyncio.run(scenario())
    assert stats.packets == 30 and stats.measurements == 30 and stats.failures == 0 and stats.batches >= 5
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Measurement).where(Measurement.point_id == point_id)) == 30


def test_retention_deletes_old_rows_only(session):
    world = build_world(session)
    point_id = world.points["kunming"]["id"]
    write_batch(session, [_hour_record(point_id, T0, "1"), _hour_record(point_id, T0 + timedelta(days=10), "1")])
    counts = apply_retention(session, 5, now=T0 + timedelta(days=11))
    session.commit()
    assert counts == {"measurements": 1, "packets": 1}
    assert session.scalar(select(func.count()).select_from(Measurement)) == 1
    assert session.scalar(select(AuditEntry).where(AuditEntry.entity == "monitoring_retention")).after["measurements"] == 1
    with pytest.raises(InvalidInput) as error:
        apply_retention(session, 0)
    assert error.value.code == "retention_days_invalid"


def test_archived_text_survives_every_awkward_character(session):
    build_world(session)
    awkward = "##0010a\tb\nc\\d\r\\N é 二氧化硫 \\x00"
    write_batch(session, [IngestRecord(received_at=T0, text=awkward, accepted=False, reason_code="framing", reason="r\tr")])
    session.commit()
    stored = session.scalar(select(RawPacket))
    assert (stored.text, stored.reason, stored.point_id) == (awkward, "r\tr", None)


def test_record_from_decoded_packet():
    hj212 = pytest.importorskip("ingot.monitoring.hj212", reason="the HJ 212 codec is not part of this build")
    from ingot.monitoring.storage import record_from_packet

    segment = ("QN=20261101100000000;ST=31;CN=2061;PW=123456;MN=888888800000000000000001;Flag=5;"
               "CP=&&DataTime=20261101100000;a21026-Avg=380.5,a21026-ZsAvg=455.5,a21026-Max=600,a21026-Flag=N;"
               "a34013-Avg=12,a34013-Flag=D&&")
    packet = hj212.decode(hj212.frame(segment))
    record = record_from_packet(packet, received_at=T0, text=segment, peer="p", point_id=7)
    assert (record.kind, record.data_time, record.point_id) == ("hour", T0 + timedelta(hours=2), 7)  # 10:00 Beijing
    assert record.readings[0] == Reading("a21026", {"avg": Decimal("380.5"), "zs_avg": Decimal("455.5"),
                                                    "max": Decimal("600")}, "N")
    assert record.readings[1].flag == "D"
    answer_only = hj212.decode(hj212.frame("QN=20261101100000000;ST=91;CN=9011;PW=123456;MN=888888800000000000000001;"
                                           "Flag=4;CP=&&QnRtn=1&&"))
    assert record_from_packet(answer_only, received_at=T0, text="x").readings == ()


def test_measured_values_are_stored_exactly_on_every_backend(session):
    """Mass (Cou) and concentrations never pass through binary floats: what goes in comes back as the same decimal,
    at the column's 6 places, on SQLite as on PostgreSQL, by the sink's bulk path and by the ORM alike."""
    world = build_world(session)
    point_id = world.points["kunming"]["id"]
    exact = {"cou": Decimal("123456789012.345678"), "avg": Decimal("0.1"), "min": Decimal("-0.000001"),
             "max": Decimal("99999999999999999.5"), "zs_avg": Decimal("0.30000000000000004")}
    write_batch(session, [IngestRecord(received_at=T0, text="m", accepted=True, point_id=point_id, kind="day",
                                       data_time=T0, readings=(Reading("a21026", dict(exact), "N"),))])
    session.add(Measurement(point_id=point_id, pollutant="a21002", kind="day", data_time=T0, received_at=T0,
                            cou=Decimal("123456789012.345678"), avg=Decimal("2.0000005")))
    session.commit()
    bulk = session.scalar(select(Measurement).where(Measurement.pollutant == "a21026"))
    assert (bulk.cou, bulk.avg, bulk.min, bulk.max, bulk.zs_avg) == (
        Decimal("123456789012.345678"), Decimal("0.1"), Decimal("-0.000001"), Decimal("99999999999999999.5"),
        Decimal("0.300000"))
    assert all(type(value) is Decimal for value in (bulk.cou, bulk.avg, bulk.min, bulk.max, bulk.zs_avg))
    assert str(bulk.cou) == "123456789012.345678"
    orm = session.scalar(select(Measurement).where(Measurement.pollutant == "a21002"))
    assert (orm.cou, orm.avg) == (Decimal("123456789012.345678"), Decimal("2.000001"))  # half away from zero, as PostgreSQL
    if session.get_bind().dialect.name == "sqlite":
        stored = session.execute(select(func.typeof(Measurement.cou), func.typeof(Measurement.avg))).all()
        assert set(stored) == {("text", "text")}


def test_exact_reading_text_refuses_floats_and_overflow():
    from ingot.monitoring.models import exact_reading_text

    assert exact_reading_text(Decimal("1.5")) == "1.500000" and exact_reading_text(Decimal("-0")) == "0.000000"
    with pytest.raises(TypeError):
        exact_reading_text(1.5)
    with pytest.raises(ValueError):
        exact_reading_text(Decimal("1E+18"))


def test_received_packets_are_stored_as_their_records_would_be(session):
    """The sink formats the receiver's packets straight from the decoded packet on PostgreSQL (and through
    record_from_received elsewhere); both must store exactly what the record path stores."""
    from ingot.monitoring.hj212 import decode, frame
    from ingot.monitoring.receiver import ReceivedPacket
    from ingot.monitoring.storage import record_from_received

    world = build_world(session)
    session.commit()
    point_id = world.points["kunming"]["id"]
    mn = "888888800000000000000001"

    def received(segment: str, moment) -> ReceivedPacket:
        raw = frame(segment)[:-2]
        return ReceivedPacket(moment, "127.0.0.1:6000", raw.decode(), True, decode(raw), point_id)

    head = f"ST=31;PW=123456;MN={mn};Flag=5;CP=&&"
    batch = [
        received(f"QN=20261101100000000;CN=2061;{head}DataTime=20261101100000;a21026-Avg=380.5,a21026-ZsAvg=455.5,"
                 "a21026-Max=600,a21026-Flag=N;a34013-Avg=12,a34013-Flag=D;a01012-Flag=N;a19001-Info=x&&", T0),
        received(f"QN=20261101100100000;CN=2011;{head}DataTime=20261101100100;a21026-Rtd=-0.000001,a21026-ZsRtd=100.,"
                 "a21026-Flag=N&&", T0 + timedelta(seconds=1)),
        received(f"QN=20261101100200000;CN=9014;{head}&&", T0 + timedelta(seconds=2)),
        ReceivedPacket(T0, "10.0.0.9:1\t", "##bad\tpacket\\N", False, reason_code="crc_mismatch", reason="r\tr"),
        ReceivedPacket(T0, "10.0.0.9:1", "##0010x", False, decode(frame(f"QN=20261101100000000;CN=2051;{head}&&")),
                       reason_code="auth_failed", reason="unknown MN"),
    ]

    def stored():
        measurements = sorted(
            (m.point_id, m.pollutant, m.kind, m.data_time, *(getattr(m, name) for name in VALUE_FIELDS), m.flag,
             m.received_at) for m in session.scalars(select(Measurement)))
        packets = sorted(((p.received_at, p.text), (p.point_id, p.mn, p.peer, p.accepted, p.reason_code, p.reason))
                         for p in session.scalars(select(RawPacket)))
        return measurements, packets

    direct = write_batch(session, batch)
    session.flush()
    first = stored()
    alarms = session.scalar(select(func.count()).select_from(Alarm))
    session.rollback()
    through_records = write_batch(session, [record_from_received(item) for item in batch])
    session.flush()
    assert (direct, stored()) == (through_records, first)
    assert direct == {"packets": 5, "measurements": 3, "alarms": 1} and alarms == 1
    assert [row[4:6] for row in first[0] if row[2] == "rtd"] == [(Decimal("-0.000001"), None)]
    assert session.get(MonitoringPoint, point_id).last_packet_at == T0 + timedelta(seconds=2)


def test_sink_says_when_it_is_full_and_when_there_is_room_again(session, db_url):
    world = build_world(session)
    session.commit()
    point_id = world.points["honghe"]["id"]

    async def scenario():
        sink = DbPacketSink(db_url, batch_size=5, max_delay=0.01, max_queued=10)
        records = [_hour_record(point_id, T0 + timedelta(hours=i), "100") for i in range(12)]
        room = [sink.put_nowait_many(records[:6]), sink.put_nowait_many(records[6:])]
        await asyncio.wait_for(sink.wait_for_room(), 10)
        await sink.close()
        return room, sink.stats

    room, stats = asyncio.run(scenario())
    assert room == [True, False]
    assert stats.packets == 12 and stats.failures == 0
