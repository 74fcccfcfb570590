"""Every bad input is refused with its stable reason code, a message in both languages, and no change at all."""
from __future__ import annotations

import pytest

from ingot.market.engine import commands as c
from ingot.market.engine.core import MatchingCore
from ingot.market.engine.reasons import MESSAGES
from tests.market.helpers import PRODUCT, SETTLEMENT, T0, TICK, product_definition, receipt_id, setup_commands

P = SETTLEMENT


def market() -> MatchingCore:
    core = MatchingCore()
    for command in setup_commands(cash_fen=50_000_000):
        assert core.apply(command).ack.accepted
    # Some state worth protecting: a resting buy, a resting sell holding a receipt, a suspended member and product.
    extra = [
        c.NewOrder("rest-buy", T0, "M1", PRODUCT, c.BUY, 2, P - TICK),
        c.NewOrder("rest-sell", T0, "M2", PRODUCT, c.SELL, 2, P + TICK, receipt_ids=(receipt_id("M2", 0),)),
        c.AdmitMember("admit-M9", T0, "M9"),
        c.SetMemberSuspended("suspend-M9", T0, "M9", True),
        c.DefineProduct("def-halted", T0, "HALTED", TICK, 1, 10, 100_000),
        c.SetSettlementPrice("ref-halted", T0, "HALTED", P),
        c.SetProductSuspended("suspend-halted", T0, "HALTED", True),
        c.SessionControl("open-halted", T0, "HALTED", c.CONTINUOUS),
    ]
    for command in extra:
        assert core.apply(command).ack.accepted, command
    return core


def order(**changes) -> c.NewOrder:
    values = dict(key="bad", at_us=T0, member_id="M3", product_id=PRODUCT, side=c.BUY, lots=2, price_fen=P,
                  order_type=c.LIMIT, tif=c.DAY, receipt_ids=())
    values.update(changes)
    return c.NewOrder(**values)


def sell_order(**changes) -> c.NewOrder:
    values = dict(side=c.SELL, receipt_ids=(receipt_id("M3", 0),))
    values.update(changes)
    return order(**values)


