"""The order path written with Core statements: an order that only rests and a cancel that only cancels write the
rows and audit entries the ORM path wrote (the order, the receipts' liens, the entries in the order they happen);
ORM copies the session already holds are refreshed, not left stale; a command that trades still settles through
the ORM path; a verified token is remembered only until it expires and only under the key that signed it; the
order endpoints check the token before anything else and answer only after the commit."""
from __future__ import annotations

import time
from datetime import timedelta

import jwt
import pytest
from sqlalchemy import select

from ingot.core import auth
from ingot.core.audit import AuditEntry
from ingot.core.config import get_settings
from ingot.core.db import unit_of_work
from ingot.core.errors import NotAuthenticated
from ingot.market import ledger, trading
from ingot.market.models import Order, Receipt, Trade
from tests.conftest import login
from tests.market_db.helpers import NOW, OPERATOR_PASSWORD, PASSWORD, open_market


@pytest.fixture
def market(db_url):
    return open_market(db_url)


def _receipt_numbers(session) -> list[str]:
    return list(session.scalars(select(Receipt.number).order_by(Receipt.id)))


def _entries(session, entity: str, entity_id) -> list[AuditEntry]:
    return list(session.scalars(select(AuditEntry).where(AuditEntry.entity == entity,
                                                         AuditEntry.entity_id == str(entity_id))
                                .order_by(AuditEntry.id)))


def test_a_resting_sell_and_its_cancel_write_what_the_orm_path_wrote(db_url, market):
    with unit_of_work(db_url) as session:
        number = _receipt_numbers(session)[0]
        view = trading.submit_order(session, market.seller, account="M001", product="IN99995", side="S", lots=10,
                                    price_fen=160_000, key="s1", receipts=[number], now=NOW)
    with unit_of_work(db_url) as session:
        order = session.get(Order, view["order_id"])
        assert view == trading.order_view(session, order)
        assert (order.status, order.open_lots, order.filled_lots, order.receipt_numbers) == ("resting", 10, 0, [number])
        assert order.created_at == order.updated_at == NOW
        receipt = session.scalar(select(Receipt).where(Receipt.number == number))
        assert (receipt.status, receipt.lien_kind, receipt.lien_ref) == ("encumbered", "order", str(order.id))
        assert receipt.updated_at == NOW
        [placed] = _entries(session, "market_order", order.id)
        assert (placed.action, placed.before, placed.after, placed.division_code) == ("place", None, view, "530100")
        lien = _entries(session, "market_receipt", receipt.id)[-1]
        assert lien.action == "lien" and lien.id < placed.id
        assert lien.before == {"status": "registered", "lien_kind": None, "lien_ref": None}
        assert lien.after == {"status": "encumbered", "lien_kind": "order", "lien_ref": str(order.id)}
        assert (lien.actor_id, lien.actor) == (market.seller.user_id, "seller")

    with unit_of_work(db_url) as session:
        cancelled = trading.submit_cancel(session, market.seller, view["order_id"], key="c1", now=NOW + timedelta(seconds=1))
    with unit_of_work(db_url) as session:
        order = session.get(Order, view["order_id"])
        assert cancelled == trading.order_view(session, order)
        assert (order.status, order.open_lots, order.cancel_reason) == ("cancelled", 0, cancelled["cancel_reason"])
        receipt = session.scalar(select(Receipt).where(Receipt.number == number))
        assert (receipt.status, receipt.lien_kind, receipt.lien_ref) == ("registered", None, None)
        release, = [e for e in _entries(session, "market_receipt", receipt.id) if e.action == "lien"][1:]
        cancel, = [e for e in _entries(session, "market_order", order.id) if e.action == "cancel"]
        assert release.id < cancel.id
        assert (cancel.before, cancel.after) == (view, cancelled)
        # The books are whole after both, and the same key again answers the first result.
        ledger.check_invariants(session)
    with unit_of_work(db_url) as session:
        again = trading.submit_cancel(session, market.seller, view["order_id"], key="c1", now=NOW + timedelta(seconds=2))
        assert again == cancelled
        # A resubmitted order answers the order as it is now (cancelled), not a second order.
        assert trading.submit_order(session, market.seller, account="M001", product="IN99995", side="S", lots=10,
                                    price_fen=160_000, key="s1", receipts=[number], now=NOW) == cancelled


