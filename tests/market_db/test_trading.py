"""Orders through the core settle delivery-versus-payment through the ledger, atomically and the same day."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from ingot.core.errors import DomainError
from ingot.market import gateway, ledger, trading
from ingot.market.accounts import cash_position, get_account
from ingot.market.common import MarketRejected
from ingot.market.models import EngineCommand, Order, Receipt, Trade
from tests.market_db.helpers import NOW, build_market, open_continuous


@pytest.fixture
def market(session):
    gateway.forget_cores()
    built = build_market(session)
    open_continuous(session, built)
    session.commit()
    return built


def sell(session, market, lots, price, key, receipts=("KM01IN99995000001",), **kw):
    return trading.place_order(session, market.seller, account="M001", product="IN99995", side="S", lots=lots,
                               price_fen=price, key=key, receipts=list(receipts), now=NOW, **kw)


def buy(session, principal, account, lots, price, key, **kw):
    return trading.place_order(session, principal, account=account, product="IN99995", side="B", lots=lots,
                               price_fen=price, key=key, now=NOW, **kw)


def test_partial_fill_splits_the_receipt_and_settles_dvp(session, market):
    ask = sell(session, market, 10, 150_000, "s1")
    assert ask.status == "resting"
    parent = session.scalar(select(Receipt).where(Receipt.number == "KM01IN99995000001"))
    assert (parent.status, parent.lien_kind, parent.lien_ref) == ("encumbered", "order", str(ask.id))

    bid = buy(session, market.client_a, "M002/C01", 4, 150_000, "b1")
    session.commit()
    assert bid.status == "filled" and ask.open_lots == 6 and ask.filled_lots == 4

    trade = session.scalar(select(Trade))
    notional = 150_000 * 4 * 10
    buyer_fee = 4 * 300 + (notional * 150 + 999_999) // 1_000_000
    seller_fee = 4 * 200 + (notional * 100 + 999_999) // 1_000_000
    assert (trade.notional_fen, trade.buyer_fee_fen, trade.seller_fee_fen) == (notional, buyer_fee, seller_fee)

    children = session.scalars(select(Receipt).where(Receipt.parent_id == parent.id).order_by(Receipt.number)).all()
    assert parent.status == "split"
    delivered, remainder = children
    assert delivered.net_grams + remainder.net_grams == parent.net_grams
    assert delivered.lots == 4 and remainder.lots == 6
    assert delivered.owner_account_id == get_account(session, "M002/C01").id and delivered.status == "transferred"
    assert remainder.lien_ref == str(ask.id) and remainder.status == "encumbered"
    assert ask.receipt_numbers == [remainder.number]

    start = 20_000_000
    assert ledger.balance(session, ledger.CASH, ledger.CNY, get_account(session, "M002/C01").id) == start - notional - buyer_fee
    assert ledger.balance(session, ledger.CASH, ledger.CNY, get_account(session, "M001").id) == start + notional - seller_fee
    assert ledger.balance(session, ledger.CENTRE, ledger.CNY) == buyer_fee + seller_fee
    ledger.check_invariants(session)
    for engine_id in ("M001", "M002/C01", "M002/C02"):
        assert cash_position(session, get_account(session, engine_id))["consistent"]


def test_cancel_releases_the_receipt_lien(session, market):
    ask = sell(session, market, 10, 150_000, "s1")
    trading.cancel_order(session, market.seller, ask.id, key="c1", now=NOW)
    receipt = session.scalar(select(Receipt).where(Receipt.number == "KM01IN99995000001"))
    assert ask.status == "cancelled" and receipt.lien_kind is None and receipt.status == "registered"


def test_resubmission_returns_the_first_order(session, market):
    first = buy(session, market.client_a, "M002/C01", 2, 149_000, "same-key")
    again = buy(session, market.client_a, "M002/C01", 2, 149_000, "same-key")
    assert first.id == again.id
    assert session.scalar(select(func.count(Order.id))) == 1


@pytest.mark.parametrize(
    "lots, price, code",
    [(0, 150_000, "non_positive_quantity"), (51, 150_000, "quantity_above_maximum"),
     (1, 150_050, "off_tick_price"), (1, 170_000, "price_outside_band"), (10_000_000, 150_000, "quantity_above_maximum")],
)
def test_bad_orders_are_refused_with_their_reason_and_change_nothing(session, market, lots, price, code):
    commands_before = session.scalar(select(func.count(EngineCommand.sequence)))
    with pytest.raises(MarketRejected) as refused:
        buy(session, market.client_a, "M002/C01", lots, price, f"bad-{lots}-{price}")
    assert refused.value.code == code and refused.value.message_zh and refused.value.message_en
    assert session.scalar(select(func.count(EngineCommand.sequence))) == commands_before
    assert session.scalar(select(func.count(Order.id))) == 0


def test_insufficient_cash_and_someone_elses_receipt(session, market):
    with pytest.raises(MarketRejected) as refused:
        buy(session, market.client_b, "M002/C02", 50, 165_000, "too-big")
    assert refused.value.code == "insufficient_cash"
    with pytest.raises(MarketRejected) as refused:
        trading.place_order(session, market.client_a, account="M002/C01", product="IN99995", side="S", lots=1,
                            price_fen=150_000, key="not-mine", receipts=["KM01IN99995000001"], now=NOW)
    assert refused.value.code == "receipt_not_owned"


def test_a_client_cannot_trade_another_clients_account(session, market):
    with pytest.raises(DomainError) as refused:
        buy(session, market.client_a, "M002/C02", 1, 150_000, "other")
    assert refused.value.status_code == 404


def test_the_centre_takes_no_positions(session, market):
    with pytest.raises(DomainError) as refused:
        buy(session, market.operator, "M002/C01", 1, 150_000, "centre")
    assert refused.value.status_code == 403


def test_a_failed_settlement_rolls_back_the_command_and_the_core_rebuilds(session, market, monkeypatch):
    sell(session, market, 10, 150_000, "s1")
    session.commit()
    sequence_before = session.scalar(select(func.max(EngineCommand.sequence)))

    def broken(*_args, **_kwargs):
        raise ledger.LedgerInvariantBroken("simulated failure inside settlement")

    monkeypatch.setattr(ledger, "check_batch_invariants", broken)
    with pytest.raises(ledger.LedgerInvariantBroken):
        buy(session, market.client_a, "M002/C01", 4, 150_000, "b1")
    session.rollback()
    monkeypatch.undo()
    assert session.scalar(select(func.count(Trade.id))) == 0
    assert session.scalar(select(func.max(EngineCommand.sequence))) == sequence_before
    # The core had applied the buy in memory; it notices and rebuilds from the committed journal.
    depth = gateway.read_core(session, lambda core: core.depth("IN99995"))
    assert depth["asks"] == [(150_000, 10, 1)] and depth["bids"] == []
    retried = buy(session, market.client_a, "M002/C01", 4, 150_000, "b1")
    assert retried.status == "filled"
    ledger.check_invariants(session)


def test_end_of_day_settlement_price_statements_and_invariants(session, market):
    sell(session, market, 4, 150_000, "s1")
    buy(session, market.client_a, "M002/C01", 4, 150_000, "b1")
    buy(session, market.client_b, "M002/C02", 2, 151_000, "b2")
    sell(session, market, 2, 151_000, "s2", receipts=("KM01IN99995000002",))
    session.commit()
    result = trading.end_of_day(session, market.operator, now=NOW)
    assert result["settlement_prices"]["IN99995"]["method"] == "vwap"
    # (150000×4 + 151000×2) / 6 = 150333.3 → 150300 at a 100-fen tick
    assert result["settlement_prices"]["IN99995"]["price_fen"] == 150_300
    assert trading.phases(session)["IN99995"] == "closed"
    statements = trading.statements_for(session, market.client_a)
    assert [s.account_id for s in statements] == [get_account(session, "M002/C01").id]
    assert statements[0].trades[0]["side"] == "B"


@pytest.mark.parametrize(
    "trades, expected",
    [([(100, 1), (300, 3)], (300, "vwap")), ([(100, 1), (200, 1)], (200, "vwap")), ([(500, 1)], (500, "last")),
     ([], (700, "previous"))],
)
def test_settlement_price_rule(trades, expected):
    min_lots = 2
    assert trading.settlement_price_of(trades, 700, 100, min_lots) == expected


def test_an_amendment_that_crosses_fills_and_the_order_row_says_so(session, market):
    sell(session, market, 3, 150_000, "s1")
    bid = buy(session, market.client_a, "M002/C01", 5, 149_000, "b1")
    trading.amend_order(session, market.client_a, bid.id, lots=3, price_fen=150_000, key="a1", now=NOW)
    assert (bid.status, bid.lots, bid.filled_lots, bid.open_lots) == ("filled", 3, 3, 0)
    reduce = buy(session, market.client_b, "M002/C02", 4, 149_000, "b2")
    trading.amend_order(session, market.client_b, reduce.id, lots=2, price_fen=149_000, key="a2", now=NOW)
    assert (reduce.status, reduce.lots, reduce.open_lots) == ("resting", 2, 2)
    ledger.check_invariants(session)


def test_readers_during_a_write_do_not_rebuild_and_a_rollback_is_noticed(session, db_url, market):
    from ingot.core.db import session_factory

    calls = []
    original = gateway._rebuild
    gateway._rebuild = lambda s, held: (calls.append(1), original(s, held))[1]
    try:
        buy(session, market.client_a, "M002/C01", 2, 149_000, "in-flight")
        with session_factory(db_url)() as reader:
            assert gateway.read_core(reader, lambda core: core.depth("IN99995"))["bids"] == [(149_000, 2, 1)]
        assert calls == []
        session.rollback()
        with session_factory(db_url)() as reader:
            assert gateway.read_core(reader, lambda core: core.depth("IN99995"))["bids"] == []
        assert calls == [1]
    finally:
        gateway._rebuild = original


def test_a_key_reused_for_another_command_is_refused_not_answered_with_the_first(session, market):
    first = buy(session, market.client_a, "M002/C01", 1, 149_000, "k1")
    second = buy(session, market.client_a, "M002/C01", 1, 148_000, "k2")
    trading.cancel_order(session, market.client_a, first.id, key="c1", now=NOW)
    assert trading.cancel_order(session, market.client_a, first.id, key="c1", now=NOW).status == "cancelled"
    with pytest.raises(DomainError) as refused:
        trading.cancel_order(session, market.client_a, second.id, key="c1", now=NOW)
    assert refused.value.code == "key_reused" and second.status == "resting"
    with pytest.raises(DomainError) as refused:
        buy(session, market.client_a, "M002/C01", 1, 149_000, "c1")
    assert refused.value.code == "key_reused"
    with pytest.raises(DomainError) as refused:
        trading.cancel_order(session, market.client_a, second.id, key="k1", now=NOW)
    assert refused.value.code == "key_reused"
