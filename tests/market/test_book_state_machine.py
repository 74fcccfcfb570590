"""Hypothesis drives the core with random orders, cancels, amends, deposits and auctions, and after every step
checks the book against an independent model built only from the events: never crossed at rest, price–time
priority on every fill, every lot accounted for, cash and receipt weight conserved."""
from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from ingot.market.engine import commands as c
from ingot.market.engine.core import MatchingCore
from ingot.market.engine.events import (
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    SettlementInstruction,
    TradeExecuted,
)
from tests.market.helpers import MEMBERS, PRODUCT, SETTLEMENT, T0, TICK, free_receipts, setup_commands

members = st.sampled_from(MEMBERS)
offsets = st.integers(min_value=-6, max_value=6)
lots = st.integers(min_value=1, max_value=15)


class BookMachine(RuleBasedStateMachine):
    @initialize()
    def open_market(self):
        self.core = MatchingCore()
        self.counter = 0
        self.model: dict[int, dict] = {}  # order id -> {side, price, open, priority, member}
        self.cash_in = 0
        self.grams_in = 0
        for command in setup_commands(cash_fen=3_000_000_000, receipts_per_member=4, lots_per_receipt=25):
            assert self.core.apply(command).ack.accepted
            if isinstance(command, c.DepositCash):
                self.cash_in += command.amount_fen
            if isinstance(command, c.RegisterReceipt):
                self.grams_in += command.weight_grams

    def key(self) -> str:
        self.counter += 1
        return f"sm-{self.counter}"

    def submit(self, command):
        before = {oid: dict(entry) for oid, entry in self.model.items()}
        outcome = self.core.apply(command)
        for event in outcome.events:
            if isinstance(event, OrderAccepted):
                self.model[event.order_id] = {"side": event.side, "price": event.price_fen, "open": event.lots,
                                              "priority": event.order_id, "member": event.member_id}
            elif isinstance(event, TradeExecuted):
                self.model[event.buy_order_id]["open"] -= event.lots
                self.model[event.sell_order_id]["open"] -= event.lots
            elif isinstance(event, OrderCancelled):
                assert self.model[event.order_id]["open"] == event.lots
                self.model[event.order_id]["open"] = 0
            elif isinstance(event, OrderAmended):
                entry = self.model[event.order_id]
                entry["open"], entry["price"] = event.lots, event.price_fen
                if not event.kept_priority:
                    entry["priority"] = event.sequence
        self.check_priority_of_fills(outcome, before)
        for oid in [oid for oid, entry in self.model.items() if entry["open"] <= 0]:
            assert self.model[oid]["open"] == 0, "an order traded more than it had"
            del self.model[oid]
        return outcome

    def check_priority_of_fills(self, outcome, before):
        """No order left resting after the command may have been entitled to a fill ahead of one that traded."""
        for trade in outcome.events:
            if not isinstance(trade, TradeExecuted) or trade.aggressor == "A":
                continue
            resting_id = trade.sell_order_id if trade.aggressor == c.BUY else trade.buy_order_id
            resting = before.get(resting_id)
            if resting is None:  # the amended order itself may be the resting party of nothing; skip new ones
                continue
            for oid, order in self.core.orders.items():
                if order.side != resting["side"]:
                    continue
                better = order.price < trade.price_fen if order.side == c.SELL else order.price > trade.price_fen
                earlier = order.price == trade.price_fen and order.priority < resting["priority"]
                assert not (better or earlier) or oid not in before, (
                    f"order {oid} was skipped in favour of {resting_id}")

    @rule(member=members, size=lots, offset=offsets, tif=st.sampled_from([c.DAY, c.GTC, c.IOC, c.FOK]))
    def limit_buy(self, member, size, offset, tif):
        self.submit(c.NewOrder(self.key(), T0, member, PRODUCT, c.BUY, size, SETTLEMENT + offset * TICK,
                               c.LIMIT, tif))

    @rule(member=members, size=lots, offset=offsets, tif=st.sampled_from([c.DAY, c.GTC, c.IOC, c.FOK]),
          how_many=st.integers(min_value=1, max_value=2))
    def limit_sell(self, member, size, offset, tif, how_many):
        receipts = tuple(free_receipts(self.core, member)[:how_many])
        self.submit(c.NewOrder(self.key(), T0, member, PRODUCT, c.SELL, size, SETTLEMENT + offset * TICK,
                               c.LIMIT, tif, receipts))

    @rule(member=members, size=lots, side=st.sampled_from([c.BUY, c.SELL]), tif=st.sampled_from([c.IOC, c.FOK]))
    def market_order(self, member, size, side, tif):
        protection = SETTLEMENT + (8 if side == c.BUY else -8) * TICK
        receipts = tuple(free_receipts(self.core, member)[:2]) if side == c.SELL else ()
        self.submit(c.NewOrder(self.key(), T0, member, PRODUCT, side, size, protection, c.MARKET, tif, receipts))

    @rule(pick=st.integers(min_value=0, max_value=10_000))
    def cancel(self, pick):
        if not self.core.orders:
            return
        order = self.core.orders[sorted(self.core.orders)[pick % len(self.core.orders)]]
        assert self.submit(c.CancelOrder(self.key(), T0, order.member_id, order.order_id)).ack.accepted

    @rule(pick=st.integers(min_value=0, max_value=10_000), size=lots, offset=offsets)
    def amend(self, pick, size, offset):
        if not self.core.orders:
            return
        order = self.core.orders[sorted(self.core.orders)[pick % len(self.core.orders)]]
        self.submit(c.AmendOrder(self.key(), T0, order.member_id, order.order_id, size, SETTLEMENT + offset * TICK))

    @rule(member=members, amount=st.integers(min_value=1, max_value=10**9))
    def deposit(self, member, amount):
        assert self.submit(c.DepositCash(self.key(), T0, member, amount)).ack.accepted
        self.cash_in += amount

    @rule(buyer=members, seller=members, size=lots, bid=offsets, ask=offsets)
    def reopen_through_auction(self, buyer, seller, size, bid, ask):
        for action in (c.CLOSE, c.OPEN_AUCTION):
            assert self.submit(c.SessionControl(self.key(), T0, PRODUCT, action)).ack.accepted
        self.submit(c.NewOrder(self.key(), T0, buyer, PRODUCT, c.BUY, size, SETTLEMENT + bid * TICK))
        self.submit(c.NewOrder(self.key(), T0, seller, PRODUCT, c.SELL, size, SETTLEMENT + ask * TICK,
                               receipt_ids=tuple(free_receipts(self.core, seller)[:2])))
        expected_price, expected_lots = MatchingCore.auction_price(self.core.products[PRODUCT])
        outcome = self.submit(c.SessionControl(self.key(), T0, PRODUCT, c.UNCROSS))
        prices = {e.price_fen for e in outcome.events if isinstance(e, TradeExecuted)}
        if expected_lots and not any(isinstance(e, OrderCancelled) for e in outcome.events):
            assert prices == {expected_price}
            assert sum(e.lots for e in outcome.events if isinstance(e, TradeExecuted)) == expected_lots
        assert self.submit(c.SessionControl(self.key(), T0, PRODUCT, c.CONTINUOUS)).ack.accepted

    @invariant()
    def book_matches_model_and_balances(self):
        if not hasattr(self, "core"):
            return
        core = self.core
        core.check_invariants()
        assert {oid: entry["open"] for oid, entry in self.model.items()} == {
            oid: order.open_lots for oid, order in core.orders.items()}
        bid, ask = core.best_bid(PRODUCT), core.best_ask(PRODUCT)
        assert not (bid and ask and bid >= ask), "book crossed at rest"
        cash = sum(m.available_fen + m.locked_fen for m in core.members.values()) + core.centre_fees_fen
        assert cash == self.cash_in
        grams = sum(r.weight_grams for r in core.receipts.values() if r.status == "live")
        assert grams == self.grams_in


BookMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=50, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])
TestBook = BookMachine.TestCase


def test_settlement_instructions_balance_on_a_long_random_run():
    """Summing every settlement instruction reproduces the cash moved: buyers pay what sellers and centre get."""
    from tests.market.helpers import random_stream

    core = MatchingCore()
    for command in setup_commands():
        core.apply(command)
    paid = received = fees = 0
    for command in random_stream(7, 1500):
        for event in core.apply(command).events:
            if isinstance(event, SettlementInstruction):
                paid += event.buyer_pays_fen
                received += event.seller_receives_fen
                fees += event.centre_receives_fen
                assert sum(d.lots for d in event.receipts) > 0
    assert paid == received + fees and fees == core.centre_fees_fen and core.trade_count > 100
    core.check_invariants()
