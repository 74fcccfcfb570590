"""Storage for the receiver: a batched packet sink, a device directory backed by the points table, and retention.

The sink takes plain `IngestRecord`s (built from decoded packets by `ingot.monitoring.ingest`), queues them, and
writes each batch in one transaction: raw packets, measurements, points' last-packet times, and exceedance alarms
of the hourly values in the batch. On PostgreSQL measurements and packets go in with COPY; elsewhere with one
executemany per table (SQLite runs in WAL mode, see ingot.core.db).
"""
from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from contextlib import asynccontextmanager
import hmac
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import AsyncIterator, Iterable, NamedTuple, Sequence

from sqlalchemy import bindparam, delete, insert, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ingot.core.audit import record_change
from ingot.core.auth import SYSTEM, Principal
from ingot.core.db import get_engine, session_factory
from ingot.core.errors import InvalidInput
from ingot.core.timeutil import utcnow
from ingot.monitoring.hj212._fastpath import copy_escape, measurement_lines as compiled_factor_lines
from ingot.monitoring.alarms import HourlyValue, LimitValue, exceedances, open_alarms
from ingot.monitoring.models import Measurement, MonitoringPoint, PermitLimit, RawPacket, exact_reading_text

log = logging.getLogger(__name__)

VALUE_FIELDS = ("rtd", "avg", "min", "max", "zs_rtd", "zs_avg", "zs_min", "zs_max", "cou")
MEASUREMENT_COLUMNS = ("point_id", "pollutant", "kind", "data_time", *VALUE_FIELDS, "flag", "received_at")
_VALUE_INDEX = {name: index for index, name in enumerate(VALUE_FIELDS)}
PACKET_COLUMNS = ("received_at", "point_id", "mn", "peer", "text", "accepted", "reason_code", "reason")


# --- device passwords -----------------------------------------------------------------------------------------


def new_password_secret(password: str) -> tuple[str, str]:
    """(salt, digest) for a device password; HJ 212 sends PW in clear text, so only a digest is kept."""
    salt = secrets.token_hex(16)
    return salt, password_digest(salt, password)


def password_digest(salt: str, password: str) -> str:
    return hashlib.sha256((salt + password).encode("utf-8")).hexdigest()


# --- records the sink writes ----------------------------------------------------------------------------------


class Reading(NamedTuple):
    pollutant: str
    values: dict[str, Decimal]  # keys among VALUE_FIELDS
    flag: str | None = None


class IngestRecord(NamedTuple):
    """One packet as received: always archived; its readings stored when it was accepted from a known point.
    (A named tuple: immutable like the frozen dataclass it was, and built several times faster on the ingest path.)"""

    received_at: datetime
    text: str
    accepted: bool
    peer: str = ""
    mn: str | None = None
    point_id: int | None = None
    reason_code: str | None = None
    reason: str | None = None
    kind: str | None = None  # rtd | minute | hour | day for data uploads
    data_time: datetime | None = None
    readings: tuple[Reading, ...] = ()


# --- device directory -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceEntry:
    point_id: int
    mn: str
    password_salt: str
    password_digest: str
    active: bool

    def password_matches(self, password: str | None) -> bool:
        if password is None:
            return False
        return hmac.compare_digest(password_digest(self.password_salt, password), self.password_digest)


class DbDeviceDirectory:
    """MN → point lookup for the receiver, from the points table, cached and refreshed every `refresh_seconds`.

    A miss reloads at most once per `refresh_seconds` so a flood of unknown MNs cannot hammer the database.
    """

    def __init__(self, url: str | None = None, refresh_seconds: float = 30.0):
        self._url = url
        self._refresh_seconds = refresh_seconds
        self._entries: dict[str, DeviceEntry] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    def _load(self) -> dict[str, DeviceEntry]:
        with session_factory(self._url)() as session:
            rows = session.execute(
                select(MonitoringPoint.id, MonitoringPoint.mn, MonitoringPoint.password_salt,
                       MonitoringPoint.password_digest, MonitoringPoint.active)
            )
            return {row.mn: DeviceEntry(row.id, row.mn, row.password_salt, row.password_digest, row.active) for row in rows}

    async def refresh(self) -> None:
        async with self._lock:
            self._entries = await asyncio.to_thread(self._load)
            self._loaded_at = time.monotonic()

    async def lookup(self, mn: str) -> DeviceEntry | None:
        entry = self._entries.get(mn)
        if entry is None and time.monotonic() - self._loaded_at >= self._refresh_seconds:
            await self.refresh()
            entry = self._entries.get(mn)
        return entry if entry is not None and entry.active else None

    async def authenticate(self, mn: str, password: str | None) -> int | None:
        """The point id when the MN is a known active point and the password matches, else None."""
        entry = await self.lookup(mn)
        if entry is None or not entry.password_matches(password):
            return None
        return entry.point_id


