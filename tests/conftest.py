"""Shared fixtures: every database test runs on SQLite, and on PostgreSQL too when INGOT_TEST_DATABASE_URL is set.

SQLite: the schema is migrated once into a template file and copied for each test.
PostgreSQL: migrated once per session into a dedicated schema-free database, then truncated before each test.
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ingot.core import config
from ingot.core.db import dispose_engines, normalise_url
from ingot.core.migrate import upgrade

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
PG_URL = os.environ.get("INGOT_TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "ingot.db"
    upgrade(f"sqlite:///{path}")
    dispose_engines()
    return path


@pytest.fixture(scope="session")
def postgres_migrated() -> str:
    url = normalise_url(PG_URL)
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at INGOT_TEST_DATABASE_URL is unreachable under CI: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    upgrade(url)
    dispose_engines()
    return url


def _truncate_all(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        tables = [name for name in inspect(connection).get_table_names() if name != "alembic_version"]
        if tables:
            connection.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path, monkeypatch) -> str:
    """A migrated, empty database; the application's settings point at it for the test's duration."""
    if request.param == "sqlite":
        path = tmp_path / "ingot.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("postgres_migrated")
        _truncate_all(url)
    monkeypatch.setenv("INGOT_DATABASE_URL", url)
    monkeypatch.setenv("INGOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INGOT_SECRET_KEY", "test-secret-key-that-is-long-enough-for-hs256")
    config.get_settings.cache_clear()
    yield url
    dispose_engines()
    config.get_settings.cache_clear()


@pytest.fixture
def session(db_url):
    from ingot.core.db import session_factory

    session = session_factory(db_url)()
    yield session
    session.rollback()
    session.close()


@pytest.fixture
def client(db_url):
    from fastapi.testclient import TestClient

    from ingot.api.app import create_app

    with TestClient(create_app()) as test_client:
        yield test_client


def login(client, username: str, password: str) -> dict[str, str]:
    response = client.post("/api/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def live_demo(tmp_path_factory):
    """`ingot demo` as `make demo` runs it — demo region loaded, HJ 212 receiver and simulated fleet live, web UI and
    API served — on free ports of a scratch SQLite database; yields the base URL. The one difference: the market's
    session scheduler is off, so a trading test does not depend on the hour (the demo opens its market when it loads,
    and the scheduler would close it at the next boundary of the declared timetable, e.g. 11:30 Beijing time)."""
    import subprocess
    import sys
    import time
    import urllib.request

    data_dir = tmp_path_factory.mktemp("live-demo")
    env = {
        **os.environ,
        "INGOT_DATA_DIR": str(data_dir),
        "INGOT_DATABASE_URL": f"sqlite:///{data_dir / 'ingot.db'}",
        "INGOT_SECRET_KEY": "browser-test-secret-key-long-enough-for-hs256",
    }
    env.pop("INGOT_TEST_DATABASE_URL", None)
    port, monitor_port = free_port(), free_port()
    log = open(data_dir / "demo.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "ingot.cli", "demo", "--port", str(port), "--monitor-port", str(monitor_port),
         "--no-market-sessions"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            urllib.request.urlopen(base + "/login", timeout=2).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError("`ingot demo` did not serve: " + (data_dir / "demo.log").read_text(errors="replace")[-3000:])
            time.sleep(0.5)
    yield base
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


@contextmanager
def commits_refused():
    """Every commit refuses as a locked database would, while the block runs."""
    refused = []

    def refuse(session):
        refused.append(session)
        raise OperationalError("COMMIT", {}, Exception("database is locked"))

    event.listen(Session, "before_commit", refuse)
    try:
        yield refused
    finally:
        event.remove(Session, "before_commit", refuse)
