"""Database engine, sessions and the declarative base shared by every context.

SQLite (embedded default) and PostgreSQL run the same models and the same Alembic history.
"""
from __future__ import annotations

import collections
import sqlite3
import threading
import time
import warnings
import weakref
from contextlib import contextmanager
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
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

    _take_turns_to_write(engine)


# How long a writer waits for its process's turn before it asks SQLite for the write lock regardless.
WRITER_TURN_SECONDS = 10.0
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def _take_turns_to_write(engine: Engine) -> None:
    """The engine's writers in this process take turns on a Python lock before they ask for SQLite's write lock.

    SQLite's busy handler polls, sleeping up to 100 ms between tries, while a writer that holds the lock most of the
    time (the HJ 212 sink writing batch after batch in the live demo) takes it again moments after each commit: a web
    request's write (a login's audit entry, an alarm acknowledged) could miss every gap for the whole busy timeout
    and be answered "busy" (the browser tests caught logins answered 503 beside the demo's fleet). A Python lock hands
    over when it is released. A transaction takes its turn at its first write (pysqlite begins the transaction
    there) and gives it back once SQLite has committed or rolled it back (the next writer would only meet SQLite's
    lock before that), or when its connection goes back to the pool. A thread that already has the turn on another
    connection does not wait for it again, and a writer that waited `WRITER_TURN_SECONDS` goes on to SQLite's own
    lock, so nothing waits forever."""
    turn = _turns[engine] = _WriterTurn()

    @event.listens_for(engine, "before_cursor_execute")
    def _take_turn(connection, _cursor, statement, _parameters, _context, _executemany):
        info = connection.info
        if info.get("writer_turn") or not statement.lstrip()[:7].upper().startswith(_WRITES):
            return
        if connection.connection.dbapi_connection.in_transaction or turn.holder == threading.get_ident():
            return
        if turn.acquire(timeout=WRITER_TURN_SECONDS):
            info["writer_turn"] = True

    def _give_back(info) -> None:
        if info.pop("writer_turn", None):
            turn.release()

    def _give_back_after(dbapi_connection) -> None:
        try:
            info = dbapi_connection.info
        except (AttributeError, NotImplementedError):  # the dialect's first connect (no pool entry) never writes
            return
        _give_back(info)

    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    # The dialect's own methods, wrapped on this engine's dialect object: the "commit" and "rollback" events come
    # before SQLite's commit, and a turn given back there would send the next writer to SQLite's busy handler.
    def do_commit(dbapi_connection) -> None:
        try:
            commit(dbapi_connection)
        finally:
            _give_back_after(dbapi_connection)

    def do_rollback(dbapi_connection) -> None:
        try:
            rollback(dbapi_connection)
        finally:
            _give_back_after(dbapi_connection)

    dialect.do_commit, dialect.do_rollback = do_commit, do_rollback

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record):
        if record is not None:
            _give_back(record.info)

    @event.listens_for(engine, "invalidate")
    def _invalidated(_dbapi_connection, record, _exception):
        if record is not None:
            _give_back(record.info)


class _WriterTurn:
    """A first-come, first-served lock: a release hands the turn to the writer that has waited longest.

    A plain lock lets the thread that releases it take it again before a waiter wakes (the waiter also needs the
    interpreter lock back first), so a writer that commits and writes again at once, as the order desk does under
    load, could keep the turn from a login's audit entry until that writer's timeout."""

    __slots__ = ("holder", "_mutex", "_taken", "_waiting", "__weakref__")

    def __init__(self) -> None:
        self.holder: int | None = None
        self._mutex = threading.Lock()
        self._taken = False
        self._waiting: collections.deque[threading.Lock] = collections.deque()

    def acquire(self, timeout: float) -> bool:
        """Take the turn, waiting at most `timeout` seconds; `holder` is then the calling thread."""
        with self._mutex:
            if not self._taken:
                self._taken = True
                self.holder = threading.get_ident()
                return True
            handed = threading.Lock()
            handed.acquire()
            self._waiting.append(handed)
        if not handed.acquire(timeout=timeout):
            with self._mutex:
                if handed in self._waiting:
                    self._waiting.remove(handed)
                    return False
            # handed over between the timeout and the mutex
        self.holder = threading.get_ident()
        return True

    def release(self) -> None:
        with self._mutex:
            self.holder = None
            if self._waiting:
                self._waiting.popleft().release()  # the turn passes straight on: it is never free meanwhile
            else:
                self._taken = False

    def locked(self) -> bool:
        return self._taken


_turns: "weakref.WeakKeyDictionary[Engine, _WriterTurn]" = weakref.WeakKeyDictionary()


def writer_turn_taken(engine: Engine) -> bool:
    """Whether one of the engine's transactions in this process holds the writers' turn (SQLite engines only)."""
    turn = _turns.get(engine)
    return turn is not None and turn.locked()


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
            engine = create_engine(url, pool_size=10, max_overflow=30)
            _ping_when_idle(engine)
        _engines[url] = engine
    return engine


# A pooled connection that has sat unused this long is pinged before it is handed out again.
PING_AFTER_IDLE_SECONDS = 5.0