# --- writing --------------------------------------------------------------------------------------------------


def _measurement_rows(records: Iterable[IngestRecord]) -> list[dict]:
    rows = []
    for record in records:
        if not (record.accepted and record.point_id is not None and record.kind and record.data_time):
            continue
        for reading in record.readings:
            row = {name: reading.values.get(name) for name in VALUE_FIELDS}
            row.update(point_id=record.point_id, pollutant=reading.pollutant, kind=record.kind,
                       data_time=record.data_time, flag=reading.flag, received_at=record.received_at)
            rows.append(row)
    return rows


def _packet_rows(records: Iterable[IngestRecord]) -> list[dict]:
    return [
        {
            "received_at": record.received_at,
            "point_id": record.point_id,
            "mn": (record.mn or None) and record.mn[:32],
            "peer": record.peer[:64],
            "text": record.text,
            "accepted": record.accepted,
            "reason_code": record.reason_code and record.reason_code[:48],
            "reason": record.reason and record.reason[:512],
        }
        for record in records
    ]


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value) -> str:
    """One field in PostgreSQL's COPY text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        escaped = copy_escape(value)  # C for one-byte strings (nearly every packet's text); None for wider ones
        return escaped if escaped is not None else value.translate(_COPY_ESCAPES).replace("\x00", "")
    return str(value)


def _copy(session: Session, table: str, columns: Sequence[str], lines: list[str]) -> None:
    """COPY pre-formatted lines through psycopg 3 on the session's own connection (same transaction)."""
    if not lines:
        return
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cursor:
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            copy.write("\n".join(lines) + "\n")


def _copy_lines(records: Sequence) -> tuple[list[str], list[str], int]:
    # Formatting the COPY text here, once per record for the shared fields, is several times faster than handing
    # psycopg one tuple per row; this is the hot path of the PostgreSQL ingest. The receiver's packets
    # (ReceivedPacket) are formatted straight from the decoded packet: building an IngestRecord and its Readings
    # first cost about as much again as the formatting.
    packet_lines, measurement_lines = [], []
    rows = 0
    last_moment = last_text = None
    for record in records:
        # the packets of one read share their receipt time: format it once
        moment = record.received_at
        if moment is not last_moment:
            last_moment, last_text = moment, moment.isoformat()
        received = last_text
        if type(record) is not IngestRecord:
            rows += _received_lines(record, received, packet_lines, measurement_lines)
            continue
        packet_lines.append("\t".join((
            received, _copy_text(record.point_id), _copy_text(record.mn and record.mn[:32]), _copy_text(record.peer[:64]),
            _copy_text(record.text), "t" if record.accepted else "f",
            _copy_text(record.reason_code and record.reason_code[:48]), _copy_text(record.reason and record.reason[:512]),
        )))
        if not (record.accepted and record.point_id is not None and record.kind and record.data_time):
            continue
        head = f"{record.point_id}\t"
        tail = f"\t{record.kind}\t{record.data_time.isoformat()}\t"
        for pollutant, values, flag in record.readings:
            # values are Decimals or None; no Decimal's text contains "None", so NULLs are one replace away
            numbers = "\t".join(map(str, map(values.get, VALUE_FIELDS))).replace("None", "\\N")
            measurement_lines.append(f"{head}{_copy_text(pollutant)}{tail}{numbers}\t{_copy_text(flag)}\t{received}")
            rows += 1
    return packet_lines, measurement_lines, rows


