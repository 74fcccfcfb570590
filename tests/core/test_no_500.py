"""No input, however malformed, produces a 500: every API route is called with hostile path values and bodies."""
from __future__ import annotations

import re

import pytest

from ingot.core import auth
from ingot.core.auth import ADMIN
from tests.conftest import login

HOSTILE_PATH_VALUES = ("99999999999999999999", "-1", "0", "abc", "%00", "1.5")
HOSTILE_BODIES = ({}, [], {"amount_fen": 10**30, "net_grams": 10**30, "lots": 10**30, "price_fen": -(10**30)}, "not json")


def _api_routes(app):
    """(method, path) of every documented API operation, read from the OpenAPI schema the app publishes."""
    for path, operations in app.openapi()["paths"].items():
        # The event stream never ends by design; its own tests cover it.
        if path.startswith("/api") and path not in ("/api/auth/token", "/api/market/stream"):
            for method in operations:
                if method.upper() in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                    yield method.upper(), path


def _fill(path: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", value, path)


@pytest.fixture
def admin_headers(client, session):
    # With the trading centre's demo loaded, hostile numbers reach real warehouses, products and accounts.
    from ingot.market import gateway
    from ingot.market.demo import load_market_demo

    gateway.forget_cores()
    load_market_demo(session)
    auth.create_user(session, username="root-admin", password="long-enough-password", role=ADMIN)
    session.commit()
    return login(client, "root-admin", "long-enough-password")


def _attempts(client, method: str, url: str, headers: dict):
    if method in ("GET", "DELETE"):
        yield client.request(method, url, headers=headers)
        return
    for body in HOSTILE_BODIES:
        if isinstance(body, str):
            yield client.request(method, url, headers={**headers, "content-type": "application/json"}, content=body)
        else:
            yield client.request(method, url, headers=headers, json=body)


def test_hostile_path_values_and_bodies_never_give_500(client, admin_headers):
    failures = []
    routes = list(_api_routes(client.app))
    assert len(routes) > 50, "the API routers are not all mounted"
    for method, path in routes:
        for value in HOSTILE_PATH_VALUES if "{" in path else ("",):
            url = _fill(path, value)
            for response in _attempts(client, method, url, admin_headers):
                if response.status_code >= 500:
                    failures.append(f"{method} {url} → {response.status_code} {response.text[:200]}")
    assert not failures, "\n".join(failures)


def test_an_anonymous_caller_gets_401_everywhere(client):
    for method, path in _api_routes(client.app):
        response = client.request(method, _fill(path, "1"))
        assert response.status_code in (401, 422), f"{method} {path} → {response.status_code}: an anonymous caller must be refused"


def test_overload_is_a_retryable_503_not_a_500():
    import sqlite3

    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from ingot.api.errors import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/locked")
    def locked():
        raise OperationalError("UPDATE market_engine_head", {}, sqlite3.OperationalError("database is locked"))

    @app.get("/pool")
    def pool():
        raise PoolTimeout("QueuePool limit of size 10 overflow 30 reached")

    @app.get("/other")
    def other():
        raise OperationalError("SELECT 1", {}, sqlite3.OperationalError("disk I/O error"))

    client = TestClient(app, raise_server_exceptions=False)
    for path in ("/locked", "/pool"):
        response = client.get(path)
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert response.json()["detail"][0]["code"] == "busy"
    assert client.get("/other").status_code == 500