BAD_INPUTS = [
    ("zero quantity", order(lots=0), "non_positive_quantity"),
    ("negative quantity", order(lots=-3), "non_positive_quantity"),
    ("fractional quantity", order(lots=1.5), "non_positive_quantity"),
    ("over maximum size", order(lots=51), "quantity_above_maximum"),
    ("zero price", order(price_fen=0), "non_positive_price"),
    ("negative price", order(price_fen=-P), "non_positive_price"),
    ("off-tick price", order(price_fen=P + TICK // 2), "off_tick_price"),
    ("above the band", order(price_fen=P * 111 // 100), "price_outside_band"),
    ("below the band", order(price_fen=P * 89 // 100), "price_outside_band"),
    ("off-tick protection price", order(order_type=c.MARKET, tif=c.IOC, price_fen=P + 1), "off_tick_price"),
    ("insufficient cash", order(lots=50), "insufficient_cash"),
    ("insufficient receipts", sell_order(lots=41), "insufficient_receipts"),
    ("sell without receipts", sell_order(receipt_ids=()), "insufficient_receipts"),
    ("someone else's receipt", sell_order(receipt_ids=(receipt_id("M4", 0),)), "receipt_not_owned"),
    ("encumbered receipt", sell_order(member_id="M2", receipt_ids=(receipt_id("M2", 0),)), "receipt_encumbered"),
    ("unknown receipt", sell_order(receipt_ids=("WR-NOPE",)), "unknown_receipt"),
    ("receipt listed twice", sell_order(receipt_ids=(receipt_id("M3", 0),) * 2), "receipt_listed_twice"),
    ("buy with receipts", order(receipt_ids=(receipt_id("M3", 0),)), "no_receipts_for_buy"),
    ("unknown product", order(product_id="XX"), "unknown_product"),
    ("unknown member", order(member_id="M0"), "unknown_member"),
    ("suspended member", order(member_id="M9"), "member_suspended"),
    ("suspended product", order(product_id="HALTED"), "product_suspended"),
    ("bad side", order(side="X"), "invalid_side"),
    ("bad type", order(order_type="stop"), "invalid_order_type"),
    ("bad time in force", order(tif="GTD"), "invalid_tif"),
    ("market order resting", order(order_type=c.MARKET, tif=c.DAY), "market_order_tif"),
    ("empty key", order(key=""), "invalid_key"),
    ("unhashable key", order(key=["k"]), "invalid_key"),
    ("overlong key", order(key="k" * 129), "invalid_key"),
    ("negative time", order(at_us=-1), "invalid_time"),
    ("cancel unknown order", c.CancelOrder("bad", T0, "M3", 99_999), "unknown_order"),
    ("cancel someone else's order", c.CancelOrder("bad", T0, "M3", 0), "not_your_order"),
    ("amend someone else's order", c.AmendOrder("bad", T0, "M3", 0, 1, P), "not_your_order"),
    ("amend to zero", c.AmendOrder("bad", T0, "M1", 0, 0, P - TICK), "non_positive_quantity"),
    ("amend off tick", c.AmendOrder("bad", T0, "M1", 0, 2, P - 1), "off_tick_price"),
    ("amend no change", c.AmendOrder("bad", T0, "M1", 0, 2, P - TICK), "amend_no_change"),
    ("amend beyond cash", c.AmendOrder("bad", T0, "M1", 0, 50, P - TICK), "insufficient_cash"),
    ("amend beyond receipts", c.AmendOrder("bad", T0, "M2", 1, 41, P + TICK), "insufficient_receipts"),
    ("withdraw too much", c.WithdrawCash("bad", T0, "M3", 50_000_001), "insufficient_cash"),
    ("deposit zero", c.DepositCash("bad", T0, "M3", 0), "non_positive_amount"),
    ("deposit to nobody", c.DepositCash("bad", T0, "M0", 5), "unknown_member"),
    ("duplicate receipt", c.RegisterReceipt("bad", T0, receipt_id("M3", 0), PRODUCT, "M3", 10, 1), "receipt_exists"),
    ("receipt without weight", c.RegisterReceipt("bad", T0, "WR-X", PRODUCT, "M3", 0, 1), "invalid_receipt"),
    ("receipt of unknown product", c.RegisterReceipt("bad", T0, "WR-X", "XX", "M3", 10, 1), "unknown_product"),
    ("deregister encumbered", c.DeregisterReceipt("bad", T0, receipt_id("M2", 0)), "receipt_encumbered"),
    ("product twice", product_definition("bad"), "product_exists"),
    ("product with zero tick", product_definition("bad", product_id="NEW", tick_fen=0), "invalid_product_definition"),
    ("member twice", c.AdmitMember("bad", T0, "M1"), "member_exists"),
    ("settlement off tick", c.SetSettlementPrice("bad", T0, PRODUCT, P + 1), "off_tick_price"),
    ("bad session action", c.SessionControl("bad", T0, PRODUCT, "pause"), "invalid_session_action"),
    ("bad transition", c.SessionControl("bad", T0, PRODUCT, c.UNCROSS), "invalid_transition"),
]


@pytest.mark.parametrize("command, code", [(cmd, code) for _, cmd, code in BAD_INPUTS],
                         ids=[name for name, _, _ in BAD_INPUTS])
def test_bad_input_refused_with_reason_and_nothing_changed(command, code):
    core = market()
    # Orders 0 and 1 in BAD_INPUTS stand for the resting buy and sell; map them onto the real ids.
    resting = sorted(core.orders)
    if isinstance(command, (c.CancelOrder, c.AmendOrder)) and command.order_id in (0, 1):
        command.order_id = resting[command.order_id]
    before = core.state_hash()
    sequence = core.sequence
    outcome = core.apply(command)
    rejection = outcome.ack.rejection
    assert rejection is not None and rejection.code == code
    assert rejection.message_zh and rejection.message_en and rejection.message_zh != rejection.message_en
    assert rejection.message("en") == rejection.message_en and rejection.message() == rejection.message_zh
    assert outcome.events == [] and not outcome.fresh
    assert core.sequence == sequence
    assert core.state_hash() == before
    core.check_invariants()


def test_every_reason_has_both_languages():
    for code, (zh, en) in MESSAGES.items():
        assert zh and en and zh != en, code
        assert any("\u4e00" <= ch <= "\u9fff" for ch in zh), code


def test_no_reference_price_refuses_orders():
    core = MatchingCore()
    for command in (product_definition(), c.AdmitMember("a", T0, "M1"), c.DepositCash("d", T0, "M1", 10**12),
                    c.SessionControl("s", T0, PRODUCT, c.CONTINUOUS)):
        assert core.apply(command).ack.accepted
    before = core.state_hash()
    assert core.apply(order(member_id="M1")).ack.rejection.code == "no_reference_price"
    assert core.state_hash() == before


def test_closed_market_refuses_orders():
    core = MatchingCore()
    for command in setup_commands(phase=c.CLOSE):
        assert core.apply(command).ack.accepted
    before = core.state_hash()
    assert core.apply(order()).ack.rejection.code == "market_closed"
    assert core.state_hash() == before
