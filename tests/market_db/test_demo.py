"""The demo loads on an empty database, trades settle with the ledger balanced, and a second load changes nothing."""
from __future__ import annotations

from sqlalchemy import func, select

from ingot.market import gateway, ledger, marketdata
from ingot.market.demo import PRODUCTS, load_market_demo
from ingot.market.models import Product, Receipt, Trade


def test_market_demo_loads_trades_and_balances(session):
    gateway.forget_cores()
    users = load_market_demo(session)
    session.commit()
    assert {role for _, _, role, _ in users} >= {"market_operator", "member", "warehouse", "reserve_agency", "regulator"}
    assert session.scalar(select(func.count(Product.id))) == len(PRODUCTS) == 15
    assert session.scalar(select(func.count(Trade.id))) >= 3
    assert session.scalar(select(func.count(Receipt.id)).where(Receipt.status == "transferred")) >= 2
    assert [op["operation"] for op in marketdata.reserve_operations(session)] == ["buy"]
    ledger.check_invariants(session)
    gateway.read_core(session, lambda core: core.check_invariants())
    trades = session.scalar(select(func.count(Trade.id)))
    assert load_market_demo(session) == users
    assert session.scalar(select(func.count(Trade.id))) == trades


def test_market_demo_reconciles_against_the_custodians_balances(session):
    from ingot.market.models import CashReconciliation

    gateway.forget_cores()
    load_market_demo(session)
    session.commit()
    statuses = [row.status for row in session.scalars(select(CashReconciliation))]
    assert statuses and set(statuses) == {"ok"}
