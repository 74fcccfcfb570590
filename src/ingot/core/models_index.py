"""Imports every context's models so that the metadata (and Alembic) sees all tables."""
from __future__ import annotations

import importlib

MODEL_MODULES = (
    "ingot.core.auth",
    "ingot.core.audit",
    "ingot.registry.models",
    "ingot.policy.models",
    "ingot.monitoring.models",
    "ingot.market.models",
)


def load_all_models() -> None:
    for name in MODEL_MODULES:
        importlib.import_module(name)