COPY_NULL = "\\N"


def _received_lines(received, stamp: str, packet_lines: list[str], measurement_lines: list[str]) -> int:
    """The COPY lines of one ReceivedPacket (`stamp`: its receipt time as text): what record_from_received + the
    IngestRecord branch above would write; returns how many measurement rows it added. The factors' lines come from C (hj212._fastpath.measurement_lines),
    or from _factor_lines when it declines."""
    packet = received.packet
    text = _copy_text(received.text)
    peer = _copy_text(received.peer[:64])
    if not received.accepted or packet is None:
        mn = packet.mn if packet is not None else None
        packet_lines.append("\t".join((
            stamp, "\\N", _copy_text(mn and mn[:32]), peer, text, "f",
            _copy_text((received.reason_code or "rejected")[:48]), _copy_text((received.reason or "")[:512]))))
        return 0
    point_id = received.device
    point = "\\N" if point_id is None else str(point_id)
    packet_lines.append(f"{stamp}\t{point}\t{_copy_text(packet.mn[:32])}\t{peer}\t{text}\tt\t\\N\t\\N")
    kind = CN_KIND.get(packet.cn)
    if kind is None or packet.data_time is None or point_id is None:
        return 0
    head = f"{point}\t"
    tail = f"\t{kind}\t{packet.data_time.isoformat()}\t"
    lines = compiled_factor_lines(packet.pollutants, head, tail, stamp, _SUFFIX_COLUMN, len(VALUE_FIELDS))
    if lines is None:
        lines = "\n".join(_factor_lines(packet, head, tail, stamp))
    if not lines:
        return 0
    measurement_lines.append(lines)  # one element may hold several lines: the writer joins them with LF
    return lines.count("\n") + 1


def _factor_lines(packet, head: str, tail: str, stamp: str) -> list[str]:
    """The factors' COPY lines in Python: the reference for, and the fallback of, hj212._fastpath.measurement_lines."""
    out = []
    column_of = _SUFFIX_COLUMN
    for entry in packet.pollutants.values():
        columns = None
        for suffix, value in entry.values.items():
            column = column_of.get(suffix)
            if column is not None:
                if columns is None:
                    columns = [COPY_NULL] * len(VALUE_FIELDS)
                columns[column] = _copy_text(str(value))
        if columns is None:
            continue  # a factor with only flags or texts has no reading (as in record_from_packet)
        numbers = "\t".join(columns)
        out.append(f"{head}{_copy_text(entry.code)}{tail}{numbers}\t{_copy_text(entry.flag or None)}\t{stamp}")
    return out


def _sqlite_time(moment: datetime) -> str:
    # The exact text SQLAlchemy's SQLite DATETIME stores (UTC, naive, microseconds), so queries compare alike.
    moment = moment.astimezone(timezone.utc)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond:06d}"


def _sqlite_number(value: Decimal | None) -> str | None:
    # SQLite has no decimal type: measured values are stored exactly, as decimal text rounded to the column's
    # 6 places like PostgreSQL's NUMERIC(24, 6) (see ingot.monitoring.models.ExactReading), never as floats.
    return None if value is None else exact_reading_text(value)


def _sqlite_rows(records: Sequence[IngestRecord]) -> tuple[list[tuple], list[tuple]]:
    """Rows for one executemany per table on the DB-API cursor, values converted as SQLAlchemy would convert them."""
    packets, measurements = [], []
    for record in records:
        received = _sqlite_time(record.received_at)
        packets.append((received, record.point_id, record.mn and record.mn[:32], record.peer[:64], record.text,
                        1 if record.accepted else 0, record.reason_code and record.reason_code[:48],
                        record.reason and record.reason[:512]))
        if not (record.accepted and record.point_id is not None and record.kind and record.data_time):
            continue
        data_time = _sqlite_time(record.data_time)
        for reading in record.readings:
            values = reading.values
            measurements.append((record.point_id, reading.pollutant, record.kind, data_time,
                                 *(_sqlite_number(values.get(name)) for name in VALUE_FIELDS), reading.flag, received))
    return packets, measurements


