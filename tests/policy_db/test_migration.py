"""Migrations 0004_policy and 0009_policy_not_applicable build the compliance tables as the models describe them, and can be undone."""
from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from ingot.core.db import Base, normalise_url
from ingot.core.migrate import alembic_config, upgrade
from ingot.core.models_index import load_all_models

POLICY_TABLES = {"compliance_runs", "compliance_verdicts"}


def _policy_differences(url: str) -> list:
    load_all_models()
    import ingot.policy.models  # noqa: F401 - the index imports it too; explicit so the test never checks nothing

    engine = create_engine(normalise_url(url))
    with engine.connect() as connection:
        assert POLICY_TABLES <= set(inspect(connection).get_table_names())
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = []
        for diff in compare_metadata(context, Base.metadata):
            flat = diff if isinstance(diff, tuple) else diff[0]
            if any(getattr(part, "name", part) in POLICY_TABLES or getattr(getattr(part, "table", None), "name", None) in POLICY_TABLES
                   for part in flat):
                differences.append(diff)
    engine.dispose()
    return differences


def test_policy_tables_match_the_models(db_url):
    assert _policy_differences(db_url) == []


def test_policy_migration_downgrades_and_upgrades_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'roundtrip.db'}"
    upgrade(url)
    # 0009 first: the verdicts lose only the column saying why a rule did not apply
    command.downgrade(alembic_config(url), "0009_policy_not_applicable@-1")
    engine = create_engine(url)
    with engine.connect() as connection:
        columns = {column["name"] for column in inspect(connection).get_columns("compliance_verdicts")}
        assert "excluded" not in columns and "matched" in columns
    engine.dispose()
    command.downgrade(alembic_config(url), "0004_policy@-1")
    engine = create_engine(url)
    with engine.connect() as connection:
        assert not POLICY_TABLES & set(inspect(connection).get_table_names())
    engine.dispose()
    upgrade(url)
    assert _policy_differences(url) == []
