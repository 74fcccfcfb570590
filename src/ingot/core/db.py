"""Database engine, sessions and the declarative base shared by every context.

SQLite (embedded default) and PostgreSQL run the same models and the same Alembic history.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from datetime import datetime, timezone
from decimal import Decimal
from typing import Iterator

from sqlalchemy import JSON, DateTime, MetaData, Numeric, create_engine, event, exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from ingot.core.config import get_settings

# SQLite has no decimal type; values come back rounded to the column's scale, which is exact for our ranges.
warnings.filterwarnings("ignore", category=sa_exc.SAWarning, message=".*does \\*not\\* support Decimal.*")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator):
    """Timezone-aware datetimes stored as UTC on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def Quantity() -> Numeric:
    """Exact decimal for capacities, parameters and declared measures (unit kept in a sibling column)."""
    return Numeric(24, 6, asdecimal=True)


JSONData = JSON

_engines: dict[str, Engine] = {}


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


def normalise_url(url: str) -> str:
    """Accept plain postgresql:// URLs and drive them with psycopg 3."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def get_engine(url: str | None = None) -> Engine:
    url = normalise_url(url or get_settings().database_url)
    engine = _engines.get(url)
    if engine is None:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                from pathlib import Path

                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # As many connections as the server runs request handlers (anyio's 40 worker threads), so a burst waits
            # for SQLite's write lock rather than for a pooled connection.
            engine = create_engine(url, connect_args={"check_same_thread": False}, pool_size=10, max_overflow=30)
            _configure_sqlite(engine)
        else:
            engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=30)
        _engines[url] = engine
    return engine


def dispose_engines() -> None:
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()
    _factories.clear()


# One sessionmaker per engine: each sessionmaker makes a Session subclass of its own, and the first session of a new
# class builds that class's event dispatch (every event name, the audit log's listeners propagated to it), which
# cost a third of a millisecond on every request when each request made its own.
_factories: dict[Engine, sessionmaker[Session]] = {}


def session_factory(url: str | None = None) -> sessionmaker[Session]:
    engine = get_engine(url)
    factory = _factories.get(engine)
    if factory is None:
        factory = _factories[engine] = sessionmaker(bind=engine, expire_on_commit=False)
    return factory


@contextmanager
def unit_of_work(url: str | None = None) -> Iterator[Session]:
    """One transaction: commits when the block ends normally, rolls back on any exception."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def to_decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, float):
        raise TypeError("floats are not accepted for exact quantities")
    return Decimal(str(value))
