"""Events the matching core emits. The outer layer posts settlement instructions to the double-entry ledger and
feeds the rest to market data; a replay emits the same events again with the same identifiers, so consumers
deduplicate by ``trade_id`` / ``sequence``."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class OrderAccepted:
    sequence: int
    order_id: int
    member_id: str
    product_id: str
    side: str
    order_type: str
    tif: str
    price_fen: int
    lots: int
    at_us: int


@dataclass(slots=True)
class OrderCancelled:
    """``reason``: client, self_trade, ioc_remainder, market_remainder, fok_unfilled, expired."""

    sequence: int
    order_id: int
    member_id: str
    product_id: str
    lots: int
    reason: str


@dataclass(slots=True)
class OrderAmended:
    sequence: int
    order_id: int
    lots: int
    price_fen: int
    kept_priority: bool


@dataclass(slots=True)
class TradeExecuted:
    """``aggressor`` is the side of the incoming order, or ``"A"`` for an opening-auction match."""

    sequence: int
    trade_id: int
    product_id: str
    price_fen: int
    lots: int
    buy_order_id: int
    sell_order_id: int
    buyer_id: str
    seller_id: str
    aggressor: str
    at_us: int


@dataclass(slots=True)
class ReceiptDelivery:
    receipt_id: str
    weight_grams: int
    lots: int


@dataclass(slots=True)
class SettlementInstruction:
    """Delivery versus payment for one trade: the buyer pays ``notional + buyer_fee`` out of locked cash, the
    seller receives ``notional - seller_fee``, the centre receives both fees, and the receipts go to the buyer."""

    sequence: int
    trade_id: int
    product_id: str
    buyer_id: str
    seller_id: str
    notional_fen: int
    buyer_fee_fen: int
    seller_fee_fen: int
    receipts: tuple[ReceiptDelivery, ...]

    @property
    def buyer_pays_fen(self) -> int:
        return self.notional_fen + self.buyer_fee_fen

    @property
    def seller_receives_fen(self) -> int:
        return self.notional_fen - self.seller_fee_fen

    @property
    def centre_receives_fen(self) -> int:
        return self.buyer_fee_fen + self.seller_fee_fen


@dataclass(slots=True)
class ReceiptSplit:
    """A partial fill split ``parent_id``: the delivered child goes to the buyer, the remainder stays with the
    seller's order. The children's weights and lots add up exactly to the parent's."""

    sequence: int
    parent_id: str
    delivered_id: str
    delivered_grams: int
    delivered_lots: int
    remainder_id: str
    remainder_grams: int
    remainder_lots: int


@dataclass(slots=True)
class SessionChanged:
    sequence: int
    product_id: str
    phase: str


@dataclass(slots=True)
class AuctionUncrossed:
    sequence: int
    product_id: str
    price_fen: int
    lots: int
