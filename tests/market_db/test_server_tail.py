"""What the serving process does against the latency tail: SQLite's checkpoints run in a thread of their own rather
than inside every hundredth commit (and the commits still reach the database file), and the objects start-up made
are frozen out of the garbage collector's full collections for the app's life."""
from __future__ import annotations

import gc
import time

from sqlalchemy import text

from ingot.core import db
from ingot.core.db import checkpoint_in_background, get_engine


def _autocheckpoint(engine) -> int:
    with engine.connect() as connection:
        return connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()


def test_checkpoints_run_beside_the_commits_and_stop_cleanly(db_url):
    engine = get_engine(db_url)
    checkpointer = checkpoint_in_background(engine, interval=0.05)
    if engine.dialect.name != "sqlite":
        assert checkpointer is None
        return
    try:
        assert checkpoint_in_background(engine) is checkpointer  # one per engine
        # The engine's connections leave checkpoints to the thread...
        assert _autocheckpoint(engine) == 0
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE tail_probe (n INTEGER)"))
        for n in range(50):
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO tail_probe VALUES (:n)"), {"n": n})
        deadline = time.monotonic() + 5
        while checkpointer.checkpoints < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert checkpointer.checkpoints >= 2
        # ...which copies the log back into the database: a checkpoint now finds nothing left to copy.
        with engine.connect() as connection:
            busy, log_frames, copied = connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        assert busy == 0 and log_frames == copied
    finally:
        checkpointer.stop()
    assert not checkpointer.thread.is_alive()
    # Stopped, the connections checkpoint on commit again, and every committed row is there.
    assert _autocheckpoint(engine) == 1000
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM tail_probe")).scalar() == 50
    # dispose_engines stops a running one.
    again = checkpoint_in_background(engine, interval=0.05)
    assert again is not checkpointer
    db.dispose_engines()
    assert again.stopped.is_set() and not again.thread.is_alive()


def test_the_log_starts_over_while_commits_keep_arriving(db_url):
    """With a commit arriving during every checkpoint, PASSIVE checkpoints alone copied the log back but never let it
    start over, so the log file grew by every frame ever written; the RESTART checkpoint lets it be reused."""
    import os
    import threading

    engine = get_engine(db_url)
    if engine.dialect.name != "sqlite":
        return
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE log_probe (n INTEGER, pad BLOB)"))
    checkpointer = checkpoint_in_background(engine, interval=0.005)
    checkpointer.restart_after_frames = 40
    commits, pad = 1500, b"x" * 3000  # each commit writes at least one page (4 KB) to the log
    written = threading.Event()

    def keep_writing() -> None:
        for n in range(commits):
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO log_probe VALUES (:n, :pad)"), {"n": n, "pad": pad})
            time.sleep(0.0002)
        written.set()

    writer = threading.Thread(target=keep_writing)
    writer.start()
    writer.join()
    try:
        assert written.is_set()
        assert checkpointer.restarts >= 1
        log_bytes = os.path.getsize(engine.url.database + "-wal")
        assert log_bytes < commits * 4096 // 4, f"the log holds {log_bytes} bytes after {commits} commits"
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM log_probe")).scalar() == commits
    finally:
        checkpointer.stop()


def test_the_app_freezes_start_up_objects_for_its_life_and_runs_the_checkpointer(db_url):
    from fastapi.testclient import TestClient

    from ingot.api.app import create_app

    assert gc.get_freeze_count() == 0
    with TestClient(create_app()):
        assert gc.get_freeze_count() > 0
        running = dict(db._checkpointers)
        assert bool(running) is db_url.startswith("sqlite")
    assert gc.get_freeze_count() == 0
    assert all(checkpointer.stopped.is_set() for checkpointer in running.values())


def test_a_pooled_connection_is_pinged_only_after_sitting_idle(db_url, monkeypatch):
    """PostgreSQL: no round trip for a connection checked in moments ago; one idle past the threshold is pinged, and
    one the server dropped meanwhile is replaced before anybody uses it."""
    import pytest

    engine = get_engine(db_url)
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite has no server connection to lose")
    pings = []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda connection: pings.append(1) or ping(connection))
    with engine.connect() as connection:
        first = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT pg_backend_pid()").scalar() == first
    assert pings == []
    # Idle long enough (the threshold made short here), and meanwhile dropped by the server.
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.05)
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    killer = create_engine(db.normalise_url(db_url), poolclass=NullPool)
    with killer.connect() as other:
        assert other.exec_driver_sql(f"SELECT pg_terminate_backend({first})").scalar() is True
    killer.dispose()
    time.sleep(0.1)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT 1").scalar() == 1
        assert connection.exec_driver_sql("SELECT pg_backend_pid()").scalar() != first
    assert len(pings) >= 1
