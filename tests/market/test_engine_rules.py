"""Matching rules of the core, one behaviour per test, on a small hand-made market."""
from __future__ import annotations

import pytest

from ingot.market.engine import commands as c
from ingot.market.engine.core import MatchingCore
from ingot.market.engine.events import (
    AuctionUncrossed,
    OrderCancelled,
    ReceiptSplit,
    SettlementInstruction,
    TradeExecuted,
)
from tests.market.helpers import free_receipts, PRODUCT, SETTLEMENT, T0, TICK, UNITS_PER_LOT, receipt_id, setup_commands

P = SETTLEMENT


@pytest.fixture()
def core() -> MatchingCore:
    core = MatchingCore()
    for command in setup_commands():
        assert core.apply(command).ack.accepted
    return core


class Keys:
    def __init__(self):
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"t-{self.count}"


key = Keys()


def buy(core, member, lots, price, tif=c.DAY, order_type=c.LIMIT):
    return core.apply(c.NewOrder(key(), T0 + key.count, member, PRODUCT, c.BUY, lots, price, order_type, tif))


def sell(core, member, lots, price, receipts=None, tif=c.DAY, order_type=c.LIMIT):
    receipts = receipts if receipts is not None else (free_receipts(core, member)[0],)
    return core.apply(c.NewOrder(key(), T0 + key.count, member, PRODUCT, c.SELL, lots, price, order_type, tif,
                                 tuple(receipts)))


def trades(outcome) -> list[TradeExecuted]:
    return [e for e in outcome.events if isinstance(e, TradeExecuted)]


def test_price_then_time_priority(core):
    first = sell(core, "M1", 5, P + TICK).ack.order_id
    second = sell(core, "M2", 5, P + TICK).ack.order_id
    better = sell(core, "M3", 5, P).ack.order_id
    outcome = buy(core, "M4", 12, P + TICK)
    fills = [(t.sell_order_id, t.lots, t.price_fen) for t in trades(outcome)]
    assert fills == [(better, 5, P), (first, 5, P + TICK), (second, 2, P + TICK)]
    assert outcome.ack.status == "filled" and outcome.ack.filled_lots == 12
    assert core.queue(PRODUCT, c.SELL, P + TICK) == [second]
    core.check_invariants()


