"""Monitoring tables: points (an enterprise site's outlet or stack with its HJ 212 device), permit limits,
measurements, the raw packet archive and alarms.

Enterprise and division codes are copied onto points, measurements' alarms and packets' points so that every
scoped query filters one table without joining the registry.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from decimal import ROUND_HALF_UP, Context, InvalidOperation

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from ingot.core.db import Base, JSONData, Quantity, UTCDateTime
from ingot.core.timeutil import utcnow

# SQLite only auto-numbers an INTEGER PRIMARY KEY; PostgreSQL needs 64 bits for years of minute data.
RowId = BigInteger().with_variant(Integer(), "sqlite")

MEASUREMENT_KINDS = ("rtd", "minute", "hour", "day")
ALARM_KINDS = ("exceedance", "missing_data", "flag")
ALARM_STATES = ("open", "acknowledged", "closed")


def Reading() -> Numeric:
    """A measured value; 6 decimals hold every concentration, flow and cumulative value HJ 212 carries."""
    return Numeric(24, 6, asdecimal=True)


_SCALE = Decimal("0.000001")
_SCALE_CONTEXT = Context(prec=40, rounding=ROUND_HALF_UP, traps=[InvalidOperation])


def exact_reading_text(value: Decimal | int | str) -> str:
    """The text a measured value is stored as on SQLite: the decimal rounded to the column's 6 places as
    PostgreSQL's NUMERIC(24, 6) rounds it (half away from zero), so both backends give back the same Decimal.
    Floats are refused: mass and concentration values never pass through binary floating point."""
    if isinstance(value, float):
        raise TypeError("a measured value must be a Decimal (or int or decimal text), never a float")
    number = Decimal(value) if not isinstance(value, Decimal) else value
    rounded = number.quantize(_SCALE, context=_SCALE_CONTEXT)
    if not rounded.is_finite() or rounded.adjusted() >= 18:
        raise ValueError(f"measured value {value!r} does not fit NUMERIC(24, 6)")
    return str(rounded.copy_abs() if rounded.is_zero() else rounded)


class ExactReading(TypeDecorator):
    """A measured value, exact on every backend: NUMERIC(24, 6) on PostgreSQL; on SQLite, which has no decimal
    type (SQLAlchemy's Numeric would store a binary float there), the decimal text in a TEXT column. Values are
    compared and aggregated in Python (ingot.monitoring.service / validity), never by SQL arithmetic."""

    impl = Numeric(24, 6, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Text())
        return dialect.type_descriptor(Numeric(24, 6, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None or dialect.name != "sqlite":
            return value
        return exact_reading_text(value)

    def process_result_value(self, value, dialect):
        if value is None or dialect.name != "sqlite":
            return value
        return Decimal(value)


class MonitoringPoint(Base):
    __tablename__ = "monitoring_points"
    __table_args__ = (UniqueConstraint("site_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    division_code: Mapped[str] = mapped_column(String(6), index=True)
    name: Mapped[str] = mapped_column(String(128))
    mn: Mapped[str] = mapped_column(String(24), unique=True)
    # HJ 212 devices send PW in clear text; a salted SHA-256 lets the receiver compare it on every packet
    # cheaply without the platform ever holding the password itself.
    password_salt: Mapped[str] = mapped_column(String(32))
    password_digest: Mapped[str] = mapped_column(String(64))
    pollutants: Mapped[list] = mapped_column(JSONData, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    last_packet_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PermitLimit(Base):
    __tablename__ = "monitoring_limits"
    __table_args__ = (UniqueConstraint("point_id", "pollutant"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    point_id: Mapped[int] = mapped_column(ForeignKey("monitoring_points.id", ondelete="CASCADE"), index=True)
    pollutant: Mapped[str] = mapped_column(String(16))
    value: Mapped[Decimal] = mapped_column(Quantity())
    unit: Mapped[str] = mapped_column(String(16))
    source_standard: Mapped[str] = mapped_column(String(128))
    clause: Mapped[str] = mapped_column(String(128), default="")
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)


class Measurement(Base):
    __tablename__ = "monitoring_measurements"
    __table_args__ = (
        Index("ix_monitoring_measurements_series", "point_id", "kind", "pollutant", "data_time"),
        # Retention deletes by data time. On PostgreSQL a block-range index: rows arrive nearly in time order, so it
        # serves those range scans at a fraction of a B-tree's cost per inserted row (migration 0011).
        Index("ix_monitoring_measurements_data_time", "data_time", postgresql_using="brin"),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    # No foreign key on purpose: a per-row referential check would halve COPY ingest; the sink only writes rows for
    # points the device directory found, and a point with measurements cannot be deleted (service.delete_point).
    point_id: Mapped[int] = mapped_column(Integer)
    pollutant: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(8))
    data_time: Mapped[datetime] = mapped_column(UTCDateTime())
    rtd: Mapped[Decimal | None] = mapped_column(ExactReading(), nullable=True)
    avg: Mapped[Decimal | None] = mapped_column(ExactReading(), nullable=True)
    min: Mapped[Decimal | None] = mapped_column(ExactReading(), nullable=True)
    max: Mapped[Decimal | None] = mapped_column(ExactReading(), nullable=True)
    zs_rtd: Mapped[Decimal | None] = mapped_column(ExactReading(), nullable=True)
    zs_avg: Mapped[Decimal | None] = mapped_column(ExactReading(), nullable=True)
    zs_min: Mapped[Decimal | None] = mapped_column(ExactReading(), nullable=True)
    zs_max: Mapped[Decimal | None] = mapped_column(ExactReading(), nullable=True)
    cou: Mapped[Decimal | None] = mapped_column(ExactReading(), nullable=True)
    flag: Mapped[str | None] = mapped_column(String(2), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RawPacket(Base):
    __tablename__ = "monitoring_raw_packets"
    __table_args__ = (
        Index("ix_monitoring_raw_packets_point", "point_id", "received_at"),
        Index("ix_monitoring_raw_packets_received", "received_at", postgresql_using="brin"),  # as data_time above
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # No foreign key, as for measurements; delete_point removes a point's packets itself.
    point_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    mn: Mapped[str | None] = mapped_column(String(32), nullable=True)
    peer: Mapped[str] = mapped_column(String(64), default="")
    text: Mapped[str] = mapped_column(Text)
    accepted: Mapped[bool] = mapped_column(Boolean)
    reason_code: Mapped[str | None] = mapped_column(String(48), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(512), nullable=True)


class Alarm(Base):
    __tablename__ = "monitoring_alarms"
    __table_args__ = (Index("ix_monitoring_alarms_scope", "division_code", "state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    point_id: Mapped[int] = mapped_column(ForeignKey("monitoring_points.id", ondelete="CASCADE"), index=True)
    enterprise_id: Mapped[int] = mapped_column(Integer, index=True)
    division_code: Mapped[str] = mapped_column(String(6))
    kind: Mapped[str] = mapped_column(String(16))
    pollutant: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # One alarm per fact: the same hour's exceedance re-sent by a device must not open a second alarm.
    dedup_key: Mapped[str] = mapped_column(String(128), unique=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    data_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    value: Mapped[Decimal | None] = mapped_column(Reading(), nullable=True)
    limit_value: Mapped[Decimal | None] = mapped_column(Reading(), nullable=True)
    unit: Mapped[str | None] = mapped_column(String(16), nullable=True)
    flag: Mapped[str | None] = mapped_column(String(2), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), default="open")
    acknowledged_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")


# The life of a command the platform sends to a device (HJ 212-2017 6.6.2 / 6.6.3, appendix C):
# queued → sent → accepted (9011 QnRtn=1) → executed (9012 ExeRtn=1) or failed (any other ExeRtn);
# sent → refused (9011 with any other QnRtn); timed_out when the device does not answer in time;
# offline when the device is not connected to the receiver when the command's turn comes.
COMMAND_STATES = ("queued", "sent", "accepted", "refused", "executed", "failed", "timed_out", "offline")
FINAL_COMMAND_STATES = frozenset({"refused", "executed", "failed", "timed_out", "offline"})


class PlatformCommand(Base):
    """A request the platform sends to a point's device (time calibration, intervals, history retrieval …),
    queued by a user through the API or CLI and executed by the receiver process, which owns the connections."""

    __tablename__ = "monitoring_commands"
    __table_args__ = (
        # The receiver polls for the oldest queued commands; the point page lists a point's newest.
        Index("ix_monitoring_commands_state", "state", "id"),
        Index("ix_monitoring_commands_point", "point_id", "requested_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    point_id: Mapped[int] = mapped_column(ForeignKey("monitoring_points.id", ondelete="CASCADE"))
    enterprise_id: Mapped[int] = mapped_column(Integer, index=True)
    division_code: Mapped[str] = mapped_column(String(6), index=True)
    mn: Mapped[str] = mapped_column(String(24))
    cn: Mapped[str] = mapped_column(String(4))
    params: Mapped[dict] = mapped_column(JSONData, default=dict)
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_by_id: Mapped[int] = mapped_column(Integer)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16), default="queued")
    qn: Mapped[str | None] = mapped_column(String(20), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    qn_rtn: Mapped[int | None] = mapped_column(Integer, nullable=True)    # 9011 QnRtn, table 7
    exe_rtn: Mapped[int | None] = mapped_column(Integer, nullable=True)   # 9012 ExeRtn, table 6
    # What the device sent back besides the answers, e.g. 1011 SystemTime or the history packets' data times.
    reply: Mapped[dict | None] = mapped_column(JSONData, nullable=True)
    detail: Mapped[str] = mapped_column(String(512), default="")
