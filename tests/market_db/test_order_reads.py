"""The order path's combined reads say what the separate ones said: the version in force and the band's reference
for the order's day (also when another transaction announces a version or fixes a settlement price), the caller's
scope for the account, a token's user as the database has it now; and the plumbing they rest on (statements,
sessionmakers and route order built once) keeps no state it should not."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from ingot.core.auth import set_disabled
from ingot.core.db import dispose_engines, get_engine, session_factory, unit_of_work
from ingot.core.errors import NotFound
from ingot.market import gateway, products, rows, trading
from ingot.market.accounts import get_account
from ingot.market.common import MarketRejected, in_scope
from ingot.market.models import EngineCommand, Member, Order, Product, SettlementPrice, TradingAccount
from tests.conftest import login
from tests.market_db.helpers import INDIUM_RULES, NOW, PASSWORD, open_market

NEXT = NOW + timedelta(days=1)


@pytest.fixture
def market(db_url):
    return open_market(db_url, cash_fen=200_000_000)


def _buy(db_url, principal, key, *, price=150_000, lots=1, at=NOW, account="M002/C01"):
    with unit_of_work(db_url) as session:
        order = trading.place_order(session, principal, account=account, product="IN99995", side="B", lots=lots,
                                    price_fen=price, key=key, now=at)
        return order.id, order.status


def _refusal(db_url, principal, key, **kw) -> str:
    with pytest.raises(MarketRejected) as refused:
        _buy(db_url, principal, key, **kw)
    return refused.value.rejection.code


def test_a_version_announced_by_another_transaction_binds_the_next_order_of_its_day(db_url, market):
    # An order on the coming day under the rules in force so far...
    assert _buy(db_url, market.client_a, "before", price=150_100, at=NEXT)[1] == "resting"
    with unit_of_work(db_url) as session:
        products.announce_version(session, market.operator, "IN99995", effective_on=NEXT.date(), now=NOW,
                                  rules={**INDIUM_RULES, "notice_ref": "公告〔2026〕2号", "tick_fen": 500,
                                         "max_order_lots": 10})
    # ...and the next one on that day meets the new version, while today keeps the old one.
    assert _refusal(db_url, market.client_a, "off-tick", price=150_100, at=NEXT) == "off_tick_price"
    assert _refusal(db_url, market.client_a, "too-big", price=150_000, lots=20, at=NEXT) == "quantity_above_maximum"
    assert _buy(db_url, market.client_a, "on-tick", price=150_500, lots=10, at=NEXT)[1] == "resting"
    assert _buy(db_url, market.client_a, "today", price=150_100, lots=20, at=NOW)[1] == "resting"


def test_the_band_follows_a_settlement_price_fixed_by_another_transaction(db_url, market):
    assert _buy(db_url, market.client_a, "at-reference", price=150_000)[1] == "resting"
    with unit_of_work(db_url) as session:
        product = session.scalar(select(Product).where(Product.code == "IN99995"))
        session.add(SettlementPrice(product_id=product.id, day=NOW.date() - timedelta(days=1), price_fen=200_000,
                                    method="vwap", volume_lots=1))
    # The band is now 200,000 ± 10 %: the listing reference is outside it.
    assert _refusal(db_url, market.client_a, "old-reference", price=150_000) == "price_outside_band"
    assert _buy(db_url, market.client_a, "new-reference", price=219_900)[1] == "resting"


def test_rules_for_day_agrees_with_the_separate_reads_on_every_day(session, market):
    product = products.get_product(session, "IN99995")
    products.announce_version(session, market.operator, "IN99995", effective_on=NOW.date() + timedelta(days=2),
                              now=NOW, rules={**INDIUM_RULES, "tick_fen": 200})
    for offset, price in ((-3, 151_000), (0, 152_000), (2, 153_000)):
        session.add(SettlementPrice(product_id=product.id, day=NOW.date() + timedelta(days=offset), price_fen=price,
                                    method="last", volume_lots=1))
    session.flush()
    for offset in range(-5, 6):
        day = NOW.date() + timedelta(days=offset)
        found, version, reference = products.rules_for_day(session, "IN99995", day)
        expected = products.version_in_force(session, product, day)
        assert found is product
        assert (version.id if version else None) == (expected.id if expected else None), day
        assert reference == products.previous_settlement_price(session, product, day), day
    assert products.rules_for_day(session, "NOSUCH", NOW.date()) is None


def test_the_order_path_sees_an_account_exactly_when_in_scope_does(session, market):
    engine_ids = [account.engine_id for account in session.scalars(select(TradingAccount))]
    assert len(engine_ids) >= 4
    for principal in (market.seller, market.broker, market.client_a, market.client_b):
        for engine_id in engine_ids:
            expected = in_scope(session, principal, get_account(session, engine_id))
            try:
                account, division, existing = trading._order_account(session, principal, engine_id, "no-such-key")
            except NotFound:
                seen = False
            else:
                seen = True
                assert account.engine_id == engine_id and existing is None
                assert division == session.get(Member, account.member_id).division_code
            assert seen is expected, (principal.username, engine_id)
    with pytest.raises(NotFound):
        trading._order_account(session, market.client_a, "NO/SUCH", "k")


def test_a_resubmitted_key_finds_the_first_order_through_the_combined_read(db_url, market):
    first = _buy(db_url, market.client_a, "same-key")
    again = _buy(db_url, market.client_a, "same-key", price=149_000, lots=3)
    assert again == first
    with unit_of_work(db_url) as session:
        assert session.scalar(select(func.count(Order.id))) == 1
        # The same key on another account is another order.
        assert _buy(db_url, market.client_b, "same-key", account="M002/C02")[0] != first[0]


def test_a_disabled_user_is_refused_on_the_next_request(db_url, market, client):
    headers = login(client, "client_a", PASSWORD)
    body = {"account": "M002/C01", "product": "IN99995", "side": "B", "lots": 1, "price_fen": 150_000}
    assert client.post("/api/market/orders", json={**body, "key": "k1"}, headers=headers).status_code in (201, 422)
    with unit_of_work(db_url) as session:
        set_disabled(session, "client_a", True)
    assert client.post("/api/market/orders", json={**body, "key": "k2"}, headers=headers).status_code == 401


def test_read_fed_core_sees_the_transactions_own_command_and_a_rollback_is_undone(db_url, market):
    with unit_of_work(db_url) as session:
        committed = gateway.read_core(session, lambda core: core.sequence)
    session = session_factory(db_url)()
    try:
        trading.place_order(session, market.client_a, account="M002/C01", product="IN99995", side="B", lots=1,
                            price_fen=150_000, key="rolled-back", now=NOW)
        assert gateway.read_fed_core(session, lambda core: core.sequence) == committed + 1
        session.rollback()
        # Not fed any more: read through the committed head, which the rollback left where it was.
        assert gateway.read_fed_core(session, lambda core: core.sequence) == committed
        assert session.get(EngineCommand, committed + 1) is None
    finally:
        session.rollback()
        session.close()


def test_rows_get_is_session_get_held_for_the_transaction(session, market):
    account = get_account(session, "M001")
    assert rows.get(session, TradingAccount, account.id) is session.get(TradingAccount, account.id)
    assert rows.get(session, TradingAccount, 10**9) is None
    # A row changed in the transaction is the changed object, not a fresh read.
    product = rows.get(session, Product, session.scalar(select(Product.id)))
    product.name_en = "changed here"
    assert rows.get(session, Product, product.id).name_en == "changed here"
    session.rollback()
    # A new transaction holds nothing from the last one.
    assert rows.held(session) == {}


def test_one_sessionmaker_per_engine_and_a_new_one_after_the_engines_are_disposed(db_url):
    first = session_factory(db_url)
    assert session_factory(db_url) is first and first.kw["bind"] is get_engine(db_url)
    dispose_engines()
    second = session_factory(db_url)
    assert second is not first and second.kw["bind"] is get_engine(db_url)
    with second() as session:
        assert session.get_bind() is get_engine(db_url)


def test_the_market_routes_come_first_and_every_other_route_still_answers(client):
    from ingot.api.app import ROUTER_MODULES, create_app

    for app in (client.app, create_app()):  # a second app: the reordering is idempotent
        included = [route for route in app.router.routes if hasattr(route, "original_router")]
        assert included[0].original_router.prefix == "/api/market"
        assert len({id(route) for route in included}) == len(included) == len(ROUTER_MODULES)
    assert client.get("/api/market/orders/1/cancel").status_code == 405  # the path is there, for POST only
    assert client.post("/api/auth/token", data={"username": "x", "password": "y"}).status_code == 401
    assert client.get("/api/market/no-such-route").status_code == 404
    assert client.get("/docs").status_code == 200
