"""Finds the bounded contexts' optional modules (models, routers, CLI apps) that are present in this build."""
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Iterator


def present_modules(names) -> Iterator[tuple[str, ModuleType]]:
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            yield name, importlib.import_module(name)
