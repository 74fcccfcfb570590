"""The FastAPI application: API under /api, server-rendered pages elsewhere, OpenAPI at /docs."""
from __future__ import annotations

import importlib

from fastapi import FastAPI

from ingot import __version__
from ingot.api.errors import install_error_handlers

# Each context exposes `router` in its api module; the web shell exposes its pages the same way.
ROUTER_MODULES = (
    "ingot.api.auth_routes",
    "ingot.registry.api",
    "ingot.registry.pages",
    "ingot.policy.api",
    "ingot.policy.pages",
    "ingot.monitoring.api",
    "ingot.monitoring.pages",
    "ingot.market.api",
    "ingot.market.pages",
    "ingot.web.pages",
)


def create_app() -> FastAPI:
    app = FastAPI(
        title="Ingot",
        version=__version__,
        description="有色及战略金属产业政策平台 · policy platform for strategic and non-ferrous metals",
        docs_url="/docs",
    )
    # A broken catalogue must stop the platform at start-up, not surface on the first policy request.
    from ingot.policy.runs import catalogue

    catalogue()
    install_error_handlers(app)
    for module in map(importlib.import_module, ROUTER_MODULES):
        app.include_router(module.router)
        mount = getattr(module, "mount", None)
        if mount is not None:
            mount(app)
    return app
