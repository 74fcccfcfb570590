"""Migration 0005 turns SQLite's float readings into exact decimal text, and leaves PostgreSQL's NUMERIC alone."""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import create_engine, text

from ingot.core.db import dispose_engines, session_factory
from ingot.core.migrate import upgrade


def test_sqlite_floats_become_exact_decimal_text(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0002_monitoring")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO monitoring_measurements (point_id, pollutant, kind, data_time, cou, avg, min, received_at) "
            "VALUES (1, 'a21026', 'day', '2026-11-01 00:00:00.000000', 123456.789, 80.12, -0.0, "
            "'2026-11-01 00:00:03.000000')"))
    engine.dispose()
    upgrade(url)
    engine = create_engine(url)
    with engine.connect() as connection:
        row = connection.execute(text("SELECT cou, typeof(cou), avg, min, max FROM monitoring_measurements")).one()
    engine.dispose()
    assert tuple(row) == ("123456.789000", "text", "80.120000", "0.000000", None)
    from ingot.monitoring.models import Measurement

    with session_factory(url)() as session:
        stored = session.query(Measurement).one()
        assert (stored.cou, stored.avg) == (Decimal("123456.789000"), Decimal("80.12"))
    dispose_engines()
