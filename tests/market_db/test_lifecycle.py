"""Products versioned by notice date, receipts' liens and exits, money against the custodian, reconciliation,
stock breaks, suspension, the opening auction, and rebuilding the core from a snapshot."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from ingot.core.errors import DomainError
from ingot.market import accounts, gateway, ledger, products, receipts, trading
from ingot.market.common import MarketRejected
from ingot.market.models import CashReconciliation, EngineCommand, MarketAlarm, Receipt
from tests.market_db.helpers import INDIUM_RULES, NOW, build_market, fund, open_continuous

FIRST = "KM01IN99995000001"
SECOND = "KM01IN99995000002"


@pytest.fixture
def market(session):
    gateway.forget_cores()
    built = build_market(session)
    session.commit()
    return built


def _sell(session, market, receipt=FIRST, lots=10, price=150_000, key="s", now=NOW):
    return trading.place_order(session, market.seller, account="M001", product="IN99995", side="S", lots=lots,
                               price_fen=price, key=key, receipts=[receipt], now=now)


def test_rule_versions_take_effect_from_their_notice_never_retroactively(session, market):
    today = NOW.date()
    with pytest.raises(DomainError) as refused:
        products.announce_version(session, market.operator, "IN99995", effective_on=today, rules=INDIUM_RULES, now=NOW)
    assert refused.value.code == "retroactive"
    coarser = {**INDIUM_RULES, "tick_fen": 500, "notice_ref": "公告〔2026〕2号"}
    version = products.announce_version(session, market.operator, "IN99995", effective_on=today + timedelta(days=1),
                                        rules=coarser, now=NOW)
    assert version.version == 2 and version.notice_date == today
    with pytest.raises(DomainError) as refused:
        products.announce_version(session, market.operator, "IN99995", effective_on=today + timedelta(days=1),
                                  rules=coarser, now=NOW)
    assert refused.value.code == "not_after_latest"
    product = products.get_product(session, "IN99995")
    assert products.version_in_force(session, product, today).tick_fen == 100
    assert products.version_in_force(session, product, today + timedelta(days=1)).tick_fen == 500

    open_continuous(session, market)
    assert _sell(session, market, price=150_100, key="today").status == "resting"
    tomorrow = NOW + timedelta(days=1)
    with pytest.raises(MarketRejected) as refused:
        _sell(session, market, receipt=SECOND, price=150_100, key="tomorrow", now=tomorrow)
    assert refused.value.code == "off_tick_price"


def test_a_receipt_carries_at_most_one_lien(session, market):
    open_continuous(session, market)
    receipts.pledge_receipt(session, market.seller, FIRST, "某银行昆明分行", now=NOW)
    with pytest.raises(DomainError) as refused:
        _sell(session, market)
    assert refused.value.code == "receipt_pledged"
    with pytest.raises(DomainError) as refused:
        receipts.pledge_receipt(session, market.seller, FIRST, "another bank", now=NOW)
    assert refused.value.code == "receipt_encumbered"
    with pytest.raises(DomainError) as refused:
        receipts.cancel_for_load_out(session, market.seller, FIRST, now=NOW)
    assert refused.value.code == "receipt_encumbered"
    receipts.release_pledge(session, market.operator, FIRST, now=NOW)
    order = _sell(session, market)
    with pytest.raises(DomainError) as refused:
        receipts.pledge_receipt(session, market.seller, FIRST, "bank", now=NOW)
    assert refused.value.code == "receipt_encumbered"
    trading.cancel_order(session, market.seller, order.id, key="c", now=NOW)
    assert receipts.get_receipt(session, FIRST).status == "registered"


def test_load_out_invalidation_and_metal_conservation(session, market):
    receipts.cancel_for_load_out(session, market.seller, FIRST, now=NOW)
    assert receipts.get_receipt(session, FIRST).status == "cancelled"
    with pytest.raises(DomainError):
        receipts.confirm_out(session, market.seller, FIRST, now=NOW)  # only the warehouse loads out
    receipts.confirm_out(session, market.warehouse, FIRST, now=NOW)
    receipts.invalidate_receipt(session, market.warehouse, SECOND, "杂质超标 / impurities above the grade", now=NOW)
    statuses = dict(session.execute(select(Receipt.number, Receipt.status)).all())
    assert statuses == {FIRST: "out", SECOND: "invalidated"}
    assert ledger.balance(session, ledger.LOAD_OUT, "IN99995") == 100_000
    assert ledger.balance(session, ledger.INVALIDATED, "IN99995") == 100_037
    assert ledger.balance(session, ledger.METAL, "IN99995", accounts.get_account(session, "M001").id) == 0
    ledger.check_invariants(session)
    open_continuous(session, market)
    with pytest.raises(MarketRejected) as refused:
        _sell(session, market, receipt=SECOND)
    assert refused.value.code == "unknown_receipt"


def test_non_conforming_metal_and_foreign_warehouses_are_refused(session, market):
    base = dict(warehouse_code="KM01", product_code="IN99995", owner_account="M001", lot_no="X", net_grams=100_000,
                assay_certificate="A", location="B-1", now=NOW)
    with pytest.raises(DomainError) as refused:
        receipts.register_receipt(session, market.warehouse, assay={"In_pct": "99.990"}, **base)
    assert refused.value.code == "assay_below_spec"
    with pytest.raises(DomainError) as refused:
        receipts.register_receipt(session, market.warehouse, assay={"In_pct": "99.999"}, **{**base, "net_grams": 9_999})
    assert refused.value.code == "below_one_lot"
    with pytest.raises(DomainError) as refused:
        receipts.register_receipt(session, market.seller, assay={"In_pct": "99.999"}, **base)
    assert refused.value.status_code == 403


def test_stock_report_break_raises_an_alarm(session, market):
    ok = receipts.report_stock(session, market.warehouse, warehouse_code="KM01", product_code="IN99995",
                               day=NOW.date(), physical_grams=200_037)
    assert ok.status == "ok"
    assert session.scalar(select(func.count(MarketAlarm.id))) == 0
    broken = receipts.report_stock(session, market.warehouse, warehouse_code="KM01", product_code="IN99995",
                                   day=NOW.date() + timedelta(days=1), physical_grams=199_000)
    assert broken.status == "break" and broken.registry_grams == 200_037
    alarm = session.scalar(select(MarketAlarm))
    assert alarm.kind == "stock_break" and "199000" in alarm.message_en


def test_money_moves_only_against_the_custodian_statement(session, market):
    with pytest.raises(DomainError) as refused:
        accounts.deposit(session, market.operator, "NO-SUCH-LINE", now=NOW)
    assert refused.value.code == "unknown_bank_line"
    with pytest.raises(DomainError) as refused:
        accounts.deposit(session, market.operator, "BANK-0000", now=NOW)
    assert refused.value.status_code == 409  # already booked
    accounts.import_bank_line(session, market.operator, bank_ref="OUT-1", account_engine_id="M002/C01",
                              value_date=NOW.date(), amount_fen=-30_000_000)
    with pytest.raises(DomainError) as refused:
        accounts.deposit(session, market.operator, "OUT-1", now=NOW)
    assert refused.value.code == "direction_mismatch"
    with pytest.raises(MarketRejected) as refused:
        accounts.withdraw(session, market.operator, "OUT-1", now=NOW)
    assert refused.value.code == "insufficient_cash"
    accounts.import_bank_line(session, market.operator, bank_ref="OUT-2", account_engine_id="M002/C01",
                              value_date=NOW.date(), amount_fen=-5_000_000)
    accounts.withdraw(session, market.operator, "OUT-2", now=NOW)
    assert ledger.balance(session, ledger.CASH, ledger.CNY, accounts.get_account(session, "M002/C01").id) == 15_000_000
    assert ledger.balance(session, ledger.BANK, ledger.CNY) == -(3 * 20_000_000 - 5_000_000)
    ledger.check_invariants(session)


def test_daily_reconciliation_flags_breaks_and_the_regulator_sees_its_region(session, market):
    day = NOW.date()
    for engine_id, closing in (("M001", 20_000_000), ("M002", 0), ("M002/C01", 20_000_000), ("M002/C02", 19_999_900)):
        accounts.import_bank_balance(session, market.operator, account_engine_id=engine_id, day=day, closing_fen=closing)
    rows = {r.account_id: r.status for r in accounts.reconcile_cash(session, market.operator, day)}
    assert sorted(rows.values()) == ["break", "ok", "ok", "ok"]
    assert rows[accounts.get_account(session, "M002/C02").id] == "break"
    assert session.scalar(select(MarketAlarm.kind)) == "cash_break"
    with pytest.raises(DomainError):
        accounts.reconcile_cash(session, market.regulator, day)
    from ingot.market.common import scope_of

    scope = scope_of(session, market.regulator)  # 510000: sees M002's accounts, not M001 in Yunnan
    visible = [r for r in session.scalars(select(CashReconciliation)) if scope.sees_account(r.account_id)]
    assert {accounts.get_account(session, e).id for e in ("M002", "M002/C01", "M002/C02")} == {
        r.account_id for r in visible}


def test_clients_see_only_their_own_accounts(session, market):
    from ingot.market.common import scope_of

    ids = {e: accounts.get_account(session, e).id for e in ("M001", "M002", "M002/C01", "M002/C02")}
    assert scope_of(session, market.client_a).account_ids == {ids["M002/C01"]}
    assert scope_of(session, market.client_b).account_ids == {ids["M002/C02"]}
    assert scope_of(session, market.broker).account_ids == {ids["M002"], ids["M002/C01"], ids["M002/C02"]}
    with pytest.raises(DomainError) as refused:
        accounts.accessible_account(session, market.client_a, "M002/C02")
    assert refused.value.status_code == 404
    with pytest.raises(DomainError) as refused:
        accounts.add_client(session, market.operator, "M001", code="C9", name="x", now=NOW)
    assert refused.value.code == "member_has_no_clients"


def test_suspended_members_and_products_are_refused(session, market):
    open_continuous(session, market)
    accounts.set_member_suspended(session, market.operator, "M002", True, now=NOW)
    with pytest.raises(MarketRejected) as refused:
        trading.place_order(session, market.client_a, account="M002/C01", product="IN99995", side="B", lots=1,
                            price_fen=150_000, key="k", now=NOW)
    assert refused.value.code == "member_suspended"
    products.set_product_suspended(session, market.operator, "IN99995", True, now=NOW)
    with pytest.raises(MarketRejected) as refused:
        _sell(session, market)
    assert refused.value.code == "product_suspended"


def test_opening_auction_uncross_settles(session, market):
    trading.session_control(session, market.operator, "open_auction", now=NOW)
    _sell(session, market, lots=5, price=149_000)
    trading.place_order(session, market.client_a, account="M002/C01", product="IN99995", side="B", lots=3,
                        price_fen=151_000, key="b", now=NOW)
    result = trading.session_control(session, market.operator, "uncross", now=NOW)
    assert len(result[0]["trades"]) == 1
    trading.session_control(session, market.operator, "continuous", now=NOW)
    ledger.check_invariants(session)
    assert trading.phases(session)["IN99995"] == "continuous"


def test_the_core_rebuilds_from_snapshot_and_journal(session, market):
    open_continuous(session, market)
    _sell(session, market, lots=10, price=150_000)
    trading.place_order(session, market.client_a, account="M002/C01", product="IN99995", side="B", lots=2,
                        price_fen=150_000, key="b1", now=NOW)
    gateway.snapshot(session)
    trading.place_order(session, market.client_b, account="M002/C02", product="IN99995", side="B", lots=1,
                        price_fen=149_000, key="b2", now=NOW)
    session.commit()
    before = gateway.read_core(session, lambda core: core.state_hash())
    gateway.forget_cores()  # as a fresh process would start
    assert gateway.read_core(session, lambda core: core.state_hash()) == before
    assert session.scalar(select(func.count(EngineCommand.sequence))) > 0
    fund(session, market.operator, "M002/C02", 1_000, "LATE-1")
    assert accounts.cash_position(session, accounts.get_account(session, "M002/C02"))["consistent"]


def test_ledger_invariants_catch_a_tampered_receipt_and_refuse_unbalanced_entries(session, market):
    receipt = receipts.get_receipt(session, FIRST)
    receipt.net_grams += 1
    with pytest.raises(ledger.LedgerInvariantBroken) as broken:
        ledger.check_invariants(session)
    assert "IN99995" in str(broken.value)
    receipt.net_grams -= 1
    cash = ledger.cash_of(session, accounts.get_account(session, "M001").id)
    with pytest.raises(ledger.UnbalancedEntry):
        ledger.post(session, "bogus", "x", [(cash, 100)])
    with pytest.raises(ledger.UnbalancedEntry):
        ledger.post(session, "bogus", "x", [(cash, 100), (ledger.metal_of(session, 1, "IN99995"), -100)])
    ledger.check_invariants(session)
