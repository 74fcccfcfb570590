"""The order path under load: writers take turns in the process before the database's lock and let go when their
transaction ends, concurrent orders are all journaled in sequence, an order is acknowledged only after its commit,
and the ledger check after a settlement batch still catches broken books."""
from __future__ import annotations

import sqlite3
import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ingot.core.db import unit_of_work, writer_turn_taken
from ingot.market import gateway, ledger, trading
from ingot.market.accounts import get_account
from ingot.market.common import MarketRejected
from ingot.market.models import EngineCommand, Order, Trade
from tests.conftest import login
from tests.market_db.helpers import NOW, PASSWORD, open_market


@pytest.fixture
def market(db_url):
    return open_market(db_url)


def _buy(session, principal, account, key, price=140_000, lots=1):
    return trading.place_order(session, principal, account=account, product="IN99995", side="B", lots=lots,
                               price_fen=price, key=key, now=NOW)


def test_the_writers_turn_is_held_until_the_transaction_ends(db_url, market):
    with unit_of_work(db_url) as session:
        engine = session.get_bind()
        sqlite = engine.dialect.name == "sqlite"
        _buy(session, market.client_a, "M002/C01", "w1")
        assert writer_turn_taken(engine) is sqlite
    assert not writer_turn_taken(engine)

    # A refused order rolls its transaction back, and the turn goes with it.
    session = Session(bind=engine)
    try:
        with pytest.raises(MarketRejected):
            _buy(session, market.client_a, "M002/C01", "w2", lots=10**5)
        session.rollback()
        assert not writer_turn_taken(engine)
        # The next transaction of the same session takes it again, and holds it until SQLite has committed.
        _buy(session, market.client_a, "M002/C01", "w3")
        assert writer_turn_taken(engine) is sqlite
        seen_during_commit = []
        commit = engine.dialect.do_commit
        engine.dialect.do_commit = lambda connection: (seen_during_commit.append(writer_turn_taken(engine)),
                                                       commit(connection))
        try:
            session.commit()
        finally:
            engine.dialect.do_commit = commit
        assert seen_during_commit == [sqlite]
        assert not writer_turn_taken(engine)
    finally:
        session.close()


def test_concurrent_orders_are_all_journaled_in_sequence(db_url, market):
    traders = ((market.client_a, "M002/C01"), (market.client_b, "M002/C02"), (market.seller, "M001"))
    failures: list[BaseException] = []

    def place(thread: int) -> None:
        principal, account = traders[thread % 3]
        try:
            for index in range(3):
                with unit_of_work(db_url) as session:
                    _buy(session, principal, account, f"t{thread}-{index}", price=140_000 + 100 * index)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=place, args=(number,)) for number in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with unit_of_work(db_url) as session:
        keys = set(session.scalars(select(Order.idempotency_key)))
        assert {f"t{t}-{i}" for t in range(6) for i in range(3)} <= keys
        sequences = list(session.scalars(select(EngineCommand.sequence).order_by(EngineCommand.sequence)))
        assert sequences == list(range(1, len(sequences) + 1))
        assert gateway.read_core(session, lambda core: core.sequence) == sequences[-1]
        ledger.check_invariants(session)


def test_an_order_is_acknowledged_only_after_its_commit(db_url, market, client, monkeypatch):
    headers = login(client, "client_a", PASSWORD)
    order = {"account": "M002/C01", "product": "IN99995", "side": "B", "lots": 1, "price_fen": 140_000}

    def locked(self):
        raise OperationalError("COMMIT", {}, sqlite3.OperationalError("database is locked"))

    with monkeypatch.context() as patch:
        patch.setattr(Session, "commit", locked)
        refused = client.post("/api/market/orders", headers=headers, json={**order, "key": "ack-1"})
    # The commit failed, so the client is told to retry, never that the order was taken.
    assert refused.status_code == 503, refused.text
    with unit_of_work(db_url) as session:
        assert session.scalar(select(func.count(Order.id))) == 0

    taken = client.post("/api/market/orders", headers=headers, json={**order, "key": "ack-1"})
    assert taken.status_code == 201, taken.text
    again = client.post("/api/market/orders", headers=headers, json={**order, "key": "ack-1"})
    assert again.json()["order_id"] == taken.json()["order_id"]
    with unit_of_work(db_url) as session:
        assert session.scalar(select(func.count(Order.id))) == 1


def test_the_check_after_a_settlement_batch_catches_broken_books(db_url, market):
    with unit_of_work(db_url) as session:
        trading.place_order(session, market.seller, account="M001", product="IN99995", side="S", lots=10,
                            price_fen=150_000, key="s1", receipts=["KM01IN99995000001"], now=NOW)
    with unit_of_work(db_url) as session:
        # A cached balance that no posting explains, on an account the next trade posts to.
        ledger.cash_of(session, get_account(session, "M002/C01").id).balance += 1
    with unit_of_work(db_url) as session:
        with pytest.raises(ledger.LedgerInvariantBroken, match="balances sum to 1"):
            _buy(session, market.client_a, "M002/C01", "b1", price=150_000, lots=4)
        session.rollback()
        assert session.scalar(select(func.count(Trade.id))) == 0
        assert session.scalar(select(Order.open_lots).where(Order.idempotency_key == "s1")) == 10
