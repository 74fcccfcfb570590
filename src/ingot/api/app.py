"""The FastAPI application: API under /api, server-rendered pages elsewhere, OpenAPI at /docs."""
from __future__ import annotations

import gc
import importlib
from contextlib import asynccontextmanager

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


@asynccontextmanager
async def _lifespan(app: FastAPI):
    """What a serving process does once it is up.

    * Freeze what start-up allocated (routes, models, the catalogue, SQLAlchemy's caches: hundreds of thousands of
      objects that live as long as the process): the garbage collector's full collections stop scanning them. A full
      collection over them paused every request for 70–80 ms a few times a minute, the largest part of the tail.
      Garbage made afterwards is collected as before; shutting down unfreezes.
    * Run SQLite's checkpoints in a thread of their own instead of inside the commit of every hundredth order
      (`core.db.checkpoint_in_background`)."""
    from ingot.core.db import checkpoint_in_background

    checkpointer = checkpoint_in_background()
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        if checkpointer is not None:
            checkpointer.stop()


def create_app() -> FastAPI:
    app = FastAPI(
        lifespan=_lifespan,
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
