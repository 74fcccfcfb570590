"""Group commit of the order endpoints: several requests' units of work in one transaction, a savepoint each.

Each request gets what a transaction of its own would have given it: a refusal rolls back that request only, a
request that fails after the core took its command leaves neither the order nor the core's copy of it, and a
commit the database refuses stores none of the batch and tells every request so.
"""
from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from ingot.core.db import session_factory, unit_of_work
from ingot.core.group_commit import GroupCommit
from ingot.market import gateway, ledger, trading
from ingot.market.common import MarketRejected
from ingot.market.engine import MatchingCore
from ingot.market.engine.journal import decode_command
from ingot.market.models import EngineCommand, Order
from tests.conftest import commits_refused, login
from tests.market_db.helpers import NOW, PASSWORD, fund, open_market


@pytest.fixture
def market(db_url):
    return open_market(db_url)


def _buy(key: str, *, lots: int = 1, price: int = 140_000):
    def work(session, principal):
        return trading.submit_order(session, principal, account="M002/C01", product="IN99995", side="B", lots=lots,
                                    price_fen=price, key=key, now=NOW)

    return work


def _batched(db_url, works, user_id):
    """Run `works` as one batch of a fresh desk: the first unit of work holds the desk until all are queued."""
    desk = GroupCommit(session_factory(db_url), gateway.begin_writing, name="test-desk")
    running, go = threading.Event(), threading.Event()

    def hold(session, principal):
        running.set()
        assert go.wait(10)
        return None

    first = desk.submit(user_id, hold)
    assert running.wait(10)
    futures = [desk.submit(user_id, work) for work in works]
    go.set()
    first.exception(10)  # its own batch's outcome is not what the test is about
    outcomes = []
    for future in futures:
        error = future.exception(10)
        outcomes.append(error if error is not None else future.result())
    assert (desk.batches, desk.units) == (2, 1 + len(works)), "the queued units of work did not share one batch"
    return outcomes


def _stored_keys(db_url) -> set[str]:
    with unit_of_work(db_url) as session:
        return set(session.scalars(select(Order.idempotency_key)))


def _core_matches_the_journal(db_url) -> None:
    with unit_of_work(db_url) as session:
        replayed = MatchingCore()
        for row in session.scalars(select(EngineCommand).order_by(EngineCommand.sequence)):
            replayed.apply(decode_command(row.payload)[1])
        held = gateway.read_core(session, lambda core: (core.sequence, core.state_hash()))
        assert held == (replayed.sequence, replayed.state_hash())
        ledger.check_invariants(session)


def test_a_refused_request_rolls_back_alone_and_the_core_is_not_rebuilt(db_url, market, monkeypatch):
    user_id = market.client_a.user_id
    with unit_of_work(db_url) as session:  # the process's core, loaded before the batch
        gateway.read_core(session, lambda core: None)
    rebuilds = []
    real_rebuild = gateway._rebuild
    monkeypatch.setattr(gateway, "_rebuild", lambda *args: (rebuilds.append(args), real_rebuild(*args)))

    outcomes = _batched(db_url, [_buy("g1"), _buy("g2", lots=10**5), _buy("g3", price=140_100)], user_id)

    assert outcomes[0]["status"] == "resting" and outcomes[2]["status"] == "resting"
    assert isinstance(outcomes[1], MarketRejected)
    assert outcomes[1].rejection.code == "quantity_above_maximum"
    assert _stored_keys(db_url) == {"g1", "g3"}
    # The refusal never reached the core, so rolling back its savepoint left the core as it was.
    assert rebuilds == []
    _core_matches_the_journal(db_url)


def test_a_request_failing_after_the_core_took_its_order_leaves_no_trace(db_url, market):
    user_id = market.client_a.user_id

    def placed_then_failed(session, principal):
        _buy("g2")(session, principal)
        raise RuntimeError("the request failed after its order was placed")

    outcomes = _batched(db_url, [_buy("g1"), placed_then_failed, _buy("g3", price=140_100)], user_id)

    assert isinstance(outcomes[1], RuntimeError)
    assert _stored_keys(db_url) == {"g1", "g3"}
    with unit_of_work(db_url) as session:
        sequences = list(session.scalars(select(EngineCommand.sequence).order_by(EngineCommand.sequence)))
        assert sequences == list(range(1, len(sequences) + 1))
    # The core neither holds g2 nor lost g1 or g3.
    _core_matches_the_journal(db_url)
    with unit_of_work(db_url) as session:
        again = _buy("g2")(session, market.client_a)
    assert again["status"] == "resting"


def test_a_refused_commit_stores_none_of_the_batch_and_tells_every_request(db_url, market):
    user_id = market.client_a.user_id
    with commits_refused() as attempts:
        outcomes = _batched(db_url, [_buy("g1"), _buy("g2", lots=10**5), _buy("g3", price=140_100)], user_id)

    assert attempts
    assert isinstance(outcomes[0], OperationalError) and isinstance(outcomes[2], OperationalError)
    # A request refused on its own merits is told why, not that the commit failed.
    assert isinstance(outcomes[1], MarketRejected)
    assert _stored_keys(db_url) == set()
    _core_matches_the_journal(db_url)
    # Resubmitted, the same keys are taken: nothing of the refused batch was remembered.
    assert {outcome["key"] for outcome in _batched(db_url, [_buy("g1"), _buy("g3", price=140_100)],
                                                               user_id)} == {"g1", "g3"}
    assert _stored_keys(db_url) == {"g1", "g3"}


def test_concurrent_orders_over_http_are_all_acknowledged_stored_once_and_journaled_in_sequence(db_url, market, client):
    with unit_of_work(db_url) as session:
        fund(session, market.operator, "M002/C01", 100_000_000, "BANK-MORE")
    headers = login(client, "client_a", PASSWORD)
    app = client.app

    async def send_all():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            orders = [http.post("/api/market/orders", headers=headers,
                                json={"account": "M002/C01", "product": "IN99995", "side": "B", "lots": 1,
                                      "price_fen": 140_000 + 100 * (index % 5), "key": f"c{index}"})
                      for index in range(40)]
            # A resubmission of a key in flight is answered with the same order, never a second one.
            orders += [http.post("/api/market/orders", headers=headers,
                                 json={"account": "M002/C01", "product": "IN99995", "side": "B", "lots": 1,
                                       "price_fen": 140_000, "key": "c0"})]
            return await asyncio.gather(*orders)

    answers = asyncio.run(send_all())
    assert [answer.status_code for answer in answers] == [201] * 41, [a.text for a in answers if a.status_code != 201]
    ids = [answer.json()["order_id"] for answer in answers]
    assert len(set(ids[:40])) == 40 and ids[40] == ids[0]
    with unit_of_work(db_url) as session:
        assert session.scalar(select(func.count(Order.id))) == 40
        assert set(session.scalars(select(Order.id))) == set(ids)
    _core_matches_the_journal(db_url)


def test_an_idle_desk_lets_its_thread_go_and_starts_another_for_the_next_request(db_url, market):
    desk = GroupCommit(session_factory(db_url), gateway.begin_writing, name="test-desk", idle_seconds=0.05)
    user_id = market.client_a.user_id
    assert desk.submit(user_id, _buy("i1")).result(10)["status"] == "resting"
    for _ in range(200):
        if not any(thread.name == "test-desk" for thread in threading.enumerate()):
            break
        threading.Event().wait(0.05)
    assert not any(thread.name == "test-desk" for thread in threading.enumerate())
    assert desk.submit(user_id, _buy("i2")).result(10)["status"] == "resting"
    assert _stored_keys(db_url) == {"i1", "i2"}