def test_orm_copies_the_session_holds_see_what_the_core_statements_wrote(db_url, market):
    with unit_of_work(db_url) as session:
        number = _receipt_numbers(session)[0]
        receipt = session.scalar(select(Receipt).where(Receipt.number == number))
        assert receipt.status == "registered"
        order = trading.place_order(session, market.seller, account="M001", product="IN99995", side="S", lots=10,
                                    price_fen=160_000, key="s1", receipts=[number], now=NOW)
        assert order.status == "resting"
        assert (receipt.status, receipt.lien_ref) == ("encumbered", str(order.id))
        returned = trading.cancel_order(session, market.seller, order.id, key="c1", now=NOW)
        assert returned is order
        assert (order.status, order.open_lots) == ("cancelled", 0)
        assert (receipt.status, receipt.lien_kind) == ("registered", None)


def test_an_order_that_trades_still_settles_through_the_ledger(db_url, market):
    with unit_of_work(db_url) as session:
        number = _receipt_numbers(session)[0]
        sell = trading.submit_order(session, market.seller, account="M001", product="IN99995", side="S", lots=10,
                                    price_fen=150_000, key="s1", receipts=[number], now=NOW)
    with unit_of_work(db_url) as session:
        buy = trading.submit_order(session, market.client_a, account="M002/C01", product="IN99995", side="B", lots=4,
                                   price_fen=150_000, key="b1", now=NOW)
    assert (buy["status"], buy["filled_lots"], buy["open_lots"]) == ("filled", 4, 0)
    with unit_of_work(db_url) as session:
        trade = session.scalar(select(Trade))
        assert (trade.buy_order_id, trade.sell_order_id, trade.lots) == (buy["order_id"], sell["order_id"], 4)
        assert session.get(Order, sell["order_id"]).open_lots == 6
        # The remainder of the split receipt is now the sell order's lien.
        [remainder] = session.get(Order, sell["order_id"]).receipt_numbers
        assert session.scalar(select(Receipt.lien_ref).where(Receipt.number == remainder)) == str(sell["order_id"])
        ledger.check_invariants(session)


def _token(user_id: int, expires_in: float, secret: str | None = None) -> str:
    return jwt.encode({"sub": str(user_id), "exp": int(time.time() + expires_in)},
                      secret or get_settings().secret_key, algorithm="HS256")


def test_a_remembered_token_is_refused_once_it_expires(monkeypatch):
    token = _token(7, 2)
    assert auth.token_user_id(token) == 7
    assert auth.token_user_id(token) == 7  # now from what was remembered
    later = time.time() + 3
    monkeypatch.setattr(auth.time, "time", lambda: later)
    with pytest.raises(NotAuthenticated):
        auth.token_user_id(token)


def test_a_token_is_remembered_only_under_the_key_that_signed_it(monkeypatch):
    token = _token(8, 600)
    assert auth.token_user_id(token) == 8
    # The signing key changes (a new secret): the same token no longer passes.
    monkeypatch.setattr(auth, "get_settings", lambda: type("S", (), {"secret_key": "another-key-" + "x" * 40})())
    with pytest.raises(NotAuthenticated):
        auth.token_user_id(token)
    with pytest.raises(NotAuthenticated):
        auth.token_user_id(_token(8, 600, secret="a-third-key-" + "y" * 40))


def test_what_is_remembered_stays_bounded(monkeypatch):
    monkeypatch.setattr(auth, "_VERIFIED_MAX", 3)
    auth._VERIFIED.clear()
    for user_id in range(10):
        assert auth.token_user_id(_token(user_id, 600)) == user_id
        assert len(auth._VERIFIED) <= 3


def test_the_order_endpoints_check_the_token_first_and_the_key_after(db_url, market, client):
    body = {"account": "M002/C01", "product": "IN99995", "side": "B", "lots": 1, "price_fen": 140_000}
    assert client.post("/api/market/orders", json={**body, "key": "k"}).status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert client.post("/api/market/orders", json={**body, "key": "k"}, headers=bad).status_code == 401
    assert client.post("/api/market/orders/1/cancel", json={"key": "k"}, headers=bad).status_code == 401
    headers = login(client, "client_a", PASSWORD)
    missing = client.post("/api/market/orders", json=body, headers=headers)
    assert missing.status_code == 422 and missing.json()["detail"][0]["code"] == "missing_key"
    taken = client.post("/api/market/orders", json={**body, "key": "k"}, headers=headers)
    assert taken.status_code == 201 and taken.json()["status"] == "resting"
    # Another member's staff cannot cancel it: the order is not theirs, and they are told it does not exist.
    other = login(client, "seller", PASSWORD)
    assert client.post(f"/api/market/orders/{taken.json()['order_id']}/cancel", json={"key": "x"},
                       headers=other).status_code == 404
    done = client.post(f"/api/market/orders/{taken.json()['order_id']}/cancel", json={"key": "c"}, headers=headers)
    assert done.status_code == 200 and done.json()["status"] == "cancelled"
    # An operator may not trade.
    operator = login(client, "operator", OPERATOR_PASSWORD)
    assert client.post("/api/market/orders", json={**body, "key": "op"}, headers=operator).status_code == 403


