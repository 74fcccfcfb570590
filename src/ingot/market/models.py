"""Tables of the trading centre: products and their versions, members and accounts, warehouses and receipts,
the double-entry ledger, the engine's command log, orders, trades, settlement prices, statements, reconciliations.

Money is integer fen, metal integer grams, times UTC. The matching core keeps its own state in memory; the
`market_engine_commands` table is its journal, so the database alone can rebuild it.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ingot.core.db import Base, JSONData, UTCDateTime
from ingot.core.timeutil import utcnow

# Member kinds as seed 002 四、(四) names them, plus the reserve agency as a separate account holder.
MEMBER_KINDS = {
    "industry": ("产业会员", "industry member"),
    "comprehensive": ("综合会员", "comprehensive member"),
    "brokerage": ("经纪会员", "brokerage member"),
    "trader": ("交易商", "trader"),
    "reserve_agency": ("储备机构", "reserve agency"),
}
# Kinds that may carry clients; the others trade for their own account only.
KINDS_WITH_CLIENTS = ("comprehensive", "brokerage")

RECEIPT_STATES = {
    "registered": ("已注册", "registered"),
    "encumbered": ("已占用", "encumbered"),
    "transferred": ("已过户", "transferred"),
    "cancelled": ("已注销待出库", "cancelled for load-out"),
    "out": ("已出库", "out of the warehouse"),
    "invalidated": ("已作废", "invalidated"),
    "split": ("已拆分", "split"),
}


class Warehouse(Base):
    __tablename__ = "market_warehouses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name_zh: Mapped[str] = mapped_column(String(128))
    name_en: Mapped[str] = mapped_column(String(128), default="")
    division_code: Mapped[str] = mapped_column(String(6))
    address: Mapped[str] = mapped_column(String(256), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Product(Base):
    """The contract's identity: what a lot is and what the fees are. Changing either lists a new product."""

    __tablename__ = "market_products"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name_zh: Mapped[str] = mapped_column(String(128))
    name_en: Mapped[str] = mapped_column(String(128))
    metal: Mapped[str] = mapped_column(String(32))
    price_unit: Mapped[str] = mapped_column(String(8))  # "t" or "kg": the price is fen per this unit
    grams_per_price_unit: Mapped[int] = mapped_column(Integer)
    units_per_lot: Mapped[int] = mapped_column(Integer)
    reference_price_fen: Mapped[int] = mapped_column(BigInteger)
    buyer_fee_per_lot_fen: Mapped[int] = mapped_column(Integer, default=0)
    buyer_fee_ppm: Mapped[int] = mapped_column(Integer, default=0)
    seller_fee_per_lot_fen: Mapped[int] = mapped_column(Integer, default=0)
    seller_fee_ppm: Mapped[int] = mapped_column(Integer, default=0)
    suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ProductVersion(Base):
    """Rules announced by notice and in force from `effective_on` until the next version; never retroactive."""

    __tablename__ = "market_product_versions"
    __table_args__ = (
        UniqueConstraint("product_id", "version", name="uq_market_product_versions_product_version"),
        UniqueConstraint("product_id", "effective_on", name="uq_market_product_versions_product_effective"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("market_products.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    notice_ref: Mapped[str] = mapped_column(String(64))
    notice_date: Mapped[date] = mapped_column(Date)
    effective_on: Mapped[date] = mapped_column(Date)
    grade_zh: Mapped[str] = mapped_column(String(256))
    grade_en: Mapped[str] = mapped_column(String(256))
    quality_spec: Mapped[dict] = mapped_column(JSONData, default=dict)
    tick_fen: Mapped[int] = mapped_column(Integer)
    band_ppm: Mapped[int] = mapped_column(Integer)
    max_order_lots: Mapped[int] = mapped_column(Integer)
    # The day's volume-weighted average becomes the settlement price only from this many lots traded.
    settlement_min_lots: Mapped[int] = mapped_column(Integer, default=1)
    sessions: Mapped[list] = mapped_column(JSONData, default=list)
    # The opening call auction as "HH:MM-HH:MM" ending at or before the first session (Asia/Shanghai); None: the
    # product opens straight into continuous trading.
    opening_auction: Mapped[str | None] = mapped_column(String(11), nullable=True)
    deliverable_warehouses: Mapped[list] = mapped_column(JSONData, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Member(Base):
    __tablename__ = "market_members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprises.id"), nullable=True)
    division_code: Mapped[str] = mapped_column(String(6))
    suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Client(Base):
    __tablename__ = "market_clients"
    __table_args__ = (UniqueConstraint("member_id", "code", name="uq_market_clients_member_client"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("market_members.id"), index=True)
    code: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TradingAccount(Base):
    """A member's own account, or one client's segregated account under its member."""

    __tablename__ = "market_accounts"
    __table_args__ = (UniqueConstraint("member_id", "client_id", name="uq_market_accounts_member_client_account"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    engine_id: Mapped[str] = mapped_column(String(32), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("market_members.id"), index=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("market_clients.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MarketUser(Base):
    """Which member, client or warehouse a market-role user acts for (the core users table stays untouched)."""

    __tablename__ = "market_users"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("market_members.id"), nullable=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("market_clients.id"), nullable=True)
    warehouse_id: Mapped[int | None] = mapped_column(ForeignKey("market_warehouses.id"), nullable=True)


# ---------------------------------------------------------------- the double-entry ledger


class LedgerAccount(Base):
    """kind: bank (custodian), centre (fees), cash (a trading account's money), metal (a trading account's grams),
    warehouse_in (grams registered in; negative), load_out and invalidated (grams gone out; positive)."""

    __tablename__ = "market_ledger_accounts"
    __table_args__ = (UniqueConstraint("kind", "asset", "holder_id", name="uq_market_ledger_accounts_ledger_account"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    asset: Mapped[str] = mapped_column(String(16))  # "CNY" (unit fen) or a product code (unit gram)
    holder_id: Mapped[int] = mapped_column(Integer, default=0)  # trading account id, warehouse id, or 0
    balance: Mapped[int] = mapped_column(BigInteger, default=0)


class LedgerEntry(Base):
    __tablename__ = "market_ledger_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(24))
    reference: Mapped[str] = mapped_column(String(64), index=True)
    memo: Mapped[str] = mapped_column(String(256), default="")


class Posting(Base):
    __tablename__ = "market_postings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("market_ledger_entries.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("market_ledger_accounts.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)


# ---------------------------------------------------------------- money against the custodian bank


class BankStatementLine(Base):
    """One line of the custodian bank's statement for a segregated sub-account (+ credit, − debit)."""

    __tablename__ = "market_bank_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bank_ref: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("market_accounts.id"), index=True)
    value_date: Mapped[date] = mapped_column(Date, index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    matched_movement_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CashMovement(Base):
    __tablename__ = "market_cash_movements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("market_accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # deposit / withdrawal
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    bank_line_id: Mapped[int] = mapped_column(ForeignKey("market_bank_lines.id"), unique=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("market_ledger_entries.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BankBalance(Base):
    """The custodian's reported closing balance of one segregated sub-account on one day."""

    __tablename__ = "market_bank_balances"
    __table_args__ = (UniqueConstraint("account_id", "day", name="uq_market_bank_balances_account_day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("market_accounts.id"), index=True)
    day: Mapped[date] = mapped_column(Date)
    closing_fen: Mapped[int] = mapped_column(BigInteger)


class CashReconciliation(Base):
    __tablename__ = "market_cash_reconciliations"
    __table_args__ = (UniqueConstraint("account_id", "day", name="uq_market_cash_reconciliations_account_day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("market_accounts.id"), index=True)
    day: Mapped[date] = mapped_column(Date, index=True)
    ledger_fen: Mapped[int] = mapped_column(BigInteger)
    bank_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    unmatched_lines: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))  # ok / break / missing
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# ---------------------------------------------------------------- warehouse receipts


class Receipt(Base):
    __tablename__ = "market_receipts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("market_products.id"), index=True)
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("market_warehouses.id"), index=True)
    owner_account_id: Mapped[int] = mapped_column(ForeignKey("market_accounts.id"), index=True)
    grade: Mapped[str] = mapped_column(String(64))
    lot_no: Mapped[str] = mapped_column(String(64))
    brand: Mapped[str] = mapped_column(String(64), default="")
    net_grams: Mapped[int] = mapped_column(BigInteger)
    lots: Mapped[int] = mapped_column(Integer)
    assay_certificate: Mapped[str] = mapped_column(String(64))
    assay: Mapped[dict] = mapped_column(JSONData, default=dict)
    location: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    lien_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)  # order / pledge
    lien_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("market_receipts.id"), nullable=True)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class StockReport(Base):
    """A warehouse's physical count of one product against the receipt registry on a day."""

    __tablename__ = "market_stock_reports"
    __table_args__ = (UniqueConstraint("warehouse_id", "product_id", "day", name="uq_market_stock_reports_warehouse_product_day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("market_warehouses.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("market_products.id"))
    day: Mapped[date] = mapped_column(Date)
    physical_grams: Mapped[int] = mapped_column(BigInteger)
    registry_grams: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))  # ok / break
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MarketAlarm(Base):
    __tablename__ = "market_alarms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str] = mapped_column(String(64))
    message_zh: Mapped[str] = mapped_column(String(512))
    message_en: Mapped[str] = mapped_column(String(512))
    division_code: Mapped[str | None] = mapped_column(String(6), nullable=True)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


# ---------------------------------------------------------------- the engine's journal, orders and trades


class EngineHead(Base):
    """One row: the last committed engine sequence and the token of the command that produced it. Updating it
    first in every engine transaction serialises the writers across processes."""

    __tablename__ = "market_engine_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    token: Mapped[str] = mapped_column(String(32), default="")


class EngineCommand(Base):
    __tablename__ = "market_engine_commands"

    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    token: Mapped[str] = mapped_column(String(32))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EngineSnapshot(Base):
    __tablename__ = "market_engine_snapshots"

    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    token: Mapped[str] = mapped_column(String(32))
    state_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Order(Base):
    """An order as the engine acknowledged it; `id` is the engine's order id."""

    __tablename__ = "market_orders"
    __table_args__ = (UniqueConstraint("account_id", "idempotency_key", name="uq_market_orders_account_key"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    idempotency_key: Mapped[str] = mapped_column(String(128))
    account_id: Mapped[int] = mapped_column(ForeignKey("market_accounts.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("market_products.id"), index=True)
    side: Mapped[str] = mapped_column(String(1))
    order_type: Mapped[str] = mapped_column(String(8))
    tif: Mapped[str] = mapped_column(String(4))
    price_fen: Mapped[int] = mapped_column(BigInteger)
    lots: Mapped[int] = mapped_column(Integer)
    open_lots: Mapped[int] = mapped_column(Integer)
    filled_lots: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), index=True)
    cancel_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    receipt_numbers: Mapped[list] = mapped_column(JSONData, default=list)
    placed_by: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Trade(Base):
    __tablename__ = "market_trades"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    product_id: Mapped[int] = mapped_column(ForeignKey("market_products.id"), index=True)
    trade_day: Mapped[date] = mapped_column(Date, index=True)
    price_fen: Mapped[int] = mapped_column(BigInteger)
    lots: Mapped[int] = mapped_column(Integer)
    notional_fen: Mapped[int] = mapped_column(BigInteger)
    buyer_fee_fen: Mapped[int] = mapped_column(BigInteger)
    seller_fee_fen: Mapped[int] = mapped_column(BigInteger)
    buy_order_id: Mapped[int] = mapped_column(BigInteger)
    sell_order_id: Mapped[int] = mapped_column(BigInteger)
    buyer_account_id: Mapped[int] = mapped_column(ForeignKey("market_accounts.id"), index=True)
    seller_account_id: Mapped[int] = mapped_column(ForeignKey("market_accounts.id"), index=True)
    aggressor: Mapped[str] = mapped_column(String(1))
    delivered: Mapped[list] = mapped_column(JSONData, default=list)
    settlement_entry_id: Mapped[int] = mapped_column(ForeignKey("market_ledger_entries.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class SettlementPrice(Base):
    __tablename__ = "market_settlement_prices"
    __table_args__ = (UniqueConstraint("product_id", "day", name="uq_market_settlement_prices_product_day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("market_products.id"), index=True)
    day: Mapped[date] = mapped_column(Date)
    price_fen: Mapped[int] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(16))  # vwap / last / previous
    volume_lots: Mapped[int] = mapped_column(Integer)


class SessionLog(Base):
    __tablename__ = "market_session_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("market_products.id"), index=True)
    phase: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DailyStatement(Base):
    __tablename__ = "market_statements"
    __table_args__ = (UniqueConstraint("account_id", "day", name="uq_market_statements_account_day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("market_accounts.id"), index=True)
    day: Mapped[date] = mapped_column(Date, index=True)
    opening_fen: Mapped[int] = mapped_column(BigInteger)
    deposits_fen: Mapped[int] = mapped_column(BigInteger)
    withdrawals_fen: Mapped[int] = mapped_column(BigInteger)
    bought_fen: Mapped[int] = mapped_column(BigInteger)
    sold_fen: Mapped[int] = mapped_column(BigInteger)
    fees_fen: Mapped[int] = mapped_column(BigInteger)
    closing_fen: Mapped[int] = mapped_column(BigInteger)
    metal: Mapped[dict] = mapped_column(JSONData, default=dict)  # product code -> grams on live receipts
    trades: Mapped[list] = mapped_column(JSONData, default=list)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TradingDay(Base):
    """One trading day of the centre: opened by its first session, ended by its end of day, which it records
    (settlement prices, statements written, the cash reconciliation's summary). An ended day never reopens."""

    __tablename__ = "market_trading_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    state: Mapped[str] = mapped_column(String(8))  # open / ended
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_by_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ended_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    settlement_prices: Mapped[dict] = mapped_column(JSONData, default=dict)  # product code -> {price_fen, method}
    statements: Mapped[int] = mapped_column(Integer, default=0)
    reconciliation: Mapped[dict] = mapped_column(JSONData, default=dict)  # {ok, break, missing, breaks}
