"""The deterministic matching core: state, pre-trade risk, matching, the opening auction and settlement events.

Pure and single-threaded: no I/O, no clock (time arrives with each command), integer prices (fen per price unit)
and integer quantities (lots). Applying the same commands to the same state always yields the same state, the same
acknowledgements and the same events; ``state_hash`` proves it.

Every handler validates first and mutates afterwards, so a refused command changes nothing: not the book, not the
cash, not the receipts, not the sequence and not the idempotency memory (a refused key may be retried once the cause
is fixed, e.g. after a deposit).

``ReferenceCore`` is the whole core in Python and the reference. ``MatchingCore`` is the core in use: when the C
extension ``_corefast`` is built (``pip install -e .``, see setup.py) it runs new orders and cancels through it on
the very same state objects and hands everything else -- and any command the C code is not sure it would accept --
to the reference code; without the extension, or with ``INGOT_PURE_PYTHON=1``, it is ``ReferenceCore`` itself.
"""
from __future__ import annotations

import hashlib
import json
import os
from bisect import bisect_left, bisect_right
from typing import Any, Callable, NamedTuple
from collections import deque
from heapq import heapify, heappop, heappush

from ingot.market.engine import commands as c
from ingot.market.engine.events import (
    AuctionUncrossed,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    ReceiptDelivery,
    ReceiptSplit,
    SessionChanged,
    SettlementInstruction,
    TradeExecuted,
)
from ingot.market.engine.reasons import MESSAGES, Refused, Rejection

PHASE_CLOSED = "closed"
PHASE_AUCTION = "call_auction"
PHASE_AUCTION_DONE = "auction_done"
PHASE_CONTINUOUS = "continuous"
PHASE_BREAK = "break"

_TRANSITIONS = {
    c.OPEN_AUCTION: ((PHASE_CLOSED,), PHASE_AUCTION),
    c.UNCROSS: ((PHASE_AUCTION,), PHASE_AUCTION_DONE),
    c.CONTINUOUS: ((PHASE_CLOSED, PHASE_AUCTION_DONE, PHASE_BREAK), PHASE_CONTINUOUS),
    c.BREAK: ((PHASE_CONTINUOUS,), PHASE_BREAK),
    c.CLOSE: ((PHASE_AUCTION, PHASE_AUCTION_DONE, PHASE_CONTINUOUS, PHASE_BREAK), PHASE_CLOSED),
}

RECEIPT_LIVE = "live"
RECEIPT_SPLIT = "split"
RECEIPT_OUT = "out"

STATUS_DONE = "done"
STATUS_RESTING = "resting"
STATUS_FILLED = "filled"
STATUS_CANCELLED = "cancelled"
STATUS_KILLED = "killed"
STATUS_AMENDED = "amended"
STATUS_REJECTED = "rejected"

MAX_KEY_LENGTH = 128
_LIMIT_TIFS = frozenset((c.DAY, c.GTC, c.IOC, c.FOK))


class InvariantBroken(Exception):
    """The core's own books disagree with themselves; this is a bug, never a user error."""


class Ack(NamedTuple):
    """The acknowledgement of one command. A resubmission under the same key returns this very value.

    A named tuple rather than a frozen dataclass: it is built once per command, and a frozen dataclass costs
    several times as much to construct."""

    key: str
    member_id: str
    sequence: int
    status: str
    order_id: int = 0
    filled_lots: int = 0
    trade_ids: tuple[int, ...] = ()
    rejection: Rejection | None = None

    @property
    def accepted(self) -> bool:
        return self.rejection is None

    def as_list(self) -> list:
        return [self.key, self.member_id, self.sequence, self.status, self.order_id, self.filled_lots,
                list(self.trade_ids)]

    @classmethod
    def from_list(cls, row: list) -> Ack:
        return cls(row[0], row[1], row[2], row[3], row[4], row[5], tuple(row[6]))


class Outcome:
    """What one ``apply`` produced: the acknowledgement, the events, and whether the command was new (a fresh
    command must be journaled; a duplicate or a refusal must not)."""

    __slots__ = ("ack", "events", "fresh")

    def __init__(self, ack: Ack, events: list, fresh: bool) -> None:
        self.ack = ack
        self.events = events
        self.fresh = fresh


class Member:
    __slots__ = ("member_id", "available_fen", "locked_fen", "suspended")

    def __init__(self, member_id: str) -> None:
        self.member_id = member_id
        self.available_fen = 0
        self.locked_fen = 0
        self.suspended = False


class Receipt:
    __slots__ = ("receipt_id", "product_id", "owner_id", "weight_grams", "lots", "encumbered_by", "parent_id",
                 "children", "status")

    def __init__(self, receipt_id: str, product_id: str, owner_id: str, weight_grams: int, lots: int,
                 parent_id: str = "") -> None:
        self.receipt_id = receipt_id
        self.product_id = product_id
        self.owner_id = owner_id
        self.weight_grams = weight_grams
        self.lots = lots
        self.encumbered_by = 0
        self.parent_id = parent_id
        self.children = 0
        self.status = RECEIPT_LIVE


class Order:
    """A live order. For a buy, ``locked_fen`` is the cash still reserved: the cost bound of filling the whole order
    at its limit (notional plus fee on the cumulative notional) minus what fills have already consumed."""

    __slots__ = ("order_id", "key", "member_id", "product_id", "side", "order_type", "tif", "price", "open_lots",
                 "filled_lots", "priority", "at_us", "locked_fen", "filled_notional", "consumed_fen", "fees_fen",
                 "receipts", "live")

    def __init__(self, order_id: int, key: str, member_id: str, product_id: str, side: str, order_type: str,
                 tif: str, price: int, lots: int, at_us: int) -> None:
        self.order_id = order_id
        self.key = key
        self.member_id = member_id
        self.product_id = product_id
        self.side = side
        self.order_type = order_type
        self.tif = tif
        self.price = price
        self.open_lots = lots
        self.filled_lots = 0
        self.priority = order_id
        self.at_us = at_us
        self.locked_fen = 0
        self.filled_notional = 0
        self.consumed_fen = 0
        self.fees_fen = 0
        self.receipts: list[Receipt] = []
        self.live = True


class Level:
    __slots__ = ("price", "orders", "open_lots", "count")

    def __init__(self, price: int) -> None:
        self.price = price
        self.orders: deque[Order] = deque()
        self.open_lots = 0
        self.count = 0