def _without_lanes(app):
    from ingot.market.api import _LaneRoute

    app.router.routes[:] = [route for route in app.router.routes if not isinstance(route, _LaneRoute)]
    return app


def test_the_order_lanes_answer_what_the_documented_routes_answer(db_url, market, client, monkeypatch):
    """A request the lane declines reaches the FastAPI route with its body; a well-formed one is served by the lane;
    either way the answer is the one the documented route gives."""
    from fastapi.testclient import TestClient

    from ingot.api.app import create_app
    from ingot.market import api

    declined = []
    decline = api._OrderLane._decline

    async def counting(self, scope, receive, send, body):
        declined.append(scope["path"])
        await decline(self, scope, receive, send, body)

    monkeypatch.setattr(api._OrderLane, "_decline", counting)
    headers = login(client, "client_a", PASSWORD)
    body = {"account": "M002/C01", "product": "IN99995", "side": "B", "lots": 1, "price_fen": 140_000}
    placed = client.post("/api/market/orders", json={**body, "key": "lane-1"}, headers=headers)
    assert placed.status_code == 201 and declined == []
    order_id = placed.json()["order_id"]
    malformed = [
        ("/api/market/orders", b'{"account": "M002/C01", ', "application/json"),
        ("/api/market/orders", b'{"account": "M002/C01", "product": "IN99995"}', "application/json"),
        ("/api/market/orders", b'{"account": "M002/C01", "product": "IN99995", "side": "B", "lots": 1, '
                               b'"price_fen": 140000, "key": "x", "colour": "red"}', "application/json"),
        ("/api/market/orders", b'{"account": "M002/C01", "product": "IN99995", "side": "X", "lots": 1.5, '
                               b'"price_fen": "cheap", "key": "x"}', "application/json"),
        ("/api/market/orders", b"account=M002/C01", "application/x-www-form-urlencoded"),
        ("/api/market/orders", b"", "application/json"),
        ("/api/market/orders/0/cancel", b'{"key": "c"}', "application/json"),
        (f"/api/market/orders/{2**63}/cancel", b'{"key": "c"}', "application/json"),
        (f"/api/market/orders/{order_id}/cancel", b'{"key": 5}', "application/json"),
        (f"/api/market/orders/{order_id}/cancel", b"", "application/json"),
    ]
    with TestClient(_without_lanes(create_app())) as documented:
        for path, content, content_type in malformed:
            sent = {"content": content, "headers": {**headers, "Content-Type": content_type}}
            through_lane = client.post(path, **sent)
            direct = documented.post(path, **sent)
            assert (through_lane.status_code, through_lane.json()) == (direct.status_code, direct.json()), path
            assert through_lane.status_code == 422, (path, through_lane.text)
            # The same request without a token: whatever the route answers (a body that is not JSON is refused before
            # the token is looked at), the lane answers too.
            anonymous = {"content": content, "headers": {"Content-Type": content_type}}
            lane_answer, route_answer = client.post(path, **anonymous), documented.post(path, **anonymous)
            assert (lane_answer.status_code, lane_answer.json()) == (route_answer.status_code, route_answer.json())
    assert len(declined) == 2 * len(malformed)
    # Well-formed but refused: answered by the lane, through the same error handlers.
    declined.clear()
    refused = client.post("/api/market/orders", json={**body, "key": "lane-2", "lots": 10**5}, headers=headers)
    assert refused.status_code == 422 and refused.json()["detail"][0]["code"] == "quantity_above_maximum"
    assert client.post("/api/market/orders", json={**body, "key": "lane-3"}).status_code == 401
    # The Idempotency-Key header serves as the key, on the lane as on the route.
    keyed = client.post("/api/market/orders", json=body, headers={**headers, "Idempotency-Key": "lane-4"})
    assert keyed.status_code == 201 and keyed.json()["key"] == "lane-4"
    cancelled = client.post(f"/api/market/orders/{order_id}/cancel", json={}, headers={**headers, "Idempotency-Key": "c4"})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert declined == []