def _ping_when_idle(engine: Engine) -> None:
    """`pool_pre_ping`, for connections that have been idle: pre-ping sent a round trip to the server on every
    checkout, one more statement on every request. A connection the server dropped (a restart, an idle timeout) went
    away while it sat in the pool, so one checked in moments ago needs no ping; one idle for
    `PING_AFTER_IDLE_SECONDS` is pinged with the dialect's own ping, and if the ping fails the pool discards it and
    hands out a fresh connection (DisconnectionError), as pre-ping did."""

    @event.listens_for(engine, "connect")
    def _connected(_dbapi_connection, record) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record) -> None:
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # noqa: BLE001 - any failure of the ping means the connection is gone
            raise sa_exc.DisconnectionError(f"pooled connection failed its ping: {error}") from error
        if alive is False:
            raise sa_exc.DisconnectionError("pooled connection failed its ping")


def dispose_engines() -> None:
    for checkpointer in list(_checkpointers.values()):
        checkpointer.stop()
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()
    _factories.clear()


class _Checkpointer:
    """Copies an SQLite database's write-ahead log back into the database from a thread of its own.

    SQLite's automatic checkpoint runs inside the commit that takes the log past 1,000 pages, so about one order in
    a hundred waited for it (5–25 ms, its writes and an fsync) while holding the write lock the others queue on:
    that was most of the server's p99. While a checkpointer runs, the engine's connections do not checkpoint on
    commit (`wal_autocheckpoint=0`, set as each is checked out) and this thread runs a PASSIVE checkpoint every
    `interval` seconds on a connection of its own: the same checkpoint SQLite would run (it never blocks readers
    or writers), away from the requests. Durability is unchanged: a commit is in the log before it returns either
    way. When the thread stops, the connections checkpoint on commit again.

    A PASSIVE checkpoint alone never lets the log start over: SQLite rewinds the log only when a writer finds every
    frame copied back, and with commits arriving while the thread copies there is always a newer frame (the log
    grew by 14 MB/s under the market bench, and every read slowed with it). A commit's own checkpoint did not have
    this, since the next writer queued behind it. So once the log holds `restart_after_frames` (SQLite's own
    autocheckpoint size), the thread runs a RESTART checkpoint: it holds writers off while it copies the few frames
    the PASSIVE one left and waits for readers to leave the log, so the next commit writes from the log's start. It
    waits at most `RESTART_WAIT_MS` for that and otherwise tries again next round."""

    RESTART_WAIT_MS = 50

    def __init__(self, engine: Engine, interval: float, restart_after_frames: int = 1000):
        self.path = engine.url.database
        self.interval = interval
        self.restart_after_frames = restart_after_frames
        self.stopped = threading.Event()
        self.checkpoints = 0
        self.restarts = 0
        self._engine = weakref.ref(engine)
        event.listen(engine, "checkout", self._on_checkout)
        self.thread = threading.Thread(target=self._run, name="sqlite-checkpointer", daemon=True)
        self.thread.start()

    def _on_checkout(self, dbapi_connection, record, _proxy) -> None:
        wanted = 1000 if self.stopped.is_set() else 0
        if record.info.get("wal_autocheckpoint") != wanted:
            dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={wanted}")
            record.info["wal_autocheckpoint"] = wanted

    def _run(self) -> None:
        connection = None
        try:
            while not self.stopped.wait(self.interval):
                try:
                    if connection is None:
                        # mode=rw: a database that is gone is not created again here.
                        uri = f"{Path(self.path).resolve().as_uri()}?mode=rw"
                        connection = sqlite3.connect(uri, uri=True, timeout=self.RESTART_WAIT_MS / 1000)
                    _busy, log_frames, _copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.checkpoints += 1
                    if log_frames >= self.restart_after_frames:
                        self._restart(connection)
                except sqlite3.Error:
                    # The next commit past 1,000 pages would have checkpointed; the next round tries again.
                    if connection is not None:
                        connection.close()
                    connection = None
        finally:
            if connection is not None:
                connection.close()

    def _restart(self, connection: sqlite3.Connection) -> None:
        """The RESTART checkpoint, holding the engine's writers' turn meanwhile: the process's writers then wait on
        the turn, which hands over the moment the checkpoint ends, rather than in SQLite's busy handler, which
        sleeps up to 100 ms between tries (the market API's slowest answers were writers polling there)."""
        engine = self._engine()
        turn = _turns.get(engine) if engine is not None else None
        if turn is not None:
            if not turn.acquire(timeout=self.RESTART_WAIT_MS / 1000):
                return  # the writers are busy: the next round tries again
        try:
            busy, _log, _copied = connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
            self.restarts += not busy
        finally:
            if turn is not None:
                turn.release()

    def stop(self) -> None:
        """Stop the thread; the engine's connections checkpoint on commit again from their next checkout."""
        self.stopped.set()
        self.thread.join()
        engine = self._engine()
        if engine is not None:
            with _checkpointers_lock:
                if _checkpointers.get(engine) is self:
                    del _checkpointers[engine]


_checkpointers: dict[Engine, _Checkpointer] = {}


def checkpoint_in_background(engine: Engine | None = None, interval: float = 0.2) -> _Checkpointer | None:
    """Run the SQLite engine's checkpoints in a thread of their own (see `_Checkpointer`); one per engine, None for
    other databases and in-memory ones. The server starts it for its engine; `stop()` (or `dispose_engines`) ends
    it."""
    engine = engine or get_engine()
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return None
    with _checkpointers_lock:
        checkpointer = _checkpointers.get(engine)
        if checkpointer is None or checkpointer.stopped.is_set():
            checkpointer = _checkpointers[engine] = _Checkpointer(engine, interval)
        return checkpointer


_checkpointers_lock = threading.Lock()


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