class BookSide:
    """One side of a book: price levels in a dict, best price found through a heap with lazy deletion (a price
    whose level is gone is skipped when it reaches the top). Bids are stored negated so both sides are min-heaps."""

    __slots__ = ("is_bid", "levels", "heap")

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.levels: dict[int, Level] = {}
        self.heap: list[int] = []

    def best(self) -> Level | None:
        heap = self.heap
        levels = self.levels
        while heap:
            key = heap[0]
            level = levels.get(-key if self.is_bid else key)
            if level is not None:
                return level
            heappop(heap)
        return None

    def add(self, order: Order) -> None:
        price = order.price
        level = self.levels.get(price)
        if level is None:
            level = self.levels[price] = Level(price)
            heappush(self.heap, -price if self.is_bid else price)
        level.orders.append(order)
        level.open_lots += order.open_lots
        level.count += 1

    def remove(self, order: Order) -> None:
        """Unlink a live order (it is marked dead and dropped lazily from its queue)."""
        level = self.levels[order.price]
        level.open_lots -= order.open_lots
        level.count -= 1
        order.live = False
        if level.count == 0:
            del self.levels[order.price]

    def sorted_levels(self) -> list[Level]:
        return sorted(self.levels.values(), key=lambda level: -level.price if self.is_bid else level.price)


