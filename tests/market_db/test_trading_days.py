"""Trading days are application state in `market_trading_days`, not read from the audit log: end of day records its
day there (who, when, settlement prices, statements, the cash reconciliation), the "no reopening" rule reads it, the
API and the regulator's page list the days, and an upgrade from before the table backfills it from the audit."""
from __future__ import annotations

from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import select

from ingot.core.audit import AuditEntry, record_change
from ingot.core.db import dispose_engines, unit_of_work
from ingot.core.errors import DomainError
from ingot.core.migrate import alembic_config, upgrade
from ingot.market import gateway, trading, trading_days
from ingot.market.common import trading_day
from ingot.market.models import TradingDay
from tests.conftest import login
from tests.market_db.helpers import NOW, OPERATOR_PASSWORD, PASSWORD, build_market, open_continuous

NEXT_DAY = NOW + timedelta(days=1)


def _trade(session, market, *, key, now, receipt="KM01IN99995000001"):
    trading.place_order(session, market.seller, account="M001", product="IN99995", side="S", lots=1,
                        price_fen=150_000, key=f"{key}-ask", receipts=[receipt], now=now)
    trading.place_order(session, market.client_a, account="M002/C01", product="IN99995", side="B", lots=1,
                        price_fen=150_000, key=f"{key}-bid", now=now)


@pytest.fixture
def market(session):
    gateway.forget_cores()
    built = build_market(session)
    session.commit()
    return built


def test_end_of_day_records_its_day_and_the_rule_reads_the_table(session, market):
    day = trading_day(NOW)
    open_continuous(session, market)
    assert session.get(TradingDay, day).state == "open"
    _trade(session, market, key="t1", now=NOW)
    result = trading.end_of_day(session, market.operator, now=NOW + timedelta(hours=5))
    session.commit()
    row = session.get(TradingDay, day)
    assert row.state == "ended" and row.ended_by == "operator" and row.ended_at is not None
    assert row.settlement_prices == result["settlement_prices"] and row.statements == result["statements"] == 4
    assert row.reconciliation == result["reconciliation"]
    # End of day is still audited.
    assert session.scalar(select(AuditEntry).where(AuditEntry.entity == "market_end_of_day",
                                                   AuditEntry.entity_id == day.isoformat())) is not None

    # An audit entry is not state: one for tomorrow does not end tomorrow.
    record_change(session, market.operator, trading.END_OF_DAY_ENTITY, trading_day(NEXT_DAY).isoformat(), "run", None, {})
    trading.session_control(session, market.operator, "continuous", now=NEXT_DAY)
    session.commit()
    assert trading_days.day_ended(session, trading_day(NEXT_DAY)) is False


def test_the_centre_and_the_regulator_list_past_trading_days(client, db_url):
    gateway.forget_cores()
    with unit_of_work(db_url) as session:
        market = build_market(session)
        open_continuous(session, market)
        trading.end_of_day(session, market.operator, now=NOW + timedelta(hours=5))
        trading.session_control(session, market.operator, "continuous", now=NEXT_DAY)
    centre = login(client, "operator", OPERATOR_PASSWORD)
    days = client.get("/api/market/trading-days", headers=centre)
    assert days.status_code == 200
    listed = days.json()
    assert [d["day"] for d in listed] == [trading_day(NEXT_DAY).isoformat(), trading_day(NOW).isoformat()]
    assert listed[0]["state"] == "open" and listed[1]["state"] == "ended" and listed[1]["ended_by"] == "operator"
    assert listed[1]["settlement_prices"]["IN99995"]["method"] == "previous"
    member = login(client, "seller", PASSWORD)
    assert client.get("/api/market/trading-days", headers=member).status_code == 403
    regulator = login(client, "regulator", PASSWORD)
    assert client.get("/api/market/trading-days", headers=regulator).status_code == 200
    client.cookies.clear()
    client.post("/login", data={"username": "regulator", "password": PASSWORD})
    page = client.get("/market/oversight")
    assert page.status_code == 200 and 'data-testid="trading-days"' in page.text
    assert trading_day(NOW).isoformat() in page.text and "已日终" in page.text


def test_an_upgrade_backfills_ended_days_from_the_audit_and_they_stay_ended(db_url):
    """Make the history the old code made (end of day recorded by its audit entry only), then upgrade."""
    gateway.forget_cores()
    day, next_day = trading_day(NOW), trading_day(NEXT_DAY)
    with unit_of_work(db_url) as session:
        market = build_market(session)
        open_continuous(session, market)
        _trade(session, market, key="t1", now=NOW)
        result = trading.end_of_day(session, market.operator, now=NOW + timedelta(hours=5))
        trading.session_control(session, market.operator, "continuous", now=NEXT_DAY)
        _trade(session, market, key="t2", now=NEXT_DAY, receipt="KM01IN99995000002")
    dispose_engines()
    command.downgrade(alembic_config(db_url), "0007_market_trading_days@-1")
    upgrade(db_url)
    dispose_engines()
    gateway.forget_cores()
    with unit_of_work(db_url) as session:
        ended, still_open = session.get(TradingDay, day), session.get(TradingDay, next_day)
        assert ended.state == "ended" and ended.ended_by == "operator"
        assert ended.settlement_prices == result["settlement_prices"] and ended.statements == 4
        assert ended.reconciliation == result["reconciliation"]
        assert still_open.state == "open" and still_open.ended_at is None
    with unit_of_work(db_url) as session, pytest.raises(DomainError) as refused:
        trading.session_control(session, market.operator, "continuous", now=NOW + timedelta(hours=6))
    assert refused.value.status_code == 409 and refused.value.code == "trading_day_ended"
