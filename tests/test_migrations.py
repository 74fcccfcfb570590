"""Migration 0001 builds the whole schema on each backend, matches the models, and makes the audit log append-only."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import DBAPIError

from ingot.core.db import Base, normalise_url
from ingot.core.models_index import load_all_models

REGISTRY_TABLES = {
    "divisions", "parks", "enterprise_groups", "enterprises", "sites", "production_units", "unit_parameters",
    "unit_capacities", "unit_status_events", "unit_declarations", "registry_versions", "users", "audit_log",
}


def test_migrated_schema_has_every_table_and_matches_the_models(db_url):
    engine = create_engine(normalise_url(db_url))
    load_all_models()
    with engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
        assert REGISTRY_TABLES <= tables
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = [
            diff for diff in compare_metadata(context, Base.metadata)
            if diff[0] in ("add_table", "remove_table", "add_column", "remove_column")
            and _table_of(diff) in REGISTRY_TABLES
        ]
    engine.dispose()
    assert differences == []


def _table_of(diff) -> str:
    item = diff[-1] if diff[0].endswith("column") else diff[1]
    return getattr(item, "name", None) if diff[0].endswith("table") else diff[2]


@pytest.mark.parametrize("statement", ["UPDATE audit_log SET action = 'forged'", "DELETE FROM audit_log"])
def test_audit_log_triggers_refuse_rewrites(db_url, statement):
    engine = create_engine(normalise_url(db_url))
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO audit_log (at, actor_id, actor, entity, entity_id, action) "
            "VALUES (CURRENT_TIMESTAMP, 1, 'tester', 'probe', '1', 'create')"
        ))
    with pytest.raises(DBAPIError) as refused:
        with engine.begin() as connection:
            connection.execute(text(statement))
    assert "append-only" in str(refused.value)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT action FROM audit_log")).scalars().all() == ["create"]
    engine.dispose()


def test_audit_log_is_indexed_by_record(db_url):
    """A record's audit history is read by (entity, entity_id); the index keeps that read from growing with the log."""
    engine = create_engine(normalise_url(db_url))
    with engine.connect() as connection:
        indexes = {index["name"]: index["column_names"] for index in inspect(connection).get_indexes("audit_log")}
    engine.dispose()
    assert indexes.get("ix_audit_log_entity_record") == ["entity", "entity_id"]


def test_monitoring_time_indexes_are_block_range_on_postgresql(db_url):
    """Migration 0011: the ingest path's two time indexes are BRIN on PostgreSQL (cheap per inserted row); SQLite,
    which has no BRIN, keeps B-trees on the same columns."""
    engine = create_engine(normalise_url(db_url))
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            methods = dict(connection.execute(text(
                "SELECT c.relname, a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam "
                "WHERE c.relname IN ('ix_monitoring_measurements_data_time', 'ix_monitoring_raw_packets_received', "
                "'ix_monitoring_measurements_series')")).all())
            assert methods == {"ix_monitoring_measurements_data_time": "brin",
                               "ix_monitoring_raw_packets_received": "brin",
                               "ix_monitoring_measurements_series": "btree"}
        else:
            indexed = {index["name"]: index["column_names"]
                       for table in ("monitoring_measurements", "monitoring_raw_packets")
                       for index in inspect(connection).get_indexes(table)}
            assert indexed["ix_monitoring_measurements_data_time"] == ["data_time"]
            assert indexed["ix_monitoring_raw_packets_received"] == ["received_at"]
    engine.dispose()