class Product:
    __slots__ = ("product_id", "tick_fen", "units_per_lot", "max_order_lots", "band_ppm", "buyer_fee", "seller_fee",
                 "suspended", "settlement_price", "phase", "bids", "asks", "band_low", "band_high")

    def __init__(self, command: c.DefineProduct) -> None:
        self.product_id = command.product_id
        self.tick_fen = command.tick_fen
        self.units_per_lot = command.units_per_lot
        self.max_order_lots = command.max_order_lots
        self.band_ppm = command.band_ppm
        self.buyer_fee = c.FeeSchedule(command.buyer_fee.per_lot_fen, command.buyer_fee.rate_ppm)
        self.seller_fee = c.FeeSchedule(command.seller_fee.per_lot_fen, command.seller_fee.rate_ppm)
        self.suspended = False
        self.settlement_price = 0
        self.phase = PHASE_CLOSED
        self.bids = BookSide(True)
        self.asks = BookSide(False)
        self.band_low = 0
        self.band_high = 0

    def set_settlement_price(self, price: int) -> None:
        """The band is the previous settlement price ± band_ppm, narrowed inward to whole ticks."""
        self.settlement_price = price
        tick = self.tick_fen
        low = price * (1_000_000 - self.band_ppm)
        high = price * (1_000_000 + self.band_ppm)
        unit = tick * 1_000_000
        self.band_low = max(tick, -(-low // unit) * tick)
        self.band_high = (high // unit) * tick


def _check_key(command) -> None:
    key = command.key
    if type(key) is not str or not key or len(key) > MAX_KEY_LENGTH:
        raise Refused("invalid_key", field="key")
    at = command.at_us
    if type(at) is not int or at < 0:
        raise Refused("invalid_time", field="at_us")


def _positive_int(value) -> bool:
    return type(value) is int and value > 0


class ReferenceCore:
    """All products of one trading centre, processed one command at a time."""

    # Slots, so that the compiled core reads and writes these at fixed offsets rather than through a dict.
    __slots__ = ("products", "members", "receipts", "orders", "acks", "sequence", "trade_count", "centre_fees_fen",
                 "deposited_fen", "withdrawn_fen", "grams_registered", "grams_out", "_handlers")

    def __init__(self) -> None:
        self.products: dict[str, Product] = {}
        self.members: dict[str, Member] = {}
        self.receipts: dict[str, Receipt] = {}
        self.orders: dict[int, Order] = {}
        self.acks: dict[tuple[str, str], Ack] = {}
        self.sequence = 0
        self.trade_count = 0
        self.centre_fees_fen = 0
        self.deposited_fen = 0
        self.withdrawn_fen = 0
        self.grams_registered = 0
        self.grams_out = 0
        self._handlers: dict[type, Callable[[Any, list], Ack]] = {
            c.NewOrder: self._new_order,
            c.CancelOrder: self._cancel_order,
            c.AmendOrder: self._amend_order,
            c.DefineProduct: self._define_product,
            c.AdmitMember: self._admit_member,
            c.DepositCash: self._deposit,
            c.WithdrawCash: self._withdraw,
            c.RegisterReceipt: self._register_receipt,
            c.DeregisterReceipt: self._deregister_receipt,
            c.SetMemberSuspended: self._suspend_member,
            c.SetProductSuspended: self._suspend_product,
            c.SetSettlementPrice: self._set_settlement_price,
            c.SessionControl: self._session_control,
        }

    # ------------------------------------------------------------------ entry point

    def apply(self, command) -> Outcome:
        ident = (command.member_id, command.key)
        try:
            previous = self.acks.get(ident)
        except TypeError:  # an unhashable key or member id: refuse it like any other malformed key
            rejection = Refused("invalid_key", field="key").rejection
            return Outcome(Ack("", "", 0, STATUS_REJECTED, rejection=rejection), [], False)
        if previous is not None:
            return Outcome(previous, [], False)
        handler = self._handlers.get(type(command))
        if handler is None:
            raise TypeError(f"not a matching-core command: {type(command).__name__}")
        events: list = []
        try:
            ack = handler(command, events)
        except Refused as refused:
            return Outcome(Ack(command.key if type(command.key) is str else "",
                               command.member_id if type(command.member_id) is str else "", 0,
                               STATUS_REJECTED, rejection=refused.rejection), [], False)
        self.acks[ident] = ack
        return Outcome(ack, events, True)

    def _next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence

    def _done(self, command, sequence: int) -> Ack:
        return Ack(command.key, command.member_id, sequence, STATUS_DONE)

    # ------------------------------------------------------------------ operator commands

    def _define_product(self, command: c.DefineProduct, events: list) -> Ack:
        _check_key(command)
        pid = command.product_id
        if type(pid) is not str or not pid:
            raise Refused("invalid_product_definition", field="product_id", detail="product_id")
        if pid in self.products:
            raise Refused("product_exists", field="product_id", product=pid)
        for name in ("tick_fen", "units_per_lot", "max_order_lots"):
            if not _positive_int(getattr(command, name)):
                raise Refused("invalid_product_definition", field=name, detail=name)
        if type(command.band_ppm) is not int or not 0 < command.band_ppm < 1_000_000:
            raise Refused("invalid_product_definition", field="band_ppm", detail="band_ppm")
        for name in ("buyer_fee", "seller_fee"):
            schedule = getattr(command, name)
            if (not isinstance(schedule, c.FeeSchedule) or type(schedule.per_lot_fen) is not int
                    or type(schedule.rate_ppm) is not int or schedule.per_lot_fen < 0
                    or not 0 <= schedule.rate_ppm < 1_000_000):
                raise Refused("invalid_product_definition", field=name, detail=name)
        sequence = self._next_sequence()
        self.products[pid] = Product(command)
        return self._done(command, sequence)

    def _admit_member(self, command: c.AdmitMember, events: list) -> Ack:
        _check_key(command)
        mid = command.new_member_id
        if type(mid) is not str or not mid:
            raise Refused("unknown_member", field="new_member_id", member=mid)
        if mid in self.members:
            raise Refused("member_exists", field="new_member_id", member=mid)
        sequence = self._next_sequence()
        self.members[mid] = Member(mid)
        return self._done(command, sequence)

    def _member(self, member_id, field: str) -> Member:
        member = self.members.get(member_id)
        if member is None:
            raise Refused("unknown_member", field=field, member=member_id)
        return member

    def _product(self, product_id, field: str = "product_id") -> Product:
        product = self.products.get(product_id)
        if product is None:
            raise Refused("unknown_product", field=field, product=product_id)
        return product

    def _deposit(self, command: c.DepositCash, events: list) -> Ack:
        _check_key(command)
        member = self._member(command.account_member_id, "account_member_id")
        if not _positive_int(command.amount_fen):
            raise Refused("non_positive_amount", field="amount_fen", amount=command.amount_fen)
        sequence = self._next_sequence()
        member.available_fen += command.amount_fen
        self.deposited_fen += command.amount_fen
        return self._done(command, sequence)

    def _withdraw(self, command: c.WithdrawCash, events: list) -> Ack:
        _check_key(command)
        member = self._member(command.account_member_id, "account_member_id")
        if not _positive_int(command.amount_fen):
            raise Refused("non_positive_amount", field="amount_fen", amount=command.amount_fen)
        if command.amount_fen > member.available_fen:
            raise Refused("insufficient_cash", field="amount_fen", needed=command.amount_fen,
                          available=member.available_fen)
        sequence = self._next_sequence()
        member.available_fen -= command.amount_fen
        self.withdrawn_fen += command.amount_fen
        return self._done(command, sequence)

    def _register_receipt(self, command: c.RegisterReceipt, events: list) -> Ack:
        _check_key(command)
        rid = command.receipt_id
        if type(rid) is not str or not rid:
            raise Refused("invalid_receipt", field="receipt_id", detail="receipt_id")
        if rid in self.receipts:
            raise Refused("receipt_exists", field="receipt_id", receipt=rid)
        self._product(command.product_id)
        self._member(command.owner_member_id, "owner_member_id")
        if not _positive_int(command.weight_grams):
            raise Refused("invalid_receipt", field="weight_grams", detail="weight_grams")
        if not _positive_int(command.lots) or command.lots > command.weight_grams:
            raise Refused("invalid_receipt", field="lots", detail="lots")
        sequence = self._next_sequence()
        self.receipts[rid] = Receipt(rid, command.product_id, command.owner_member_id, command.weight_grams,
                                     command.lots)
        self.grams_registered += command.weight_grams
        return self._done(command, sequence)

    def _deregister_receipt(self, command: c.DeregisterReceipt, events: list) -> Ack:
        _check_key(command)
        receipt = self.receipts.get(command.receipt_id)
        if receipt is None or receipt.status != RECEIPT_LIVE:
            raise Refused("unknown_receipt", field="receipt_id", receipt=command.receipt_id)
        if receipt.encumbered_by:
            raise Refused("receipt_encumbered", field="receipt_id", receipt=command.receipt_id)
        sequence = self._next_sequence()
        receipt.status = RECEIPT_OUT
        self.grams_out += receipt.weight_grams
        return self._done(command, sequence)

    def _suspend_member(self, command: c.SetMemberSuspended, events: list) -> Ack:
        _check_key(command)
        member = self._member(command.target_member_id, "target_member_id")
        sequence = self._next_sequence()
        member.suspended = bool(command.suspended)
        return self._done(command, sequence)

    def _suspend_product(self, command: c.SetProductSuspended, events: list) -> Ack:
        _check_key(command)
        product = self._product(command.product_id)
        sequence = self._next_sequence()
        product.suspended = bool(command.suspended)
        return self._done(command, sequence)

    def _set_settlement_price(self, command: c.SetSettlementPrice, events: list) -> Ack:
        _check_key(command)
        product = self._product(command.product_id)
        price = command.price_fen
        if not _positive_int(price):
            raise Refused("non_positive_price", field="price_fen", price=price)
        if price % product.tick_fen:
            raise Refused("off_tick_price", field="price_fen", price=price, tick=product.tick_fen)
        sequence = self._next_sequence()
        product.set_settlement_price(price)
        return self._done(command, sequence)

    def _session_control(self, command: c.SessionControl, events: list) -> Ack:
        _check_key(command)
        product = self._product(command.product_id)
        transition = _TRANSITIONS.get(command.action)
        if transition is None:
            raise Refused("invalid_session_action", field="action", action=command.action)
        sources, target = transition
        if product.phase not in sources:
            raise Refused("invalid_transition", field="action", product=product.product_id, phase=product.phase,
                          action=command.action)
        sequence = self._next_sequence()
        trade_ids: list[int] = []
        if command.action == c.UNCROSS:
            self._uncross(product, sequence, command.at_us, events, trade_ids)
        elif command.action == c.CLOSE:
            # A call auction closed before its uncross is concluded by it: otherwise its crossed orders that
            # outlive the day (GTC) would rest crossed into the next session.
            if product.phase == PHASE_AUCTION:
                self._uncross(product, sequence, command.at_us, events, trade_ids)
            expiring = sorted(
                (order for order in self.orders.values()
                 if order.product_id == product.product_id and order.tif == c.DAY),
                key=lambda order: order.order_id,
            )
            for order in expiring:
                self._unbook(product, order)
                self._finish(order, sequence, "expired", events)
        product.phase = target
        events.append(SessionChanged(sequence, product.product_id, target))
        return Ack(command.key, command.member_id, sequence, STATUS_DONE, trade_ids=tuple(trade_ids))

    # ------------------------------------------------------------------ order validation

    def _check_tradeable(self, product: Product, member: Member, member_id) -> None:
        if member.suspended:
            raise Refused("member_suspended", field="member_id", member=member_id)
        if product.suspended:
            raise Refused("product_suspended", field="product_id", product=product.product_id)

    def _check_price(self, product: Product, price, field: str = "price_fen") -> None:
        if type(price) is not int or price <= 0:
            raise Refused("non_positive_price", field=field, price=price)
        if price % product.tick_fen:
            raise Refused("off_tick_price", field=field, price=price, tick=product.tick_fen)
        if not product.settlement_price:
            raise Refused("no_reference_price", field=field, product=product.product_id)
        if price < product.band_low or price > product.band_high:
            raise Refused("price_outside_band", field=field, price=price, low=product.band_low,
                          high=product.band_high)

    def _check_lots(self, product: Product, lots, field: str = "lots") -> None:
        if type(lots) is not int or lots <= 0:
            raise Refused("non_positive_quantity", field=field, lots=lots)
        if lots > product.max_order_lots:
            raise Refused("quantity_above_maximum", field=field, lots=lots, maximum=product.max_order_lots)

    @staticmethod
    def _buy_bound(product: Product, order_price: int, filled_notional: int, filled_lots: int, open_lots: int) -> int:
        """The most an order can cost in total: what it has traded plus its open lots at its limit, with fees."""
        notional = filled_notional + order_price * open_lots * product.units_per_lot
        return notional + product.buyer_fee.fee(notional, filled_lots + open_lots)

    def _receipts_for_sell(self, product: Product, member_id: str, receipt_ids, lots: int) -> list[Receipt]:
        if type(receipt_ids) not in (tuple, list):
            raise Refused("insufficient_receipts", field="receipt_ids", needed=lots, available=0)
        found: list[Receipt] = []
        total = 0
        receipts = self.receipts
        for rid in receipt_ids:
            receipt = receipts.get(rid) if type(rid) is str else None
            if receipt is None or receipt.status != RECEIPT_LIVE:
                raise Refused("unknown_receipt", field="receipt_ids", receipt=rid)
            if receipt.owner_id != member_id:
                raise Refused("receipt_not_owned", field="receipt_ids", receipt=rid, member=member_id)
            if receipt.product_id != product.product_id:
                raise Refused("receipt_wrong_product", field="receipt_ids", receipt=rid,
                              receipt_product=receipt.product_id, product=product.product_id)
            if receipt.encumbered_by:
                raise Refused("receipt_encumbered", field="receipt_ids", receipt=rid)
            if receipt in found:
                raise Refused("receipt_listed_twice", field="receipt_ids", receipt=rid)
            found.append(receipt)
            total += receipt.lots
        if total < lots:
            raise Refused("insufficient_receipts", field="receipt_ids", needed=lots, available=total)
        return found

    # ------------------------------------------------------------------ orders

    def _new_order(self, command: c.NewOrder, events: list) -> Ack:
        # The hot path: the checks of _check_key, _member, _product, _check_lots and _check_price are written out
        # here in the same order, because a Python call per check costs a measurable share of an order.
        key = command.key
        if type(key) is not str or not key or len(key) > MAX_KEY_LENGTH:
            raise Refused("invalid_key", field="key")
        at_us = command.at_us
        if type(at_us) is not int or at_us < 0:
            raise Refused("invalid_time", field="at_us")
        member_id = command.member_id
        member = self.members.get(member_id)
        if member is None:
            raise Refused("unknown_member", field="member_id", member=member_id)
        product = self.products.get(command.product_id)
        if product is None:
            raise Refused("unknown_product", field="product_id", product=command.product_id)
        if member.suspended:
            raise Refused("member_suspended", field="member_id", member=member_id)
        if product.suspended:
            raise Refused("product_suspended", field="product_id", product=product.product_id)
        side = command.side
        if side != c.BUY and side != c.SELL:
            raise Refused("invalid_side", field="side", side=side)
        order_type = command.order_type
        tif = command.tif
        if order_type == c.LIMIT:
            if tif not in _LIMIT_TIFS:
                raise Refused("invalid_tif", field="tif", tif=tif)
        elif order_type == c.MARKET:
            if tif != c.IOC and tif != c.FOK:
                raise Refused("market_order_tif", field="tif")
        else:
            raise Refused("invalid_order_type", field="order_type", order_type=order_type)
        phase = product.phase
        if phase == PHASE_AUCTION:
            if order_type != c.LIMIT or (tif != c.DAY and tif != c.GTC):
                raise Refused("tif_not_allowed_in_auction", field="tif")
        elif phase != PHASE_CONTINUOUS:
            raise Refused("market_closed", field="product_id", product=product.product_id, phase=phase)
        lots = command.lots
        if type(lots) is not int or lots <= 0:
            raise Refused("non_positive_quantity", field="lots", lots=lots)
        if lots > product.max_order_lots:
            raise Refused("quantity_above_maximum", field="lots", lots=lots, maximum=product.max_order_lots)
        price = command.price_fen
        if type(price) is not int or price <= 0:
            raise Refused("non_positive_price", field="price_fen", price=price)
        if price % product.tick_fen:
            raise Refused("off_tick_price", field="price_fen", price=price, tick=product.tick_fen)
        if price < product.band_low or price > product.band_high:
            if not product.settlement_price:
                raise Refused("no_reference_price", field="price_fen", product=product.product_id)
            raise Refused("price_outside_band", field="price_fen", price=price, low=product.band_low,
                          high=product.band_high)
        if side == c.BUY:
            if command.receipt_ids:
                raise Refused("no_receipts_for_buy", field="receipt_ids")
            notional = price * lots * product.units_per_lot
            fee = product.buyer_fee
            lock = notional + lots * fee.per_lot_fen + (notional * fee.rate_ppm + 999_999) // 1_000_000
            if lock > member.available_fen:
                raise Refused("insufficient_cash", field="lots", needed=lock, available=member.available_fen)
            receipts = None
        else:
            receipts = self._receipts_for_sell(product, member_id, command.receipt_ids, lots)
            lock = 0

        sequence = self.sequence = self.sequence + 1
        order = Order(sequence, command.key, member_id, product.product_id, side, order_type, tif, price, lots,
                      command.at_us)
        events.append(OrderAccepted(sequence, sequence, member_id, product.product_id, side, order_type, tif,
                                    price, lots, command.at_us))
        if tif == c.FOK and self._fillable(product, order) < lots:
            events.append(OrderCancelled(sequence, sequence, member_id, product.product_id, lots, "fok_unfilled"))
            return Ack(command.key, member_id, sequence, STATUS_KILLED, sequence)
        if receipts is None:
            order.locked_fen = lock
            member.available_fen -= lock
            member.locked_fen += lock
        else:
            order.receipts = receipts
            for receipt in receipts:
                receipt.encumbered_by = sequence
        trade_ids: list[int] = []
        if phase == PHASE_CONTINUOUS:
            self._match(product, order, sequence, command.at_us, events, trade_ids)
        if order.open_lots == 0:
            self._finish(order, sequence, None, events)
            status = STATUS_FILLED
        elif tif == c.DAY or tif == c.GTC:
            (product.bids if side == c.BUY else product.asks).add(order)
            self.orders[sequence] = order
            status = STATUS_RESTING
        else:
            self._finish(order, sequence, "market_remainder" if order_type == c.MARKET else "ioc_remainder", events)
            status = STATUS_CANCELLED
        return Ack(command.key, member_id, sequence, status, sequence, order.filled_lots, tuple(trade_ids))

    def _fillable(self, product: Product, order: Order) -> int:
        """Lots an incoming order could trade now, not counting the member's own resting orders."""
        available = 0
        if order.side == c.BUY:
            levels = sorted(product.asks.levels.values(), key=lambda level: level.price)
            crosses = lambda level_price: level_price <= order.price  # noqa: E731
        else:
            levels = sorted(product.bids.levels.values(), key=lambda level: -level.price)
            crosses = lambda level_price: level_price >= order.price  # noqa: E731
        for level in levels:
            if not crosses(level.price):
                break
            for resting in level.orders:
                if resting.live and resting.member_id != order.member_id:
                    available += resting.open_lots
            if available >= order.open_lots:
                break
        return available

    def _match(self, product: Product, order: Order, sequence: int, at_us: int, events: list,
               trade_ids: list) -> None:
        """Continuous matching of an incoming order by price–time priority at the resting order's price.

        Self-trade prevention cancels the *resting* order of the same member and lets the incoming one continue:
        the incoming order is the member's latest instruction, and the stale one would otherwise block it.
        """
        is_buy = order.side == c.BUY
        book = product.asks if is_buy else product.bids
        levels = book.levels
        heap = book.heap
        limit = order.price
        member_id = order.member_id
        while order.open_lots and heap:
            key = heap[0]
            price = key if is_buy else -key
            level = levels.get(price)
            if level is None:
                heappop(heap)
                continue
            if (price > limit) if is_buy else (price < limit):
                break
            queue = level.orders
            while order.open_lots and queue:
                resting = queue[0]
                if not resting.live:
                    queue.popleft()
                    continue
                if resting.member_id == member_id:
                    queue.popleft()
                    book.remove(resting)
                    self._finish(resting, sequence, "self_trade", events)
                    if level.count == 0:
                        break
                    continue
                lots = order.open_lots if order.open_lots < resting.open_lots else resting.open_lots
                level.open_lots -= lots
                if is_buy:
                    self._fill(product, order, resting, price, lots, sequence, at_us, c.BUY, events, trade_ids)
                else:
                    self._fill(product, resting, order, price, lots, sequence, at_us, c.SELL, events, trade_ids)
                if resting.open_lots == 0:
                    queue.popleft()
                    level.count -= 1
                    resting.live = False
                    self._finish(resting, sequence, None, events)
                    if level.count == 0:
                        del levels[price]
                        break
            if level.count == 0 and heap and heap[0] == key:
                heappop(heap)

    def _fill(self, product: Product, buy: Order, sell: Order, price: int, lots: int, sequence: int, at_us: int,
              aggressor: str, events: list, trade_ids: list) -> None:
        """One trade: move the buyer's locked cash, credit the seller net of fees, hand the receipts over."""
        notional = price * lots * product.units_per_lot
        members = self.members
        buyer = members[buy.member_id]
        seller = members[sell.member_id]

        # Fees are charged on the order's cumulative notional so that their sum never exceeds what was locked;
        # fees_fen holds what the order has paid so far. Written out rather than via FeeSchedule.fee: hot path.
        fee = product.buyer_fee
        per_lot, rate = fee.per_lot_fen, fee.rate_ppm
        filled_notional = buy.filled_notional = buy.filled_notional + notional
        filled_lots = buy.filled_lots = buy.filled_lots + lots
        open_lots = buy.open_lots = buy.open_lots - lots
        buyer_fee = filled_lots * per_lot + (filled_notional * rate + 999_999) // 1_000_000 - buy.fees_fen
        buy.fees_fen += buyer_fee
        cost = notional + buyer_fee
        consumed = buy.consumed_fen = buy.consumed_fen + cost
        bound_notional = filled_notional + buy.price * open_lots * product.units_per_lot
        new_locked = (bound_notional + (filled_lots + open_lots) * per_lot
                      + (bound_notional * rate + 999_999) // 1_000_000 - consumed)
        released = buy.locked_fen - cost - new_locked
        buy.locked_fen = new_locked
        buyer.locked_fen -= cost + released
        buyer.available_fen += released

        sell.filled_notional += notional
        sell.filled_lots += lots
        sell.open_lots -= lots
        fee = product.seller_fee
        seller_fee = (sell.filled_lots * fee.per_lot_fen + (sell.filled_notional * fee.rate_ppm + 999_999) // 1_000_000
                      - sell.fees_fen)
        if seller_fee > notional:
            seller_fee = notional
        sell.fees_fen += seller_fee
        seller.available_fen += notional - seller_fee
        self.centre_fees_fen += buyer_fee + seller_fee

        deliveries = self._deliver(sell, lots, buy.member_id, sequence, events)
        self.trade_count += 1
        trade_id = self.trade_count
        trade_ids.append(trade_id)
        events.append(TradeExecuted(sequence, trade_id, product.product_id, price, lots, buy.order_id,
                                    sell.order_id, buy.member_id, sell.member_id, aggressor, at_us))
        events.append(SettlementInstruction(sequence, trade_id, product.product_id, buy.member_id, sell.member_id,
                                            notional, buyer_fee, seller_fee, deliveries))

    def _deliver(self, sell: Order, lots: int, buyer_id: str, sequence: int, events: list) -> tuple:
        """Take ``lots`` from the sell order's receipts in the order listed, splitting the last one if needed."""
        deliveries = []
        held = sell.receipts
        receipts = self.receipts
        while lots:
            receipt = held[0]
            if receipt.lots <= lots:
                held.pop(0)
                receipt.owner_id = buyer_id
                receipt.encumbered_by = 0
                lots -= receipt.lots
                deliveries.append(ReceiptDelivery(receipt.receipt_id, receipt.weight_grams, receipt.lots))
                continue
            delivered_grams = receipt.weight_grams * lots // receipt.lots
            remainder_grams = receipt.weight_grams - delivered_grams
            remainder_lots = receipt.lots - lots
            delivered = Receipt(f"{receipt.receipt_id}.{receipt.children + 1}", receipt.product_id, buyer_id,
                                delivered_grams, lots, receipt.receipt_id)
            remainder = Receipt(f"{receipt.receipt_id}.{receipt.children + 2}", receipt.product_id,
                                receipt.owner_id, remainder_grams, remainder_lots, receipt.receipt_id)
            receipt.children += 2
            receipt.status = RECEIPT_SPLIT
            receipt.encumbered_by = 0
            remainder.encumbered_by = sell.order_id
            receipts[delivered.receipt_id] = delivered
            receipts[remainder.receipt_id] = remainder
            held[0] = remainder
            events.append(ReceiptSplit(sequence, receipt.receipt_id, delivered.receipt_id, delivered_grams, lots,
                                       remainder.receipt_id, remainder_grams, remainder_lots))
            deliveries.append(ReceiptDelivery(delivered.receipt_id, delivered_grams, lots))
            lots = 0
        return tuple(deliveries)

    def _finish(self, order: Order, sequence: int, cancel_reason: str | None, events: list) -> None:
        """The order leaves the market: unused cash and receipts go back to the member."""
        order.live = False
        self.orders.pop(order.order_id, None)
        if order.locked_fen:
            member = self.members[order.member_id]
            member.locked_fen -= order.locked_fen
            member.available_fen += order.locked_fen
            order.locked_fen = 0
        if order.receipts:
            for receipt in order.receipts:
                receipt.encumbered_by = 0
            order.receipts = []
        if cancel_reason is not None:
            events.append(OrderCancelled(sequence, order.order_id, order.member_id, order.product_id,
                                         order.open_lots, cancel_reason))

    def _unbook(self, product: Product, order: Order) -> None:
        (product.bids if order.side == c.BUY else product.asks).remove(order)

    def _owned_live_order(self, command) -> Order:
        order = self.orders.get(command.order_id) if type(command.order_id) is int else None
        if order is None:
            raise Refused("unknown_order", field="order_id", order=command.order_id)
        if order.member_id != command.member_id:
            raise Refused("not_your_order", field="order_id", order=command.order_id, member=command.member_id)
        return order

    def _cancel_order(self, command: c.CancelOrder, events: list) -> Ack:
        _check_key(command)
        self._member(command.member_id, "member_id")
        order = self._owned_live_order(command)
        sequence = self._next_sequence()
        product = self.products[order.product_id]
        self._unbook(product, order)
        self._finish(order, sequence, "client", events)
        return Ack(command.key, command.member_id, sequence, STATUS_CANCELLED, order.order_id, order.filled_lots)

    def _amend_order(self, command: c.AmendOrder, events: list) -> Ack:
        _check_key(command)
        member = self._member(command.member_id, "member_id")
        order = self._owned_live_order(command)
        product = self.products[order.product_id]
        self._check_tradeable(product, member, command.member_id)
        if product.phase != PHASE_CONTINUOUS and product.phase != PHASE_AUCTION:
            raise Refused("market_closed", field="order_id", product=product.product_id, phase=product.phase)
        lots = command.lots
        price = command.price_fen
        self._check_lots(product, lots)
        self._check_price(product, price)
        if lots == order.open_lots and price == order.price:
            raise Refused("amend_no_change", field="lots")
        keeps_priority = price == order.price and lots < order.open_lots
        extra_lock = 0
        if order.side == c.BUY:
            new_locked = self._buy_bound(product, price, order.filled_notional, order.filled_lots,
                                         lots) - order.consumed_fen
            extra_lock = new_locked - order.locked_fen
            if extra_lock > member.available_fen:
                raise Refused("insufficient_cash", field="lots", needed=extra_lock, available=member.available_fen)
        else:
            held = sum(receipt.lots for receipt in order.receipts)
            if held < lots:
                raise Refused("insufficient_receipts", field="lots", needed=lots, available=held)

        sequence = self._next_sequence()
        book = product.bids if order.side == c.BUY else product.asks
        if order.side == c.BUY:
            order.locked_fen += extra_lock
            member.available_fen -= extra_lock
            member.locked_fen += extra_lock
        trade_ids: list[int] = []
        if keeps_priority:
            book.levels[order.price].open_lots -= order.open_lots - lots
            order.open_lots = lots
        else:
            # The order object is re-queued, so it must leave its old queue physically, not just be marked dead.
            book.levels[order.price].orders.remove(order)
            book.remove(order)
            order.live = True
            order.price = price
            order.open_lots = lots
            order.priority = sequence
            if product.phase == PHASE_CONTINUOUS:
                self._match(product, order, sequence, command.at_us, events, trade_ids)
            if order.open_lots:
                book.add(order)
            else:
                self._finish(order, sequence, None, events)
        events.append(OrderAmended(sequence, order.order_id, order.open_lots, order.price, keeps_priority))
        status = STATUS_AMENDED if order.open_lots else STATUS_FILLED
        return Ack(command.key, command.member_id, sequence, status, order.order_id, order.filled_lots,
                   tuple(trade_ids))

    # ------------------------------------------------------------------ opening call auction

    @staticmethod
    def auction_price(product: Product) -> tuple[int, int]:
        """(price, executable lots) of the opening call: maximum executable volume, then minimum imbalance, then
        nearest the reference (previous settlement) price, then the lower price. (0, 0) when nothing crosses."""
        bids = [(level.price, level.open_lots) for level in product.bids.levels.values()]
        asks = [(level.price, level.open_lots) for level in product.asks.levels.values()]
        if not bids or not asks:
            return 0, 0
        bids.sort()
        asks.sort()
        bid_prices = [price for price, _ in bids]
        ask_prices = [price for price, _ in asks]
        bid_suffix = [0] * (len(bids) + 1)
        for index in range(len(bids) - 1, -1, -1):
            bid_suffix[index] = bid_suffix[index + 1] + bids[index][1]
        ask_prefix = [0]
        for _, lots in asks:
            ask_prefix.append(ask_prefix[-1] + lots)
        reference = product.settlement_price
        best = None
        for price in sorted(set(bid_prices) | set(ask_prices)):
            demand = bid_suffix[bisect_left(bid_prices, price)]
            supply = ask_prefix[bisect_right(ask_prices, price)]
            volume = min(demand, supply)
            if volume == 0:
                continue
            rank = (-volume, abs(demand - supply), abs(price - reference), price)
            if best is None or rank < best[0]:
                best = (rank, price, volume)
        if best is None:
            return 0, 0
        return best[1], best[2]

    def _uncross(self, product: Product, sequence: int, at_us: int, events: list, trade_ids: list) -> None:
        """Execute the opening call at one price. A self-match cancels the later of the two orders; if that leaves
        the book crossed, the call is recomputed on what remains, so the book is never left crossed."""
        while True:
            price, _ = self.auction_price(product)
            if not price:
                return
            lots_done = 0
            while True:
                bid_level = product.bids.best()
                ask_level = product.asks.best()
                if bid_level is None or ask_level is None or bid_level.price < price or ask_level.price > price:
                    break
                buy = self._queue_head(bid_level)
                sell = self._queue_head(ask_level)
                if buy.member_id == sell.member_id:
                    later = buy if buy.priority > sell.priority else sell
                    self._drop_from_level(product, later)
                    self._finish(later, sequence, "self_trade", events)
                    continue
                lots = min(buy.open_lots, sell.open_lots)
                bid_level.open_lots -= lots
                ask_level.open_lots -= lots
                self._fill(product, buy, sell, price, lots, sequence, at_us, "A", events, trade_ids)
                lots_done += lots
                for order in (buy, sell):
                    if order.open_lots == 0:
                        self._drop_from_level(product, order)
                        self._finish(order, sequence, None, events)
            if lots_done:
                events.append(AuctionUncrossed(sequence, product.product_id, price, lots_done))
            bid_level = product.bids.best()
            ask_level = product.asks.best()
            if bid_level is None or ask_level is None or bid_level.price < ask_level.price:
                return

    @staticmethod
    def _queue_head(level: Level) -> Order:
        queue = level.orders
        while not queue[0].live:
            queue.popleft()
        return queue[0]

    def _drop_from_level(self, product: Product, order: Order) -> None:
        book = product.bids if order.side == c.BUY else product.asks
        level = book.levels[order.price]
        if level.orders and level.orders[0] is order:
            level.orders.popleft()
        book.remove(order)

    # ------------------------------------------------------------------ views

    def best_bid(self, product_id: str) -> int:
        level = self.products[product_id].bids.best()
        return level.price if level else 0

    def best_ask(self, product_id: str) -> int:
        level = self.products[product_id].asks.best()
        return level.price if level else 0

    def depth(self, product_id: str) -> dict[str, list[tuple[int, int, int]]]:
        """(price, open lots, order count) per level, best first."""
        product = self.products[product_id]
        return {
            "bids": [(lv.price, lv.open_lots, lv.count) for lv in product.bids.sorted_levels()],
            "asks": [(lv.price, lv.open_lots, lv.count) for lv in product.asks.sorted_levels()],
        }

    def queue(self, product_id: str, side: str, price: int) -> list[int]:
        """Order ids at one price level in time priority."""
        product = self.products[product_id]
        level = (product.bids if side == c.BUY else product.asks).levels.get(price)
        return [order.order_id for order in level.orders if order.live] if level else []

    # ------------------------------------------------------------------ invariants

    def check_invariants(self) -> None:
        """Cash and metal conserved, locks consistent, no receipt doubly encumbered, no book crossed at rest."""
        members_total = sum(m.available_fen + m.locked_fen for m in self.members.values())
        if members_total + self.centre_fees_fen != self.deposited_fen - self.withdrawn_fen:
            raise InvariantBroken("cash not conserved")
        locked_by_member: dict[str, int] = {}
        for order in self.orders.values():
            if order.locked_fen < 0:
                raise InvariantBroken(f"order {order.order_id} has negative lock")
            locked_by_member[order.member_id] = locked_by_member.get(order.member_id, 0) + order.locked_fen
        for member in self.members.values():
            if member.available_fen < 0 or member.locked_fen != locked_by_member.get(member.member_id, 0):
                raise InvariantBroken(f"member {member.member_id} cash inconsistent")
        live_grams = 0
        encumbered: dict[str, int] = {}
        for receipt in self.receipts.values():
            if receipt.status == RECEIPT_LIVE:
                live_grams += receipt.weight_grams
                if receipt.encumbered_by:
                    encumbered[receipt.receipt_id] = receipt.encumbered_by
            elif receipt.encumbered_by:
                raise InvariantBroken(f"retired receipt {receipt.receipt_id} encumbered")
        if live_grams != self.grams_registered - self.grams_out:
            raise InvariantBroken("receipt weight not conserved")
        seen: set[str] = set()
        for order in self.orders.values():
            if order.side == c.SELL:
                held = 0
                for receipt in order.receipts:
                    if receipt.receipt_id in seen or encumbered.get(receipt.receipt_id) != order.order_id:
                        raise InvariantBroken(f"receipt {receipt.receipt_id} lock inconsistent")
                    if receipt.owner_id != order.member_id:
                        raise InvariantBroken(f"receipt {receipt.receipt_id} not the seller's")
                    seen.add(receipt.receipt_id)
                    held += receipt.lots
                if held < order.open_lots:
                    raise InvariantBroken(f"sell order {order.order_id} under-covered")
            elif order.locked_fen < self._buy_bound(self.products[order.product_id], order.price,
                                                    order.filled_notional, order.filled_lots,
                                                    order.open_lots) - order.consumed_fen:
                raise InvariantBroken(f"buy order {order.order_id} under-locked")
        if set(encumbered) != seen:
            raise InvariantBroken("receipt encumbered by no live order")
        for product in self.products.values():
            for book in (product.bids, product.asks):
                for price, level in book.levels.items():
                    live = [o for o in level.orders if o.live]
                    if len(live) != level.count or sum(o.open_lots for o in live) != level.open_lots:
                        raise InvariantBroken(f"level {product.product_id}@{price} totals wrong")
                    priorities = [o.priority for o in live]
                    if priorities != sorted(priorities) or not live:
                        raise InvariantBroken(f"level {product.product_id}@{price} out of time priority")
            if product.phase != PHASE_AUCTION:
                bid, ask = product.bids.best(), product.asks.best()
                if bid is not None and ask is not None and bid.price >= ask.price:
                    raise InvariantBroken(f"book {product.product_id} crossed at rest")

    # ------------------------------------------------------------------ canonical state, hash, snapshot

    def to_state(self) -> dict:
        """A canonical, JSON-ready picture of the whole state; equal states give equal pictures."""
        def order_row(order: Order) -> list:
            return [order.order_id, order.key, order.member_id, order.side, order.order_type, order.tif,
                    order.price, order.open_lots, order.filled_lots, order.priority, order.at_us, order.locked_fen,
                    order.filled_notional, order.consumed_fen, order.fees_fen,
                    [receipt.receipt_id for receipt in order.receipts]]

        products = {}
        for pid in sorted(self.products):
            product = self.products[pid]
            products[pid] = {
                "tick_fen": product.tick_fen, "units_per_lot": product.units_per_lot,
                "max_order_lots": product.max_order_lots, "band_ppm": product.band_ppm,
                "buyer_fee": [product.buyer_fee.per_lot_fen, product.buyer_fee.rate_ppm],
                "seller_fee": [product.seller_fee.per_lot_fen, product.seller_fee.rate_ppm],
                "suspended": product.suspended, "settlement_price": product.settlement_price,
                "phase": product.phase,
                "bids": [[order_row(o) for o in lv.orders if o.live] for lv in product.bids.sorted_levels()],
                "asks": [[order_row(o) for o in lv.orders if o.live] for lv in product.asks.sorted_levels()],
            }
        return {
            "format": 1,
            "sequence": self.sequence,
            "trade_count": self.trade_count,
            "centre_fees_fen": self.centre_fees_fen,
            "deposited_fen": self.deposited_fen,
            "withdrawn_fen": self.withdrawn_fen,
            "grams_registered": self.grams_registered,
            "grams_out": self.grams_out,
            "products": products,
            "members": {mid: [m.available_fen, m.locked_fen, m.suspended]
                        for mid, m in sorted(self.members.items())},
            "receipts": {rid: [r.product_id, r.owner_id, r.weight_grams, r.lots, r.encumbered_by, r.parent_id,
                               r.children, r.status] for rid, r in sorted(self.receipts.items())},
            "acks": sorted(ack.as_list() for ack in self.acks.values()),
        }

    def canonical_bytes(self) -> bytes:
        return json.dumps(self.to_state(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def state_hash(self) -> str:
        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    @classmethod
    def from_state(cls, state: dict) -> ReferenceCore:
        if state.get("format") != 1:
            raise ValueError(f"unknown snapshot format {state.get('format')!r}")
        core = cls()
        core.sequence = state["sequence"]
        core.trade_count = state["trade_count"]
        core.centre_fees_fen = state["centre_fees_fen"]
        core.deposited_fen = state["deposited_fen"]
        core.withdrawn_fen = state["withdrawn_fen"]
        core.grams_registered = state["grams_registered"]
        core.grams_out = state["grams_out"]
        for mid, (available, locked, suspended) in state["members"].items():
            member = core.members[mid] = Member(mid)
            member.available_fen, member.locked_fen, member.suspended = available, locked, suspended
        for rid, row in state["receipts"].items():
            receipt = Receipt(rid, row[0], row[1], row[2], row[3], row[5])
            receipt.encumbered_by, receipt.children, receipt.status = row[4], row[6], row[7]
            core.receipts[rid] = receipt
        for pid, data in state["products"].items():
            definition = c.DefineProduct(
                "", 0, pid, data["tick_fen"], data["units_per_lot"], data["max_order_lots"], data["band_ppm"],
                c.FeeSchedule(*data["buyer_fee"]), c.FeeSchedule(*data["seller_fee"]))
            product = core.products[pid] = Product(definition)
            product.suspended = data["suspended"]
            if data["settlement_price"]:
                product.set_settlement_price(data["settlement_price"])
            product.phase = data["phase"]
            for side_name, book in (("bids", product.bids), ("asks", product.asks)):
                for level_rows in data[side_name]:
                    for row in level_rows:
                        order = Order(row[0], row[1], row[2], pid, row[3], row[4], row[5], row[6], row[7], row[10])
                        (order.filled_lots, order.priority, order.locked_fen, order.filled_notional,
                         order.consumed_fen, order.fees_fen) = row[8], row[9], row[11], row[12], row[13], row[14]
                        order.receipts = [core.receipts[rid] for rid in row[15]]
                        book.add(order)
                        core.orders[order.order_id] = order
                heapify(book.heap)
        for row in state["acks"]:
            ack = Ack.from_list(row)
            core.acks[(ack.member_id, ack.key)] = ack
        return core


class CompiledCore(ReferenceCore):
    """The reference core with new orders and cancels run in C (_corefast.c) on the same state; ``apply`` is set
    below, when the extension is there."""

    __slots__ = ()


def _load_compiled():
    if os.environ.get("INGOT_PURE_PYTHON") == "1":
        return None
    try:
        from ingot.market.engine import _corefast  # compiled from _corefast.c by `pip install -e .`; see setup.py
    except ImportError:  # a checkout that was never installed: the reference runs alone
        return None
    from ingot.market.engine import events as e

    # The compiled apply declines (and calls ReferenceCore.apply) for anything but the exact CompiledCore class.
    CompiledCore.apply = _corefast.configure({  # type: ignore[method-assign]
        "Order": Order, "Level": Level, "BookSide": BookSide, "Member": Member, "Receipt": Receipt,
        "Product": Product, "FeeSchedule": c.FeeSchedule, "NewOrder": c.NewOrder, "CancelOrder": c.CancelOrder,
        "Outcome": Outcome, "Ack": Ack, "OrderAccepted": e.OrderAccepted, "OrderCancelled": e.OrderCancelled,
        "TradeExecuted": e.TradeExecuted, "SettlementInstruction": e.SettlementInstruction,
        "ReceiptDelivery": e.ReceiptDelivery, "ReceiptSplit": e.ReceiptSplit,
        "deque": deque, "heappush": heappush, "heappop": heappop, "Rejection": Rejection, "MESSAGES": MESSAGES,
        "Core": CompiledCore, "reference_apply": ReferenceCore.apply,
    })
    return _corefast


_compiled = _load_compiled()
COMPILED = _compiled is not None
MatchingCore: type[ReferenceCore] = CompiledCore if COMPILED else ReferenceCore
