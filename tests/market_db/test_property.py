"""Random member activity through the service layer: whatever is accepted or refused, the ledger stays balanced, the
ledger and the core agree on every account's cash, and every receipt's lien in the database mirrors the core."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from ingot.core.errors import DomainError
from ingot.market import gateway, ledger, trading
from ingot.market.accounts import cash_position, get_account
from ingot.market.models import Order, Receipt
from tests.market_db.helpers import NOW, build_market, open_continuous

ACCOUNTS = {"seller": "M001", "client_a": "M002/C01", "client_b": "M002/C02"}
_keys = itertools.count()

operation = st.one_of(
    st.tuples(st.just("buy"), st.sampled_from(["client_a", "client_b", "seller"]), st.integers(1, 12),
              st.integers(1460, 1540), st.sampled_from(["DAY", "GTC", "IOC", "FOK"])),
    st.tuples(st.just("market_buy"), st.sampled_from(["client_a", "client_b"]), st.integers(1, 8), st.just(1650),
              st.sampled_from(["IOC", "FOK"])),
    st.tuples(st.just("sell"), st.sampled_from(["seller", "client_a", "client_b"]), st.integers(1, 12),
              st.integers(1460, 1540), st.sampled_from(["DAY", "GTC", "IOC"])),
    st.tuples(st.just("cancel"), st.sampled_from(["seller", "client_a", "client_b"]), st.integers(0, 30), st.just(0),
              st.just("")),
    st.tuples(st.just("amend"), st.sampled_from(["seller", "client_a", "client_b"]), st.integers(0, 30),
              st.integers(1460, 1540), st.integers(1, 6).map(str)),
)


@pytest.fixture
def market(session):
    gateway.forget_cores()
    built = build_market(session, cash_fen=40_000_000, seller_receipts=4)
    open_continuous(session, built)
    for index, owner in enumerate(("M002/C01", "M002/C02")):
        from ingot.market import receipts

        receipts.register_receipt(session, built.warehouse, warehouse_code="KM01", product_code="IN99995",
                                  owner_account=owner, lot_no=f"C{index}", net_grams=60_000 + index,
                                  assay_certificate="A", assay={"In_pct": "99.999"}, location="C", now=NOW)
    session.commit()
    return built


def _free_receipts(session, engine_id):
    account = get_account(session, engine_id)
    return [r.number for r in session.scalars(select(Receipt).where(
        Receipt.owner_account_id == account.id, Receipt.lien_kind.is_(None),
        Receipt.status.in_(("registered", "transferred"))).order_by(Receipt.number))]


def _apply(session, market, op):
    kind, who, a, b, c = op
    principal = getattr(market, who)
    account = ACCOUNTS[who]
    key = f"k{next(_keys)}"
    if kind in ("buy", "market_buy"):
        trading.place_order(session, principal, account=account, product="IN99995", side="B", lots=a, price_fen=b * 100,
                            key=key, order_type="market" if kind == "market_buy" else "limit", tif=c, now=NOW)
    elif kind == "sell":
        free = _free_receipts(session, account)
        trading.place_order(session, principal, account=account, product="IN99995", side="S", lots=a, price_fen=b * 100,
                            key=key, tif=c, receipts=free[:2], now=NOW)
    else:
        resting = session.scalars(select(Order.id).where(Order.status == "resting",
                                                         Order.account_id == get_account(session, account).id)
                                  .order_by(Order.id)).all()
        if not resting:
            return
        order_id = resting[a % len(resting)]
        if kind == "cancel":
            trading.cancel_order(session, principal, order_id, key=key, now=NOW)
        else:
            trading.amend_order(session, principal, order_id, lots=int(c), price_fen=b * 100, key=key, now=NOW)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(operation, min_size=5, max_size=25))
def test_random_activity_keeps_the_books_and_the_core_in_step(session, market, operations):
    for op in operations:
        try:
            _apply(session, market, op)
            session.commit()
        except DomainError:
            session.rollback()
    ledger.check_invariants(session)
    gateway.read_core(session, lambda core: core.check_invariants())
    for engine_id in ("M001", "M002/C01", "M002/C02"):
        assert cash_position(session, get_account(session, engine_id))["consistent"], engine_id
    engine = gateway.read_core(session, lambda core: {rid: (r.status, r.owner_id, r.encumbered_by, r.weight_grams)
                                                       for rid, r in core.receipts.items()})
    for receipt in session.scalars(select(Receipt)):
        status, owner, encumbered_by, grams = engine[receipt.number]
        assert grams == receipt.net_grams
        if status == "live":
            assert get_account(session, owner).id == receipt.owner_account_id
            assert (receipt.lien_ref == str(encumbered_by)) if encumbered_by else receipt.lien_kind is None
        else:
            assert receipt.status == "split"
    for order in session.scalars(select(Order).where(Order.status == "resting")):
        assert gateway.read_core(session, lambda core, oid=order.id: oid in core.orders)
