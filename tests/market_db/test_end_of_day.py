"""End of day closes its trading day for good: no session reopens in it, no trade is booked into it, it cannot run
twice, and every trade of the day is on its statements. It also runs the cash reconciliation against the custodian."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from ingot.core.errors import DomainError
from ingot.market import accounts, gateway, ledger, trading
from ingot.market.common import trading_day
from ingot.market.engine import SessionControl, utc_micros
from ingot.market.models import CashReconciliation, DailyStatement, MarketAlarm, Trade
from tests.conftest import login
from tests.market_db.helpers import NOW, OPERATOR_PASSWORD, build_market, open_continuous

NEXT_DAY = NOW + timedelta(days=1)


@pytest.fixture
def market(session):
    gateway.forget_cores()
    built = build_market(session)
    open_continuous(session, built)
    session.commit()
    return built


def _trade(session, market, *, lots, key, now, receipt="KM01IN99995000001"):
    trading.place_order(session, market.seller, account="M001", product="IN99995", side="S", lots=lots,
                        price_fen=150_000, key=f"{key}-ask", receipts=[receipt], now=now)
    return trading.place_order(session, market.client_a, account="M002/C01", product="IN99995", side="B", lots=lots,
                               price_fen=150_000, key=f"{key}-bid", now=now)


def _statement_trades(session, engine_id, day):
    account = accounts.get_account(session, engine_id)
    statement = session.scalar(select(DailyStatement).where(DailyStatement.account_id == account.id,
                                                            DailyStatement.day == day))
    return [line["trade_id"] for line in statement.trades]


def test_a_day_closed_by_end_of_day_cannot_reopen_and_the_next_day_trades_onto_its_own_statement(session, market):
    day = trading_day(NOW)
    _trade(session, market, lots=2, key="first", now=NOW)
    result = trading.end_of_day(session, market.operator, now=NOW + timedelta(hours=6))
    session.commit()
    assert result["statements"] == 4
    assert trading.phases(session)["IN99995"] == "closed"

    later_that_day = NOW + timedelta(hours=7)
    for action in ("continuous", "open_auction", "uncross"):
        with pytest.raises(DomainError) as refused:
            trading.session_control(session, market.operator, action, now=later_that_day)
        assert refused.value.status_code == 409 and refused.value.code == "trading_day_ended"
        assert day.isoformat() in refused.value.message_en and day.isoformat() in refused.value.message_zh
        assert "next trading day" in refused.value.message_en
        session.rollback()
    # A second end of day for the same day is refused too: it would have nothing left to write.
    with pytest.raises(DomainError) as again:
        trading.end_of_day(session, market.operator, now=later_that_day)
    assert again.value.status_code == 409 and again.value.code == "trading_day_ended"
    session.rollback()

    # The next session belongs to the next trading day, and its trade is on that day's statement.
    trading.session_control(session, market.operator, "continuous", now=NEXT_DAY)
    bid = _trade(session, market, lots=1, key="second", now=NEXT_DAY, receipt="KM01IN99995000002")
    second_trade = session.scalar(select(Trade).where(Trade.buy_order_id == bid.id))
    assert second_trade.trade_day == trading_day(NEXT_DAY)
    result = trading.end_of_day(session, market.operator, now=NEXT_DAY + timedelta(hours=6))
    assert result["statements"] == 4
    assert second_trade.id in _statement_trades(session, "M002/C01", trading_day(NEXT_DAY))
    assert second_trade.id in _statement_trades(session, "M001", trading_day(NEXT_DAY))
    assert second_trade.id not in _statement_trades(session, "M002/C01", day)


def test_no_trade_can_be_booked_into_a_day_after_its_end_of_day(session, market):
    """Even a session opened behind the service's back cannot put a trade into a closed day: the command is refused
    and rolls back whole, so no statement can miss a trade."""
    trading.end_of_day(session, market.operator, now=NOW)
    session.commit()
    gateway.execute(session, SessionControl("reopen-behind-the-rules", utc_micros(NOW), "IN99995", "continuous"))
    session.commit()
    trading.place_order(session, market.seller, account="M001", product="IN99995", side="S", lots=1,
                        price_fen=150_000, key="late-ask", receipts=["KM01IN99995000001"], now=NOW)
    session.commit()
    with pytest.raises(DomainError) as refused:
        trading.place_order(session, market.client_a, account="M002/C01", product="IN99995", side="B", lots=1,
                            price_fen=150_000, key="late-bid", now=NOW)
    assert refused.value.code == "trading_day_ended"
    session.rollback()
    assert session.scalar(select(func.count(Trade.id))) == 0
    ledger.check_invariants(session)
    gateway.read_core(session, lambda core: core.check_invariants())


def test_end_of_day_refuses_a_day_that_has_not_come(session, market):
    with pytest.raises(DomainError) as refused:
        trading.end_of_day(session, market.operator, day=trading_day(NEXT_DAY), now=NOW)
    assert refused.value.code == "trading_day_not_over"


def test_the_api_refuses_to_reopen_a_closed_day_with_409(client, db_url):
    from ingot.core.db import unit_of_work

    gateway.forget_cores()
    with unit_of_work(db_url) as session:
        build_market(session)
    centre = login(client, "operator", OPERATOR_PASSWORD)
    assert client.post("/api/market/sessions", headers=centre, json={"action": "continuous"}).status_code == 200
    eod = client.post("/api/market/end-of-day", headers=centre, json={})
    assert eod.status_code == 200, eod.text
    reopened = client.post("/api/market/sessions", headers=centre, json={"action": "continuous"})
    assert reopened.status_code == 409
    detail = reopened.json()["detail"][0]
    assert detail["code"] == "trading_day_ended" and "end of day" in detail["msg_en"] and "日终" in detail["msg"]
    again = client.post("/api/market/end-of-day", headers=centre, json={})
    assert again.status_code == 409 and again.json()["detail"][0]["code"] == "trading_day_ended"


def test_end_of_day_runs_the_cash_reconciliation_and_raises_a_break(session, market):
    day = trading_day(NOW)
    _trade(session, market, lots=2, key="first", now=NOW)
    for engine_id in ("M001", "M002", "M002/C01"):
        closing = ledger.balance(session, ledger.CASH, ledger.CNY, accounts.get_account(session, engine_id).id)
        accounts.import_bank_balance(session, market.operator, account_engine_id=engine_id, day=day,
                                     closing_fen=closing)
    accounts.import_bank_balance(session, market.operator, account_engine_id="M002/C02", day=day,
                                 closing_fen=19_000_000)
    result = trading.end_of_day(session, market.operator, now=NOW + timedelta(hours=6))
    assert result["reconciliation"] == {"ok": 3, "break": 1, "missing": 0, "breaks": ["M002/C02"]}
    rows = {r.account_id: r.status for r in session.scalars(select(CashReconciliation).where(
        CashReconciliation.day == day))}
    assert rows[accounts.get_account(session, "M002/C02").id] == "break"
    alarm = session.scalar(select(MarketAlarm).where(MarketAlarm.kind == "cash_break"))
    assert alarm is not None and alarm.reference == f"M002/C02@{day.isoformat()}"


def test_end_of_day_without_custodian_balances_records_them_missing(session, market):
    result = trading.end_of_day(session, market.operator, now=NOW)
    assert result["reconciliation"] == {"ok": 0, "break": 0, "missing": 4, "breaks": []}
    assert session.scalar(select(func.count(CashReconciliation.id))) == 4
