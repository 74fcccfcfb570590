"""UI strings in zh-CN (default) and English, and the label lookups for vocabulary codes."""
from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

import yaml


@lru_cache(maxsize=1)
def messages() -> dict[str, dict[str, str]]:
    return yaml.safe_load((files("ingot.web") / "messages.yaml").read_text(encoding="utf-8"))


def translate(key: str, language: str) -> str:
    entry = messages().get(key)
    if entry is None:
        return key
    return entry["en"] if language == "en" else entry["zh"]


def label(entry: dict | None, language: str, fallback: str = "") -> str:
    """Label of a vocabulary entry ({zh:…, en:…})."""
    if not entry:
        return fallback
    return entry.get("en" if language == "en" else "zh") or fallback