_TOUCH_POINT = (
    update(MonitoringPoint.__table__)
    .where(MonitoringPoint.__table__.c.id == bindparam("point"))
    .where((MonitoringPoint.__table__.c.last_packet_at.is_(None)) | (MonitoringPoint.__table__.c.last_packet_at < bindparam("seen")))
    .values(last_packet_at=bindparam("seen"))
)


_TOUCH_POINTS_POSTGRESQL = text(
    "UPDATE monitoring_points AS point SET last_packet_at = seen.at "
    "FROM unnest(CAST(:points AS integer[]), CAST(:seen AS timestamptz[])) AS seen(id, at) "
    "WHERE point.id = seen.id AND (point.last_packet_at IS NULL OR point.last_packet_at < seen.at)"
)


class PreparedBatch(NamedTuple):
    """A batch made ready for the database without touching it (COPY lines on PostgreSQL, executemany rows on
    SQLite), so the sink can prepare one batch while the database writes the one before."""

    dialect: str
    packets: list
    measurements: list              # rows; on PostgreSQL COPY text, where one element may hold several rows' lines
    measurement_count: int
    last_seen: dict[int, datetime]  # point id → latest receipt time among its accepted packets
    hourly: list[dict]              # measurement rows of hourly uploads, checked against the permit limits


def prepare_batch(dialect: str, records: Sequence) -> PreparedBatch:
    """`records` are IngestRecords or the receiver's ReceivedPackets (converted here, off the event loop)."""
    if dialect != "postgresql":
        records = [record if type(record) is IngestRecord else record_from_received(record) for record in records]
    last_seen: dict[int, datetime] = {}
    hour_records = []
    for record in records:
        if type(record) is IngestRecord:
            point_id, kind = record.point_id, record.kind
        else:
            point_id = record.device
            kind = CN_KIND.get(record.packet.cn) if record.packet is not None else None
        if record.accepted and point_id is not None:
            previous = last_seen.get(point_id)
            if previous is None or record.received_at > previous:
                last_seen[point_id] = record.received_at
            if kind == "hour":
                hour_records.append(record if type(record) is IngestRecord else record_from_received(record))
    if dialect == "postgresql":
        packets, measurements, count = _copy_lines(records)
    else:
        if dialect == "sqlite":
            packets, measurements = _sqlite_rows(records)
        else:
            packets, measurements = _packet_rows(records), _measurement_rows(records)
        count = len(measurements)
    return PreparedBatch(dialect, packets, measurements, count, last_seen, _measurement_rows(hour_records))


