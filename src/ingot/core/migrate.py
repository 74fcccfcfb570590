"""Alembic, driven from Python: the only way the schema is made (`ingot db upgrade`)."""
from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config

from ingot.core.config import get_settings
from ingot.core.db import normalise_url


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("ingot") / "migrations"))
    config.set_main_option("sqlalchemy.url", normalise_url(url or get_settings().database_url))
    return config


def upgrade(url: str | None = None, revision: str = "heads") -> None:
    command.upgrade(alembic_config(url), revision)


def revision(message: str, url: str | None = None) -> None:
    """Developer aid: autogenerate a migration against an up-to-date database."""
    command.revision(alembic_config(url), message=message, autogenerate=True)
