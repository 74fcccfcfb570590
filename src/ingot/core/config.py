"""Runtime settings, read once from the environment.

Every setting has an `INGOT_` environment variable; defaults give the embedded SQLite set-up.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path


def _default_data_dir() -> Path:
    return Path(os.environ.get("INGOT_DATA_DIR", Path.cwd() / "var"))


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=_default_data_dir)
    database_url: str = ""
    secret_key: str = ""
    token_minutes: int = 480
    default_language: str = "zh-CN"
    # How often `ingot serve` brings the market's session phases in line with the products' timetables; 0 disables.
    market_session_seconds: float = 30.0

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "ingot.db"


def _secret_key(data_dir: Path) -> str:
    """A key from the environment, else one generated once and kept beside the database."""
    configured = os.environ.get("INGOT_SECRET_KEY")
    if configured:
        return configured
    key_file = data_dir / "secret.key"
    if key_file.exists():
        return key_file.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    data_dir = _default_data_dir()
    url = os.environ.get("INGOT_DATABASE_URL") or f"sqlite:///{data_dir / 'ingot.db'}"
    return Settings(
        data_dir=data_dir,
        database_url=url,
        secret_key=_secret_key(data_dir),
        token_minutes=int(os.environ.get("INGOT_TOKEN_MINUTES", "480")),
        market_session_seconds=float(os.environ.get("INGOT_MARKET_SESSION_SECONDS", "30")),
    )