def test_trade_settles_delivery_versus_payment_with_fees(core):
    seller_before = core.members["M1"].available_fen
    buyer_before = core.members["M2"].available_fen
    sell(core, "M1", 3, P)
    outcome = buy(core, "M2", 3, P + 2 * TICK)
    [instruction] = [e for e in outcome.events if isinstance(e, SettlementInstruction)]
    notional = P * 3 * UNITS_PER_LOT
    assert instruction.notional_fen == notional
    assert instruction.buyer_fee_fen == 3 * 300 + -(-notional * 150 // 1_000_000)
    assert instruction.seller_fee_fen == 3 * 200 + -(-notional * 100 // 1_000_000)
    assert core.members["M2"].available_fen == buyer_before - instruction.buyer_pays_fen
    assert core.members["M2"].locked_fen == 0
    assert core.members["M1"].available_fen == seller_before + instruction.seller_receives_fen
    assert core.centre_fees_fen == instruction.centre_receives_fen
    core.check_invariants()


def test_partial_fill_splits_receipt_with_exact_weights(core):
    parent = core.receipts[receipt_id("M1", 0)]
    weight, lots = parent.weight_grams, parent.lots
    sell(core, "M1", 10, P)
    outcome = buy(core, "M2", 3, P)
    [split] = [e for e in outcome.events if isinstance(e, ReceiptSplit)]
    delivered = core.receipts[split.delivered_id]
    remainder = core.receipts[split.remainder_id]
    assert delivered.weight_grams + remainder.weight_grams == weight
    assert delivered.lots + remainder.lots == lots
    assert delivered.owner_id == "M2" and delivered.encumbered_by == 0
    assert remainder.owner_id == "M1" and remainder.encumbered_by != 0
    assert delivered.parent_id == remainder.parent_id == parent.receipt_id
    assert parent.status == "split"
    core.check_invariants()


def test_whole_receipt_changes_owner_without_split(core):
    rid = receipt_id("M1", 0)
    lots = core.receipts[rid].lots
    sell(core, "M1", lots, P)
    outcome = buy(core, "M2", lots, P)
    assert not [e for e in outcome.events if isinstance(e, ReceiptSplit)]
    assert core.receipts[rid].owner_id == "M2" and core.receipts[rid].encumbered_by == 0


def test_self_trade_prevention_cancels_the_resting_order(core):
    own = sell(core, "M1", 4, P).ack.order_id
    other = sell(core, "M2", 4, P + TICK).ack.order_id
    outcome = buy(core, "M1", 4, P + TICK)
    cancelled = [e for e in outcome.events if isinstance(e, OrderCancelled)]
    assert [(e.order_id, e.reason) for e in cancelled] == [(own, "self_trade")]
    assert [(t.sell_order_id, t.buyer_id, t.seller_id) for t in trades(outcome)] == [(other, "M1", "M2")]
    assert core.receipts[receipt_id("M1", 0)].encumbered_by == 0
    core.check_invariants()


def test_ioc_remainder_is_cancelled_and_cash_released(core):
    before = core.members["M2"].available_fen
    sell(core, "M1", 2, P)
    outcome = buy(core, "M2", 5, P, tif=c.IOC)
    assert outcome.ack.status == "cancelled" and outcome.ack.filled_lots == 2
    assert core.members["M2"].locked_fen == 0
    [instruction] = [e for e in outcome.events if isinstance(e, SettlementInstruction)]
    assert core.members["M2"].available_fen == before - instruction.buyer_pays_fen
    assert core.best_bid(PRODUCT) == 0


def test_fok_that_cannot_fill_changes_no_order(core):
    sell(core, "M1", 2, P)
    sell(core, "M4", 3, P + TICK)  # the buyer's own order would not count
    own = sell(core, "M2", 5, P)
    outcome = buy(core, "M2", 6, P + TICK, tif=c.FOK)
    assert outcome.ack.status == "killed" and outcome.ack.filled_lots == 0
    assert core.queue(PRODUCT, c.SELL, P)[-1] == own.ack.order_id
    assert core.members["M2"].locked_fen == 0
    filled = buy(core, "M3", 5, P + TICK, tif=c.FOK)
    assert filled.ack.status == "filled"


def test_market_order_walks_to_its_protection_price_only(core):
    sell(core, "M1", 2, P)
    sell(core, "M2", 2, P + 5 * TICK)
    outcome = buy(core, "M3", 4, P + 2 * TICK, tif=c.IOC, order_type=c.MARKET)
    assert [t.price_fen for t in trades(outcome)] == [P]
    assert outcome.ack.status == "cancelled" and outcome.ack.filled_lots == 2
    reasons = [e.reason for e in outcome.events if isinstance(e, OrderCancelled)]
    assert reasons == ["market_remainder"]


def test_amend_reduction_keeps_priority(core):
    first = buy(core, "M1", 5, P).ack.order_id
    second = buy(core, "M2", 5, P).ack.order_id
    locked_before = core.members["M1"].locked_fen
    ack = core.apply(c.AmendOrder(key(), T0, "M1", first, 2, P)).ack
    assert ack.status == "amended"
    assert core.queue(PRODUCT, c.BUY, P) == [first, second]
    assert core.members["M1"].locked_fen < locked_before
    assert core.depth(PRODUCT)["bids"] == [(P, 7, 2)]
    core.check_invariants()


@pytest.mark.parametrize("lots, price", [(6, P), (5, P - TICK), (3, P - TICK)])
def test_amend_increase_or_price_change_loses_priority(core, lots, price):
    first = buy(core, "M1", 5, P).ack.order_id
    buy(core, "M2", 5, price)
    assert core.apply(c.AmendOrder(key(), T0, "M1", first, lots, price)).ack.accepted
    assert core.queue(PRODUCT, c.BUY, price)[-1] == first
    core.check_invariants()


def test_amend_to_a_crossing_price_trades(core):
    sell(core, "M1", 3, P + TICK)
    order = buy(core, "M2", 3, P).ack.order_id
    outcome = core.apply(c.AmendOrder(key(), T0, "M2", order, 3, P + TICK))
    assert outcome.ack.status == "filled" and len(trades(outcome)) == 1
    core.check_invariants()


def test_cancel_releases_cash_and_receipts(core):
    cash = core.members["M1"].available_fen
    order = buy(core, "M1", 5, P).ack.order_id
    receipt_order = sell(core, "M1", 5, P + 10 * TICK).ack.order_id
    assert core.apply(c.CancelOrder(key(), T0, "M1", order)).ack.status == "cancelled"
    assert core.apply(c.CancelOrder(key(), T0, "M1", receipt_order)).ack.status == "cancelled"
    assert core.members["M1"].available_fen == cash and core.members["M1"].locked_fen == 0
    assert core.receipts[receipt_id("M1", 0)].encumbered_by == 0
    assert core.depth(PRODUCT) == {"bids": [], "asks": []}


def test_close_expires_day_orders_and_keeps_gtc(core):
    day = buy(core, "M1", 1, P).ack.order_id
    gtc = buy(core, "M1", 1, P, tif=c.GTC).ack.order_id
    outcome = core.apply(c.SessionControl(key(), T0, PRODUCT, c.CLOSE))
    assert [(e.order_id, e.reason) for e in outcome.events if isinstance(e, OrderCancelled)] == [(day, "expired")]
    assert list(core.orders) == [gtc]
    core.check_invariants()


def auction_core(settlement: int = P) -> MatchingCore:
    core = MatchingCore()
    for command in setup_commands(phase=c.OPEN_AUCTION):
        assert core.apply(command).ack.accepted
    return core


def test_auction_accepts_only_resting_limit_orders_and_does_not_match():
    core = auction_core()
    assert buy(core, "M1", 2, P + TICK).ack.status == "resting"
    assert sell(core, "M2", 2, P).ack.status == "resting"
    refused = buy(core, "M1", 2, P, tif=c.IOC).ack
    assert refused.rejection.code == "tif_not_allowed_in_auction"
    assert core.trade_count == 0


def test_auction_price_maximises_volume():
    core = auction_core()
    buy(core, "M1", 5, P + 2 * TICK)
    buy(core, "M1", 5, P)
    sell(core, "M2", 4, P - TICK)
    sell(core, "M2", 4, P + TICK)
    # At P+TICK: demand 5, supply 8 -> 5. At P: demand 10, supply 4 -> 4. At P-TICK: 10 vs 4 -> 4.
    assert MatchingCore.auction_price(core.products[PRODUCT]) == (P + TICK, 5)


def test_auction_price_minimum_imbalance_breaks_volume_ties():
    core = auction_core()
    buy(core, "M1", 6, P + TICK)
    sell(core, "M2", 5, P - TICK)
    sell(core, "M2", 3, P + TICK)
    # P-TICK: 6 vs 5 -> 5, imbalance 1; P+TICK: 6 vs 8 -> 6. Volume decides: P+TICK.
    assert MatchingCore.auction_price(core.products[PRODUCT]) == (P + TICK, 6)
    core2 = auction_core()
    buy(core2, "M1", 5, P + TICK)
    buy(core2, "M3", 2, P - TICK)
    sell(core2, "M2", 5, P - TICK)
    sell(core2, "M4", 1, P + TICK)
    # P-TICK: demand 7, supply 5 -> 5, imbalance 2; P+TICK: demand 5, supply 6 -> 5, imbalance 1.
    assert MatchingCore.auction_price(core2.products[PRODUCT]) == (P + TICK, 5)


def test_auction_price_nearest_reference_breaks_remaining_ties():
    core = auction_core()
    buy(core, "M1", 5, P + 3 * TICK)
    sell(core, "M2", 5, P - 2 * TICK)
    # Every price from P-2T to P+3T executes 5 with no imbalance; P itself is nearest the reference.
    price, volume = MatchingCore.auction_price(core.products[PRODUCT])
    assert volume == 5 and price in (P - 2 * TICK, P + 3 * TICK)
    # Only the orders' own prices are candidates; of those, P-2T is nearer the reference than P+3T.
    assert price == P - 2 * TICK


def test_uncross_executes_at_one_price_and_leaves_book_uncrossed():
    core = auction_core()
    buy(core, "M1", 5, P + 2 * TICK)
    buy(core, "M3", 5, P)
    sell(core, "M2", 4, P - TICK)
    sell(core, "M4", 4, P + TICK)
    outcome = core.apply(c.SessionControl(key(), T0, PRODUCT, c.UNCROSS))
    assert {t.price_fen for t in trades(outcome)} == {P + TICK}
    assert sum(t.lots for t in trades(outcome)) == 5
    assert [e.price_fen for e in outcome.events if isinstance(e, AuctionUncrossed)] == [P + TICK]
    assert core.best_bid(PRODUCT) < core.best_ask(PRODUCT)
    assert core.products[PRODUCT].phase == "auction_done"
    assert buy(core, "M1", 1, P).ack.rejection.code == "market_closed"
    assert core.apply(c.SessionControl(key(), T0, PRODUCT, c.CONTINUOUS)).ack.accepted
    core.check_invariants()


def test_close_during_the_call_auction_uncrosses_first_so_gtc_orders_never_rest_crossed():
    core = auction_core()
    gtc_buy = buy(core, "M1", 3, P + TICK, tif=c.GTC).ack.order_id
    buy(core, "M3", 2, P + TICK)
    sell(core, "M2", 4, P, tif=c.GTC)
    outcome = core.apply(c.SessionControl(key(), T0, PRODUCT, c.CLOSE))
    assert outcome.ack.accepted and core.products[PRODUCT].phase == "closed"
    assert sum(t.lots for t in trades(outcome)) == 4 and outcome.ack.trade_ids
    assert len({t.price_fen for t in trades(outcome)}) == 1
    # The DAY buy's unfilled lot expires; the GTC buy's filled part traded, its rest (if any) rests uncrossed.
    assert all(order.tif == c.GTC for order in core.orders.values())
    assert core.best_ask(PRODUCT) == 0 or core.best_bid(PRODUCT) < core.best_ask(PRODUCT)
    assert gtc_buy not in core.orders or core.orders[gtc_buy].open_lots < 3
    core.check_invariants()
    # The next day opens on an uncrossed book.
    assert core.apply(c.SessionControl(key(), T0, PRODUCT, c.CONTINUOUS)).ack.accepted
    core.check_invariants()


def test_uncross_self_match_cancels_the_later_order():
    core = auction_core()
    early = sell(core, "M1", 3, P).ack.order_id
    late = buy(core, "M1", 3, P).ack.order_id
    buy(core, "M2", 3, P)
    outcome = core.apply(c.SessionControl(key(), T0, PRODUCT, c.UNCROSS))
    assert [(e.order_id, e.reason) for e in outcome.events if isinstance(e, OrderCancelled)] == [(late, "self_trade")]
    assert [(t.sell_order_id, t.buyer_id) for t in trades(outcome)] == [(early, "M2")]
    core.check_invariants()


def test_resubmission_returns_first_result_and_no_second_order(core):
    command = c.NewOrder("same-key", T0, "M1", PRODUCT, c.BUY, 3, P, c.LIMIT, c.DAY)
    first = core.apply(command)
    again = core.apply(command)
    assert again.ack is first.ack and not again.fresh and again.events == []
    changed = c.NewOrder("same-key", T0, "M1", PRODUCT, c.BUY, 9, P - TICK, c.LIMIT, c.DAY)
    assert core.apply(changed).ack is first.ack
    assert list(core.orders) == [first.ack.order_id]
    other_member = core.apply(c.NewOrder("same-key", T0, "M2", PRODUCT, c.BUY, 1, P, c.LIMIT, c.DAY))
    assert other_member.fresh and other_member.ack.order_id != first.ack.order_id


def test_refused_key_can_be_retried_after_the_cause_is_fixed(core):
    command = c.NewOrder("retry", T0, "M1", PRODUCT, c.BUY, 3, P, c.LIMIT, c.DAY)
    assert core.apply(c.SetMemberSuspended("s1", T0, "M1", True)).ack.accepted
    assert core.apply(command).ack.rejection.code == "member_suspended"
    assert core.apply(c.SetMemberSuspended("s2", T0, "M1", False)).ack.accepted
    assert core.apply(command).ack.status == "resting"


def test_buy_lock_covers_fees_and_price_improvement_is_released(core):
    sell(core, "M1", 4, P)
    outcome = buy(core, "M2", 4, P + 10 * TICK)
    [instruction] = [e for e in outcome.events if isinstance(e, SettlementInstruction)]
    assert core.members["M2"].locked_fen == 0
    assert instruction.notional_fen == P * 4 * UNITS_PER_LOT
    core.check_invariants()


def test_command_times_are_utc_microseconds_and_naive_times_are_refused():
    from datetime import datetime, timedelta, timezone

    shanghai = timezone(timedelta(hours=8))
    moment = datetime(2026, 11, 23, 9, 30, 0, 123456, tzinfo=shanghai)
    micros = c.utc_micros(moment)
    assert c.from_utc_micros(micros) == moment
    assert c.from_utc_micros(micros).tzinfo == timezone.utc
    assert micros == c.utc_micros(moment.astimezone(timezone.utc))
    with pytest.raises(ValueError):
        c.utc_micros(datetime(2026, 11, 23, 9, 30))


def test_suspension_refuses_new_orders_but_lets_risk_go_down(core):
    order = buy(core, "M1", 3, P).ack.order_id
    assert core.apply(c.SetProductSuspended(key(), T0, PRODUCT, True)).ack.accepted
    assert buy(core, "M2", 1, P).ack.rejection.code == "product_suspended"
    assert core.apply(c.AmendOrder(key(), T0, "M1", order, 2, P)).ack.rejection.code == "product_suspended"
    assert core.apply(c.CancelOrder(key(), T0, "M1", order)).ack.status == "cancelled"
    assert core.apply(c.SetProductSuspended(key(), T0, PRODUCT, False)).ack.accepted
    assert buy(core, "M2", 1, P).ack.status == "resting"


def test_receipt_leaving_the_market_keeps_metal_balanced(core):
    rid = receipt_id("M3", 5)
    grams = core.receipts[rid].weight_grams
    assert core.apply(c.DeregisterReceipt(key(), T0, rid)).ack.accepted
    assert core.grams_out == grams and core.receipts[rid].status == "out"
    refused = sell(core, "M3", 1, P, receipts=(rid,)).ack.rejection
    assert refused.code == "unknown_receipt"
    core.check_invariants()


def test_amend_during_the_auction_requeues_without_matching():
    core = auction_core()
    sell(core, "M2", 3, P + TICK)
    first = buy(core, "M1", 3, P).ack.order_id
    second = buy(core, "M3", 3, P).ack.order_id
    outcome = core.apply(c.AmendOrder(key(), T0, "M1", first, 3, P + TICK))
    assert outcome.ack.status == "amended" and not trades(outcome)
    assert core.queue(PRODUCT, c.BUY, P) == [second] and core.queue(PRODUCT, c.BUY, P + TICK) == [first]
    assert core.best_bid(PRODUCT) >= core.best_ask(PRODUCT)  # crossed during the call, as it may be
    core.check_invariants()


def test_snapshot_taken_during_the_call_uncrosses_identically():
    core = auction_core()
    buy(core, "M1", 5, P + 2 * TICK)
    buy(core, "M3", 4, P)
    sell(core, "M2", 6, P - TICK)
    sell(core, "M4", 2, P + TICK)
    restored = MatchingCore.from_state(core.to_state())
    uncross = c.SessionControl(key(), T0, PRODUCT, c.UNCROSS)
    first, second = core.apply(uncross), restored.apply(uncross)
    assert first.ack == second.ack and first.events == second.events
    assert core.state_hash() == restored.state_hash()


def test_withdrawal_only_from_available_cash(core):
    available = core.members["M4"].available_fen
    buy(core, "M4", 2, P)
    locked = core.members["M4"].locked_fen
    assert locked > 0
    too_much = core.apply(c.WithdrawCash(key(), T0, "M4", available - locked + 1)).ack
    assert too_much.rejection.code == "insufficient_cash"
    assert core.apply(c.WithdrawCash(key(), T0, "M4", available - locked)).ack.accepted
    assert core.members["M4"].available_fen == 0
    core.check_invariants()