def write_prepared(session: Session, batch: PreparedBatch, actor: Principal = SYSTEM) -> dict[str, int]:
    """Write a prepared batch in the session's transaction; returns counts of what was written."""
    if batch.dialect == "postgresql":
        _copy(session, RawPacket.__tablename__, PACKET_COLUMNS, batch.packets)
        _copy(session, Measurement.__tablename__, MEASUREMENT_COLUMNS, batch.measurements)
    elif batch.dialect == "sqlite":
        connection = session.connection()
        for table, columns, rows in ((RawPacket.__tablename__, PACKET_COLUMNS, batch.packets),
                                     (Measurement.__tablename__, MEASUREMENT_COLUMNS, batch.measurements)):
            if rows:
                connection.exec_driver_sql(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", rows)
    else:
        if batch.packets:
            session.execute(insert(RawPacket), batch.packets)
        if batch.measurements:
            session.execute(insert(Measurement), batch.measurements)
    if batch.last_seen:
        if batch.dialect == "postgresql":
            # one statement for the batch's points instead of one UPDATE each (≈ 14 ms for 500 points)
            session.execute(_TOUCH_POINTS_POSTGRESQL, {"points": list(batch.last_seen),
                                                       "seen": list(batch.last_seen.values())})
        else:
            session.execute(_TOUCH_POINT, [{"point": point, "seen": seen} for point, seen in batch.last_seen.items()])
    alarms = open_alarms(session, _hourly_exceedances(session, batch.hourly), actor)
    return {"packets": len(batch.packets), "measurements": batch.measurement_count, "alarms": len(alarms)}


def write_batch(session: Session, records: Sequence, actor: Principal = SYSTEM) -> dict[str, int]:
    """Write one batch (IngestRecords or ReceivedPackets) in the session's transaction; returns counts."""
    return write_prepared(session, prepare_batch(session.get_bind().dialect.name, records), actor)


def _hourly_exceedances(session: Session, measurements: list[dict]):
    hourly = [row for row in measurements if row["kind"] == "hour"]
    if not hourly:
        return []
    point_ids = {row["point_id"] for row in hourly}
    limits: dict[int, dict[str, LimitValue]] = {}
    for limit in session.scalars(select(PermitLimit).where(PermitLimit.point_id.in_(point_ids))):
        limits.setdefault(limit.point_id, {})[limit.pollutant] = LimitValue(limit.value, limit.unit)
    candidates = []
    for point_id in point_ids:
        if point_id not in limits:
            continue
        values = [
            HourlyValue(row["pollutant"], row["data_time"], row["avg"], row["zs_avg"], row["flag"])
            for row in hourly if row["point_id"] == point_id
        ]
        candidates.extend(exceedances(point_id, values, limits[point_id]))
    return candidates


@dataclass
class SinkStats:
    batches: int = 0
    packets: int = 0
    measurements: int = 0
    alarms: int = 0
    failures: int = 0
    last_error: str | None = None
    batch_seconds: list[float] = field(default_factory=list)


class DbPacketSink:
    """Async, batched: `put`/`put_many` queue records; a background task writes batches of up to `batch_size`
    records, waiting at most `max_delay` seconds to fill one. `close()` drains the queue.

    The queue is bounded (`max_queued` records), so a database slower than the devices makes `put` wait
    (back-pressure on the connection that produced the packet) instead of growing memory without limit. The
    queue holds what the receiver hands over (IngestRecords or its ReceivedPackets), in chunks as handed over;
    they are converted and formatted in a worker thread, off the event loop's path, while the batch before is
    being written.
    """

    def __init__(self, url: str | None = None, *, batch_size: int = 5000, max_delay: float = 0.2,
                 max_queued: int = 20_000):
        self._url = url
        self._engine: Engine | None = None
        self.batch_size = batch_size
        self.max_delay = max_delay
        self.max_queued = max_queued
        self._chunks: deque[list] = deque()
        self._queued = 0          # records in _chunks
        self._writing = 0         # records taken by the writer and not yet written
        self._ready: asyncio.Event | None = None   # set when something is queued
        self._space: asyncio.Event | None = None   # set when the queue is below max_queued
        self._idle: asyncio.Event | None = None    # set when nothing is queued or being written
        self._task: asyncio.Task | None = None
        self.stats = SinkStats()

    async def start(self) -> None:
        self._start()

    def _start(self) -> None:
        if self._task is None:
            self._engine = get_engine(self._url)
            self._ready, self._space, self._idle = asyncio.Event(), asyncio.Event(), asyncio.Event()
            self._space.set()
            self._idle.set()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="ingot-monitoring-sink")

    async def put(self, record) -> None:
        await self.put_many([record])

    async def put_many(self, records: Iterable) -> None:
        await self.wait_for_room()
        self.put_nowait_many(records)

    def put_nowait_many(self, records: Iterable) -> bool:
        """Queue `records` now (the receiver's hand-off, no await per read); whether the queue still has room.
        When it has not, the caller waits for `wait_for_room()` before handing over more."""
        if self._task is None:
            self._start()
        chunk = records if isinstance(records, list) else list(records)
        if chunk:
            self._chunks.append(chunk)
            self._queued += len(chunk)
            self._idle.clear()
            self._ready.set()
        return self._queued < self.max_queued

    async def wait_for_room(self) -> None:
        if self._task is None:
            self._start()
        while self._queued >= self.max_queued:
            self._space.clear()
            await self._space.wait()

    def _take(self) -> list:
        batch: list = []
        while self._chunks and len(batch) < self.batch_size:
            chunk = self._chunks.popleft()
            room = self.batch_size - len(batch)
            if len(chunk) > room:
                self._chunks.appendleft(chunk[room:])
                chunk = chunk[:room]
            batch.extend(chunk)
        self._queued -= len(batch)
        self._writing += len(batch)
        if self._queued < self.max_queued:
            self._space.set()
        if not self._chunks:
            self._ready.clear()
        return batch

    async def _next_batch(self) -> list:
        await self._ready.wait()
        if self._queued < self.batch_size:
            # wait a little for a fuller batch, but never longer than max_delay
            deadline = asyncio.get_running_loop().time() + self.max_delay
            while self._queued < self.batch_size:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                await asyncio.sleep(min(remaining, 0.01))
        return self._take()

    def _prepare(self, batch: list) -> PreparedBatch:
        return prepare_batch(self._engine.dialect.name, batch)

    def _write(self, prepared: PreparedBatch, started: float) -> dict[str, int]:
        session = Session(bind=self._engine, expire_on_commit=False)
        try:
            counts = write_prepared(session, prepared)
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
        self.stats.batch_seconds.append(time.perf_counter() - started)
        return counts

    def _failed(self, size: int, error: Exception) -> None:
        self.stats.failures += 1
        self.stats.last_error = repr(error)
        log.error("monitoring sink: batch of %d records failed", size, exc_info=error)

    def _written(self, size: int) -> None:
        self._writing -= size
        if not self._queued and not self._writing:
            self._idle.set()

    async def _run(self) -> None:
        # Two stages: while the database writes one batch (psycopg and sqlite3 release the GIL while they wait),
        # the next is converted and formatted in another thread. One transaction at a time, in order, so batches
        # never race each other (e.g. two opening the same alarm).
        prepared: asyncio.Queue = asyncio.Queue(maxsize=1)
        writer = asyncio.create_task(self._run_writes(prepared), name="ingot-monitoring-sink-writer")
        try:
            while True:
                batch = await self._next_batch()
                started = time.perf_counter()
                try:
                    ready = await asyncio.to_thread(self._prepare, batch)
                except Exception as error:  # noqa: BLE001 - one bad batch must not stop ingest
                    self._failed(len(batch), error)
                    self._written(len(batch))
                    continue
                await prepared.put((len(batch), ready, started))
        finally:
            writer.cancel()

    async def _run_writes(self, prepared: asyncio.Queue) -> None:
        while True:
            size, ready, started = await prepared.get()
            try:
                counts = await asyncio.to_thread(self._write, ready, started)
            except Exception as error:  # noqa: BLE001 - one bad batch must not stop ingest; it is logged and counted
                self._failed(size, error)
            else:
                self.stats.batches += 1
                self.stats.packets += counts["packets"]
                self.stats.measurements += counts["measurements"]
                self.stats.alarms += counts["alarms"]
            finally:
                self._written(size)

    @property
    def queued(self) -> int:
        return self._queued + self._writing

    async def flush(self) -> None:
        """Wait until every queued record is written."""
        if self._task is not None:
            while self._queued or self._writing:
                await self._idle.wait()

    async def close(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None


# --- retention ------------------------------------------------------------------------------------------------


def apply_retention(session: Session, days: int, *, now: datetime | None = None,
                    actor: Principal = SYSTEM) -> dict[str, int]:
    """Delete measurements whose data time, and raw packets whose receipt time, is older than `days` days."""
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise InvalidInput("保留天数须为不小于 1 的整数", "retention days must be an integer of at least 1",
                           field="days", code="retention_days_invalid")
    cutoff = (now or utcnow()) - timedelta(days=days)
    measurements = session.execute(delete(Measurement).where(Measurement.data_time < cutoff)).rowcount
    packets = session.execute(delete(RawPacket).where(RawPacket.received_at < cutoff)).rowcount
    counts = {"measurements": measurements, "packets": packets}
    record_change(session, actor, "monitoring_retention", cutoff.date().isoformat(), "delete", None,
                  {"days": days, "cutoff": cutoff, **counts})
    return counts


# --- receiver wiring ------------------------------------------------------------------------------------------


@asynccontextmanager
async def ingest_pipeline(url: str | None, host: str, port: int, *, batch_size: int = 5000,
                          max_delay: float = 0.2, reuse_port: bool = False
                          ) -> AsyncIterator[tuple[object, DbPacketSink, int]]:
    """The HJ 212 receiver bound to (host, port) with the DB device directory and the batched DB sink.

    Yields (server, sink, bound port); on exit the server stops and every queued record is written. With
    `reuse_port`, several processes can each run a pipeline on the same port (SO_REUSEPORT).
    """
    directory = DbDeviceDirectory(url)
    await directory.refresh()
    sink = DbPacketSink(url, batch_size=batch_size, max_delay=max_delay)
    await sink.start()
    server, bound_port = await _open_receiver(directory, sink, host, port, reuse_port)
    try:
        yield server, sink, bound_port
    finally:
        await server.stop()
        await sink.close()


async def _open_receiver(directory: DbDeviceDirectory, sink: DbPacketSink, host: str, port: int,
                         reuse_port: bool = False) -> tuple[object, int]:
    """Start the HJ 212 receiver core (ingot.monitoring.receiver) with our directory and sink."""
    try:
        from ingot.monitoring.receiver import ReceiverServer
    except ImportError as missing:
        raise RuntimeError("the HJ 212 receiver (ingot.monitoring.receiver) is not part of this build") from missing
    server = ReceiverServer(directory, sink)
    await server.start(host, port, reuse_port=reuse_port)
    return server, server.port


# --- from the codec's decoded packets -------------------------------------------------------------------------

# HJ 212-2017 table 7 (command codes) → the kind of value a data upload carries.
CN_KIND = {"2011": "rtd", "2051": "minute", "2061": "hour", "2031": "day"}
# 6.6.3 value suffixes → measurement columns.
SUFFIX_FIELD = {"Rtd": "rtd", "Avg": "avg", "Min": "min", "Max": "max", "ZsRtd": "zs_rtd", "ZsAvg": "zs_avg",
                "ZsMin": "zs_min", "ZsMax": "zs_max", "Cou": "cou"}
# HJ 212 value suffix → its place among VALUE_FIELDS, for the COPY lines of received packets.
_SUFFIX_COLUMN = {suffix: _VALUE_INDEX[name] for suffix, name in SUFFIX_FIELD.items()}


def record_from_packet(packet, *, received_at: datetime, text: str, peer: str = "",
                       point_id: int | None = None) -> IngestRecord:
    """An accepted packet (ingot.monitoring.hj212.Packet) as the record the sink stores.

    Only data uploads (2011/2051/2061/2031) carry readings; every other command is archived as text only.
    """
    kind = CN_KIND.get(packet.cn)
    readings: list[Reading] = []
    if kind is not None and packet.data_time is not None:
        field_of = SUFFIX_FIELD
        for entry in packet.pollutants.values():
            values = {field_of[suffix]: value for suffix, value in entry.values.items() if suffix in field_of}
            if values:
                readings.append(Reading(entry.code, values, entry.flag))
    if not readings:
        return IngestRecord(received_at, text, True, peer, packet.mn, point_id)
    return IngestRecord(received_at, text, True, peer, packet.mn, point_id, None, None, kind,
                        packet.data_time.astimezone(timezone.utc), tuple(readings))


def rejected_record(*, received_at: datetime, text: str, reason_code: str, reason: str, peer: str = "",
                    mn: str | None = None, point_id: int | None = None) -> IngestRecord:
    return IngestRecord(received_at=received_at, text=text, accepted=False, peer=peer, mn=mn, point_id=point_id,
                        reason_code=reason_code, reason=reason)


def record_from_received(received) -> IngestRecord:
    """The receiver's ReceivedPacket (ingot.monitoring.receiver) as a sink record; `device` is our point id."""
    if received.accepted and received.packet is not None:
        return record_from_packet(received.packet, received_at=received.received_at, text=received.text,
                                  peer=received.peer, point_id=received.device)
    return rejected_record(received_at=received.received_at, text=received.text, peer=received.peer,
                           reason_code=received.reason_code or "rejected", reason=received.reason or "",
                           mn=received.mn)
