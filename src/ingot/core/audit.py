"""The append-only audit log: every write records actor, time, entity, action, before and after.

The application never updates or deletes an entry: the ORM refuses it here, and the database refuses it
through triggers created by the migration.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import Enum

from sqlalchemy import Index, Integer, String, event, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ingot.core.auth import REGULATOR, Principal, division_prefix
from ingot.core.db import Base, JSONData, UTCDateTime
from ingot.core.errors import Forbidden
from ingot.core.timeutil import utcnow


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity_record", "entity", "entity_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor_id: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(64), index=True)
    entity_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    before: Mapped[dict | None] = mapped_column(JSONData, nullable=True)
    after: Mapped[dict | None] = mapped_column(JSONData, nullable=True)
    division_code: Mapped[str | None] = mapped_column(String(6), nullable=True, index=True)
    enterprise_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


def jsonable(value):
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, (Decimal, date, datetime)):
        return str(value) if isinstance(value, Decimal) else value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def record_change(
    session: Session,
    actor: Principal,
    entity: str,
    entity_id,
    action: str,
    before: dict | None,
    after: dict | None,
    *,
    division_code: str | None = None,
    enterprise_id: int | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        at=utcnow(),
        actor_id=actor.user_id,
        actor=actor.username,
        entity=entity,
        entity_id=str(entity_id),
        action=action,
        before=jsonable(before),
        after=jsonable(after),
        division_code=division_code,
        enterprise_id=enterprise_id,
    )
    session.add(entry)
    return entry


# Built once: the order path writes one or more entries per request, and building and keying a statement per call
# cost as much as running it.
_INSERT_ENTRY = insert(AuditEntry.__table__)


def record_change_now(
    session: Session,
    actor: Principal,
    entity: str,
    entity_id,
    action: str,
    before: dict | None,
    after: dict | None,
    *,
    division_code: str | None = None,
    enterprise_id: int | None = None,
) -> None:
    """`record_change`, written at once with one Core insert instead of an ORM object flushed later: for paths that
    write nothing else through the ORM's unit of work. Entries the session still holds unflushed are written first,
    so the log keeps the order in which the changes were recorded. Same row, same transaction, still append-only."""
    if session.new:
        session.flush()
    session.connection().execute(_INSERT_ENTRY, {
        "at": utcnow(), "actor_id": actor.user_id, "actor": actor.username, "entity": entity,
        "entity_id": str(entity_id), "action": action, "before": jsonable(before), "after": jsonable(after),
        "division_code": division_code, "enterprise_id": enterprise_id})


def read_audit_log(
    session: Session,
    principal: Principal,
    *,
    entity: str | None = None,
    entity_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[AuditEntry]:
    if not principal.can_read_audit:
        raise Forbidden("仅监管人员、审计人员可查阅审计日志", "only regulators and auditors may read the audit log")
    query = select(AuditEntry).order_by(AuditEntry.id.desc())
    if principal.role == REGULATOR:
        query = query.where(AuditEntry.division_code.startswith(division_prefix(principal.division_code or "")))
    if entity:
        query = query.where(AuditEntry.entity == entity)
    if entity_id:
        query = query.where(AuditEntry.entity_id == entity_id)
    return list(session.scalars(query.limit(limit).offset(offset)))


@event.listens_for(Session, "before_flush")
def _refuse_audit_rewrites(session: Session, _context, _instances) -> None:
    for instance in list(session.dirty) + list(session.deleted):
        if isinstance(instance, AuditEntry):
            raise PermissionError("the audit log is append-only")
