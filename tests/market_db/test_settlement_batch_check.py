"""The invariant check after each settlement batch looks only at what the batch changed, yet it catches a broken
balance or receipt weight made in the batch the same way the whole-book check does; the whole-book check still
catches damage made outside any batch."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from ingot.market import gateway, ledger, trading
from ingot.market.accounts import get_account
from ingot.market.models import LedgerAccount, Order, Receipt, Trade
from tests.market_db.helpers import NOW, build_market, open_continuous


@pytest.fixture
def market(session):
    gateway.forget_cores()
    built = build_market(session)
    open_continuous(session, built)
    session.commit()
    return built


def _sell(session, market, lots=10, key="s1"):
    return trading.place_order(session, market.seller, account="M001", product="IN99995", side="S", lots=lots,
                               price_fen=150_000, key=key, receipts=["KM01IN99995000001"], now=NOW)


def _buy(session, market, lots=4, key="b1"):
    return trading.place_order(session, market.client_a, account="M002/C01", product="IN99995", side="B", lots=lots,
                               price_fen=150_000, key=key, now=NOW)


def _damage_inside_the_batch(monkeypatch, damage):
    """Run `damage(session, context)` after the batch's settlements and before its check."""
    real = trading._sync_liens

    def sync_then_damage(session, context):
        real(session, context)
        damage(session, context)

    monkeypatch.setattr(trading, "_sync_liens", sync_then_damage)


def _both_checks_refuse(session, monkeypatch, match):
    """The batch check refuses the command; the same damage, left in place, fails the whole-book check too."""
    seen = {}
    real_check = ledger.check_batch_invariants

    def check(session_, batch):
        try:
            real_check(session_, batch)
        except ledger.LedgerInvariantBroken as broken:
            seen["batch"] = str(broken)
            with pytest.raises(ledger.LedgerInvariantBroken, match=match):
                ledger.check_invariants(session_)
            raise

    monkeypatch.setattr(ledger, "check_batch_invariants", check)
    return seen


def test_a_batch_that_settles_cleanly_passes_both_checks(session, market):
    _sell(session, market)
    _buy(session, market)
    ledger.check_invariants(session)
    session.commit()
    assert session.scalar(select(func.count(Trade.id))) == 1


@pytest.mark.parametrize("grams", [1, -1])
def test_a_split_child_of_the_wrong_weight_is_caught(session, market, monkeypatch, grams):
    _sell(session, market)
    session.commit()

    def damage(session_, context):
        remainder = next(r for r in session_.scalars(select(Receipt).where(Receipt.parent_id.is_not(None)))
                         if r.status == "encumbered")
        remainder.net_grams += grams

    _damage_inside_the_batch(monkeypatch, damage)
    seen = _both_checks_refuse(session, monkeypatch, "product IN99995")
    with pytest.raises(ledger.LedgerInvariantBroken, match="product IN99995: live receipts moved"):
        _buy(session, market)
    assert "account" in seen["batch"]  # the seller's metal no longer matches the receipts it owns, either
    session.rollback()
    assert session.scalar(select(func.count(Trade.id))) == 0
    assert session.scalar(select(Order.open_lots).where(Order.idempotency_key == "s1")) == 10


def test_a_balance_moved_without_a_posting_is_caught_even_when_the_asset_still_sums_to_zero(session, market,
                                                                                              monkeypatch):
    _sell(session, market)
    session.commit()
    buyer, seller = get_account(session, "M002/C01").id, get_account(session, "M001").id

    def damage(session_, context):
        accounts = {a.holder_id: a for a in session_.scalars(select(LedgerAccount).where(
            LedgerAccount.kind == ledger.CASH, LedgerAccount.holder_id.in_((buyer, seller))))}
        accounts[buyer].balance += 7
        accounts[seller].balance -= 7

    _damage_inside_the_batch(monkeypatch, damage)
    _both_checks_refuse(session, monkeypatch, "cached balance")
    with pytest.raises(ledger.LedgerInvariantBroken, match="cached balance moved by"):
        _buy(session, market)
    session.rollback()
    assert session.scalar(select(func.count(Trade.id))) == 0


def test_a_receipt_given_to_the_wrong_owner_is_caught(session, market, monkeypatch):
    _sell(session, market)
    session.commit()
    other = get_account(session, "M002/C02").id

    def damage(session_, context):
        delivered = session_.scalar(select(Receipt).where(Receipt.status == "transferred"))
        delivered.owner_account_id = other

    _damage_inside_the_batch(monkeypatch, damage)
    _both_checks_refuse(session, monkeypatch, f"account {other} product IN99995")
    with pytest.raises(ledger.LedgerInvariantBroken, match=f"account {other} product IN99995: ledger moved 0 g"):
        _buy(session, market)
    session.rollback()
    assert session.scalar(select(func.count(Trade.id))) == 0


def test_damage_outside_any_batch_is_left_to_the_whole_book_check(session, market):
    """Bounded means the batch check does not rescan receipts it did not change: a weight corrupted behind the
    ledger's back (no batch involved) is found by the whole-book check, which end of day runs."""
    _sell(session, market)
    session.commit()
    other = session.scalar(select(Receipt).where(Receipt.number == "KM01IN99995000002"))
    other.net_grams += 1
    session.flush()
    _buy(session, market)  # this batch moved neither that receipt nor any account of its owner's
    with pytest.raises(ledger.LedgerInvariantBroken, match="product IN99995"):
        ledger.check_invariants(session)
    session.rollback()
