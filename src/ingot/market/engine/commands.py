"""Commands the matching core accepts.

Every command carries the client's idempotency key and the time it was received (integer microseconds since the Unix
epoch, UTC): the core never reads a clock, so replaying the same commands gives the same state. Member commands are
keyed per member; the outer layer's operator commands share the operator's key space (member ``""``).

The classes are plain slotted dataclasses (not frozen: frozen initialisers cost a measurable share of the hot path);
the core never mutates a command and callers must not either.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

BUY = "B"
SELL = "S"
LIMIT = "limit"
MARKET = "market"
IOC = "IOC"
FOK = "FOK"
DAY = "DAY"
GTC = "GTC"

OPERATOR = ""

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def utc_micros(moment: datetime) -> int:
    """Microseconds since the epoch for an aware datetime; naive datetimes are refused, not guessed."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every command time carries its zone")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_utc_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


@dataclass(slots=True)
class FeeSchedule:
    """Fee per fill side: a fixed amount per lot plus a proportional rate in parts per million of the notional.

    The proportional part is rounded up to the fen on the cumulative notional of the order, so the sum of an
    order's fees equals the fee on its total and never exceeds what was locked for it.
    """

    per_lot_fen: int = 0
    rate_ppm: int = 0

    def fee(self, notional_fen: int, lots: int) -> int:
        return lots * self.per_lot_fen + (notional_fen * self.rate_ppm + 999_999) // 1_000_000


@dataclass(slots=True)
class DefineProduct:
    key: str
    at_us: int
    product_id: str
    tick_fen: int
    units_per_lot: int
    max_order_lots: int
    band_ppm: int
    buyer_fee: FeeSchedule = field(default_factory=FeeSchedule)
    seller_fee: FeeSchedule = field(default_factory=FeeSchedule)
    member_id: str = OPERATOR


@dataclass(slots=True)
class AdmitMember:
    key: str
    at_us: int
    new_member_id: str
    member_id: str = OPERATOR


@dataclass(slots=True)
class DepositCash:
    key: str
    at_us: int
    account_member_id: str
    amount_fen: int
    member_id: str = OPERATOR


@dataclass(slots=True)
class WithdrawCash:
    key: str
    at_us: int
    account_member_id: str
    amount_fen: int
    member_id: str = OPERATOR


@dataclass(slots=True)
class RegisterReceipt:
    key: str
    at_us: int
    receipt_id: str
    product_id: str
    owner_member_id: str
    weight_grams: int
    lots: int
    member_id: str = OPERATOR


@dataclass(slots=True)
class DeregisterReceipt:
    """The receipt leaves the market (cancelled for load-out); it must be unencumbered."""

    key: str
    at_us: int
    receipt_id: str
    member_id: str = OPERATOR


@dataclass(slots=True)
class SetMemberSuspended:
    key: str
    at_us: int
    target_member_id: str
    suspended: bool
    member_id: str = OPERATOR


@dataclass(slots=True)
class SetProductSuspended:
    key: str
    at_us: int
    product_id: str
    suspended: bool
    member_id: str = OPERATOR


@dataclass(slots=True)
class SetSettlementPrice:
    key: str
    at_us: int
    product_id: str
    price_fen: int
    member_id: str = OPERATOR


OPEN_AUCTION = "open_auction"
UNCROSS = "uncross"
CONTINUOUS = "continuous"
CLOSE = "close"
# The break between two windows of one trading day: no new orders or amendments (cancels stay allowed), and, unlike
# a close, DAY orders keep resting into the next window of the same day.
BREAK = "break"
SESSION_ACTIONS = (OPEN_AUCTION, UNCROSS, CONTINUOUS, BREAK, CLOSE)


@dataclass(slots=True)
class SessionControl:
    key: str
    at_us: int
    product_id: str
    action: str
    member_id: str = OPERATOR


@dataclass(slots=True)
class NewOrder:
    """A limit order, or a market order whose ``price_fen`` is its protection price (worst acceptable price)."""

    key: str
    at_us: int
    member_id: str
    product_id: str
    side: str
    lots: int
    price_fen: int
    order_type: str = LIMIT
    tif: str = DAY
    receipt_ids: tuple[str, ...] = ()


@dataclass(slots=True)
class CancelOrder:
    key: str
    at_us: int
    member_id: str
    order_id: int


@dataclass(slots=True)
class AmendOrder:
    """Set a resting order's open quantity and price. Reducing the quantity at the same price keeps time priority;
    any price change or quantity increase re-queues the order behind its new price level."""

    key: str
    at_us: int
    member_id: str
    order_id: int
    lots: int
    price_fen: int


Command = (
    DefineProduct | AdmitMember | DepositCash | WithdrawCash | RegisterReceipt | DeregisterReceipt
    | SetMemberSuspended | SetProductSuspended | SetSettlementPrice | SessionControl
    | NewOrder | CancelOrder | AmendOrder
)
