"""Orders through the matching core, delivery-versus-payment settlement through the ledger, sessions, end of day.

Each engine command and everything it causes commit in one transaction: the order rows, the trades, the settlement
entries (buyer's cash to the seller less fees, fees to the centre, the receipts to the buyer) and the receipt
splits. The ledger's invariants are asserted after every settlement batch, so a batch that would break them rolls
back whole — the command with it — and the in-memory core rebuilds from what was committed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session, make_transient_to_detached

from ingot.core.audit import AuditEntry, jsonable, record_change, record_change_now
from ingot.core.auth import Principal
from ingot.core.errors import Conflict, NotFound
from ingot.core.timeutil import shown, utcnow
from ingot.market import gateway, ledger, rows, trading_days
from ingot.market.accounts import accessible_account, reconcile_cash
from ingot.market.common import (
    ID_MAX,
    OPERATORS,
    TRADERS,
    MarketRejected,
    bounded_int,
    day_bounds,
    refuse,
    require,
    in_scope,
    link_sees_account,
    scope_of,
    trading_day,
)
from ingot.market.engine import (
    CLOSE,
    CONTINUOUS,
    OPEN_AUCTION,
    UNCROSS,
    LIMIT,
    MESSAGES,
    SELL,
    AmendOrder,
    CancelOrder,
    NewOrder,
    Rejection,
    SessionControl,
    SetSettlementPrice,
    from_utc_micros,
    utc_micros,
)
from ingot.market.engine.events import (
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    ReceiptSplit,
    SessionChanged,
    SettlementInstruction,
    TradeExecuted,
)
from ingot.market.models import (
    CashMovement,
    DailyStatement,
    LedgerAccount,
    MarketUser,
    Member,
    Order,
    Product,
    Receipt,
    SessionLog,
    SettlementPrice,
    Trade,
    TradingAccount,
    TradingDay,
)
from ingot.market.products import (
    get_product,
    previous_settlement_price,
    price_band,
    rules_for_day,
    rules_row_for_day,
    version_in_force,
)
from ingot.market.receipts import receipt_view, resting_status


def _rejected(code: str, field: str, **params) -> MarketRejected:
    zh, en = MESSAGES[code]
    return MarketRejected(Rejection(code, zh.format(**params), en.format(**params), field))


_rows, _keep, _get, _forget = rows.held, rows.keep, rows.get, rows.forget


# Built once, like the order path's own statements: a trade reads its buyer's and seller's accounts and its product.
_ACCOUNT_BY_ENGINE_ID = select(TradingAccount).where(TradingAccount.engine_id == bindparam("engine_id"))
_PRODUCT_BY_CODE = select(Product).where(Product.code == bindparam("code"))
_DAY_STATE = select(TradingDay.state).where(TradingDay.day == bindparam("day"))


def _account_by_engine_id(session: Session, engine_id: str) -> TradingAccount:
    row = _rows(session).get((TradingAccount, "engine_id", engine_id))
    if row is None:
        row = _keep(session, session.scalars(_ACCOUNT_BY_ENGINE_ID, {"engine_id": engine_id}).first())
    return row


def _product_by_code(session: Session, code: str) -> Product | None:
    row = _rows(session).get((Product, "code", code))
    if row is None:
        row = session.scalars(_PRODUCT_BY_CODE, {"code": code}).first()
        if row is not None:
            _keep(session, row)
    return row


def _ledger_account(session: Session, kind: str, asset: str, holder_id: int = 0) -> LedgerAccount:
    rows = _rows(session)
    row = rows.get((LedgerAccount, kind, asset, holder_id))
    if row is None:
        row = rows[(LedgerAccount, kind, asset, holder_id)] = ledger.ledger_account(session, kind, asset, holder_id)
    return row


def _ledger_accounts(session: Session, keys: list[tuple[str, str, int]]) -> None:
    """Hold the ledger accounts (kind, asset, holder) a settlement posts to, read in one statement; any still
    missing are opened one by one by `_ledger_account`."""
    rows = _rows(session)
    wanted = [key for key in keys if (LedgerAccount, *key) not in rows]
    if wanted:
        for row in ledger.ledger_accounts(session, wanted):
            rows[(LedgerAccount, row.kind, row.asset, row.holder_id)] = row


def _receipts(session: Session, numbers) -> dict[str, Receipt]:
    """The receipts with these numbers (those that exist), each read once per transaction."""
    rows = _rows(session)
    found = {n: rows[(Receipt, "number", n)] for n in numbers if (Receipt, "number", n) in rows}
    missing = sorted(set(numbers) - set(found))
    if missing:
        for receipt in session.scalars(_RECEIPTS_BY_NUMBER, {"numbers": missing}):
            found[receipt.number] = _keep(session, receipt)
    return found


def order_view(session: Session, order: Order) -> dict:
    account = _get(session, TradingAccount, order.account_id)
    product = _get(session, Product, order.product_id)
    return {
        "order_id": order.id, "key": order.idempotency_key, "account": account.engine_id, "product": product.code,
        "side": order.side, "order_type": order.order_type, "tif": order.tif, "price_fen": order.price_fen,
        "lots": order.lots, "open_lots": order.open_lots, "filled_lots": order.filled_lots, "status": order.status,
        "cancel_reason": order.cancel_reason, "receipts": order.receipt_numbers,
        "created_at": order.created_at.isoformat(), "updated_at": order.updated_at.isoformat(),
    }


def trade_view(session: Session, trade: Trade, *, public: bool = False) -> dict:
    product = _get(session, Product, trade.product_id)
    view = {"trade_id": trade.id, "product": product.code, "price_fen": trade.price_fen, "lots": trade.lots,
            "aggressor": trade.aggressor, "at": trade.at.isoformat(), "trade_day": trade.trade_day.isoformat()}
    if not public:
        view.update({
            "buyer": _get(session, TradingAccount, trade.buyer_account_id).engine_id,
            "seller": _get(session, TradingAccount, trade.seller_account_id).engine_id,
            "notional_fen": trade.notional_fen, "buyer_fee_fen": trade.buyer_fee_fen,
            "seller_fee_fen": trade.seller_fee_fen, "delivered": trade.delivered,
            "buy_order_id": trade.buy_order_id, "sell_order_id": trade.sell_order_id,
        })
    return view


@dataclass
class _Context:
    """What the events of one command need to be persisted."""

    actor: Principal
    at: datetime
    key: str = ""
    receipt_numbers: tuple[str, ...] = ()
    touched_receipts: set[str] = field(default_factory=set)
    trades: dict[int, TradeExecuted] = field(default_factory=dict)
    settled: int = 0
    # What the command's settlements changed (entries, balances, receipts), for the batch's invariant check.
    batch: ledger.SettlementBatch = field(default_factory=ledger.SettlementBatch)
    # Receipt number -> the sell order holding it, as this command's events place and split receipts.
    holders: dict[str, int] = field(default_factory=dict)
    # The settlements' audit entries and trade rows, in the order they were made, written by one Core
    # executemany each once the events' other rows are flushed (see `_persist_events`).
    audit_rows: list[dict] = field(default_factory=list)
    trade_rows: list[dict] = field(default_factory=list)

    def audit(self, entity: str, entity_id, action: str, before: dict | None, after: dict | None) -> None:
        """`record_change` for the settlement path: the same entry, timed now, written with the batch."""
        self.audit_rows.append({
            "at": utcnow(), "actor_id": self.actor.user_id, "actor": self.actor.username, "entity": entity,
            "entity_id": str(entity_id), "action": action, "before": jsonable(before), "after": jsonable(after),
            "division_code": None, "enterprise_id": None})


def _orders_of(events: list) -> set[int]:
    """The ids of the existing orders a command's events change (the orders it accepts are new)."""
    ids: set[int] = set()
    for event in events:
        kind = type(event)
        if kind is OrderCancelled or kind is OrderAmended:
            ids.add(event.order_id)
        elif kind is TradeExecuted:
            ids.update((event.buy_order_id, event.sell_order_id))
        elif kind is OrderAccepted:
            ids.discard(event.order_id)
    return ids


def _persist_events(session: Session, events: list, context: _Context) -> None:
    existing = _orders_of(events)
    if existing:
        # One query loads them all, so each `_get` below finds its order without one.
        for order in session.scalars(_ORDERS_BY_ID, {"ids": sorted(existing)}):
            _keep(session, order)
    # No autoflush while the events are applied: each query below would otherwise flush whatever the events so far
    # left pending (one flush per query, several per trade). Nothing read here needs those rows written first:
    # the orders, receipts and ledger accounts it changes are held objects (a split's children and a settlement's
    # ledger entry are inserted with Core statements that return their ids); everything else is written by the one
    # flush below, before the trades, the audit entries, the liens and the check.
    with session.no_autoflush:
        for event in events:
            kind = type(event)
            if kind is OrderAccepted:
                account = _account_by_engine_id(session, event.member_id)
                session.add(_keep(session, Order(
                    id=event.order_id, idempotency_key=context.key, account_id=account.id,
                    product_id=_product_by_code(session, event.product_id).id, side=event.side,
                    order_type=event.order_type, tif=event.tif, price_fen=event.price_fen, lots=event.lots,
                    open_lots=event.lots, filled_lots=0, status="resting", receipt_numbers=list(context.receipt_numbers),
                    placed_by=context.actor.user_id, created_at=context.at, updated_at=context.at)))
                # Not flushed here: the batch's one flush below writes it, before the trade rows are inserted.
                context.touched_receipts.update(context.receipt_numbers)
                context.holders.update((number, event.order_id) for number in context.receipt_numbers)
            elif kind is OrderCancelled:
                order = _get(session, Order, event.order_id)
                order.status = "expired" if event.reason == "expired" else "cancelled"
                order.cancel_reason, order.open_lots, order.updated_at = event.reason, 0, context.at
                context.touched_receipts.update(order.receipt_numbers)
            elif kind is OrderAmended:
                # An amendment that crosses trades first: its fills arrive before this event, which carries the lots
                # still open after them, so it has the last word on the order's quantities and state.
                order = _get(session, Order, event.order_id)
                order.lots = order.filled_lots + event.lots
                order.open_lots, order.price_fen, order.updated_at = event.lots, event.price_fen, context.at
                order.status = "resting" if event.lots else "filled"
            elif kind is TradeExecuted:
                context.trades[event.trade_id] = event
                for order_id in (event.buy_order_id, event.sell_order_id):
                    order = _get(session, Order, order_id)
                    order.filled_lots += event.lots
                    order.open_lots -= event.lots
                    order.updated_at = context.at
                    if order.open_lots == 0:
                        order.status = "filled"
                context.touched_receipts.update(_get(session, Order, event.sell_order_id).receipt_numbers)
            elif kind is ReceiptSplit:
                _split(session, event, context)
            elif kind is SettlementInstruction:
                _settle(session, event, context)
            elif kind is SessionChanged:
                session.add(SessionLog(product_id=_product_by_code(session, event.product_id).id, phase=event.phase,
                                       at=context.at))
    session.flush()
    # The settlements' trades and audit entries, after the rows they refer to (the ledger entries are already
    # written) and before the liens' entries, so the log keeps the order the changes were made in.
    connection = session.connection()
    if context.trade_rows:
        connection.execute(_INSERT_TRADE, context.trade_rows)
    if context.audit_rows:
        connection.execute(_INSERT_AUDIT, context.audit_rows)
    _sync_liens(session, context)
    if context.settled:
        ledger.check_batch_invariants(session, context.batch)


def _split(session: Session, event: ReceiptSplit, context: _Context) -> None:
    parent = _receipts(session, (event.parent_id,))[event.parent_id]
    before = receipt_view(session, parent)
    context.batch.track(parent, before["product"])
    # The two children are inserted at once with one Core statement that returns their ids (no flush of the
    # command's other pending rows for them), then held as persistent ORM rows with exactly the values written, so
    # the delivery and the liens below change them like any receipt read from the database.
    values = [{"number": number, "product_id": parent.product_id, "warehouse_id": parent.warehouse_id,
               "owner_account_id": parent.owner_account_id, "grade": parent.grade, "lot_no": parent.lot_no,
               "brand": parent.brand, "net_grams": grams, "lots": lots,
               "assay_certificate": parent.assay_certificate, "assay": dict(parent.assay or {}),
               "location": parent.location, "status": "registered", "lien_kind": None, "lien_ref": None,
               "parent_id": parent.id, "registered_at": context.at, "updated_at": context.at}
              for number, grams, lots in ((event.delivered_id, event.delivered_grams, event.delivered_lots),
                                          (event.remainder_id, event.remainder_grams, event.remainder_lots))]
    ids = session.connection().execute(_INSERT_RECEIPTS, values).scalars().all()
    for receipt_id, row in zip(ids, values, strict=True):
        child = Receipt(id=receipt_id, **row)
        make_transient_to_detached(child)
        session.add(child)
        _keep(session, child)
        context.batch.made(receipt_id)
        context.touched_receipts.add(row["number"])
    # The sell order holding the parent: placed in this command, or named by the parent's lien.
    holder_id = context.holders.get(event.parent_id)
    if holder_id is None and parent.lien_kind == "order" and parent.lien_ref:
        holder_id = int(parent.lien_ref)
    parent.status, parent.lien_kind, parent.lien_ref, parent.updated_at = "split", None, None, context.at
    # The sell order now holds the remainder in place of the parent.
    holder = _get(session, Order, holder_id) if holder_id is not None else None
    if holder is not None and holder.status == "resting" and holder.side == SELL and event.parent_id in holder.receipt_numbers:
        holders = [holder]
    else:
        session.flush()  # the query below reads the orders' rows: write what the command changed so far first
        holders = session.scalars(select(Order).where(Order.status == "resting", Order.side == SELL))
    for order in holders:
        if event.parent_id in order.receipt_numbers:
            order.receipt_numbers = [event.remainder_id if n == event.parent_id else n for n in order.receipt_numbers]
            context.holders[event.remainder_id] = order.id
    context.audit("market_receipt", parent.id, "split", before,
                  {**receipt_view(session, parent), "children": [event.delivered_id, event.remainder_id]})


def _settle(session: Session, instruction: SettlementInstruction, context: _Context) -> None:
    """Delivery versus payment for one trade, in one balanced ledger entry (money and metal together)."""
    executed = context.trades[instruction.trade_id]
    product = _product_by_code(session, instruction.product_id)
    buyer = _account_by_engine_id(session, instruction.buyer_id)
    seller = _account_by_engine_id(session, instruction.seller_id)
    _ledger_accounts(session, [(ledger.CASH, ledger.CNY, buyer.id), (ledger.CASH, ledger.CNY, seller.id),
                               (ledger.CENTRE, ledger.CNY, 0), (ledger.METAL, product.code, seller.id),
                               (ledger.METAL, product.code, buyer.id)])
    held_receipts = _receipts(session, [delivery.receipt_id for delivery in instruction.receipts])
    postings = [
        (_ledger_account(session, ledger.CASH, ledger.CNY, buyer.id), -instruction.buyer_pays_fen),
        (_ledger_account(session, ledger.CASH, ledger.CNY, seller.id), instruction.seller_receives_fen),
        (_ledger_account(session, ledger.CENTRE, ledger.CNY), instruction.centre_receives_fen),
    ]
    delivered = []
    for delivery in instruction.receipts:
        receipt = held_receipts.get(delivery.receipt_id)
        if receipt is None or receipt.owner_account_id != seller.id or receipt.net_grams != delivery.weight_grams:
            raise ledger.LedgerInvariantBroken(f"receipt {delivery.receipt_id} is not the seller's as the engine says")
        postings.append((_ledger_account(session, ledger.METAL, product.code, seller.id), -delivery.weight_grams))
        postings.append((_ledger_account(session, ledger.METAL, product.code, buyer.id), delivery.weight_grams))
        before = receipt_view(session, receipt)
        context.batch.track(receipt, product.code)
        receipt.owner_account_id, receipt.status = buyer.id, "transferred"
        receipt.lien_kind = receipt.lien_ref = None
        receipt.updated_at = context.at
        context.audit("market_receipt", receipt.id, "transfer", before, receipt_view(session, receipt))
        delivered.append({"receipt": delivery.receipt_id, "grams": delivery.weight_grams, "lots": delivery.lots})
        context.touched_receipts.discard(delivery.receipt_id)
    at = from_utc_micros(executed.at_us)
    # A trade booked into a day whose statements are already written would be missing from them: refuse it, and
    # the whole command with it (the transaction rolls back and the core rebuilds from what was committed).
    if not _day_not_ended(session, trading_day(at)):
        _refuse_if_day_ended(session, trading_day(at), "trade")
    entry_id = ledger.post_in_batch(session, context.batch, "settlement", f"trade:{instruction.trade_id}", postings,
                                    at=at, memo=f"{product.code} {executed.lots} @ {executed.price_fen}")
    context.trade_rows.append(dict(
        id=instruction.trade_id, product_id=product.id, trade_day=trading_day(at), price_fen=executed.price_fen,
        lots=executed.lots, notional_fen=instruction.notional_fen, buyer_fee_fen=instruction.buyer_fee_fen,
        seller_fee_fen=instruction.seller_fee_fen, buy_order_id=executed.buy_order_id,
        sell_order_id=executed.sell_order_id, buyer_account_id=buyer.id, seller_account_id=seller.id,
        aggressor=executed.aggressor, delivered=delivered, settlement_entry_id=entry_id, at=at))
    # The trade row and the audit entries are written after the batch's one flush in `_persist_events`, with one
    # Core executemany each.
    context.audit("market_trade", instruction.trade_id, "settle", None,
                  {"product": product.code, "price_fen": executed.price_fen, "lots": executed.lots,
                   "buyer": buyer.engine_id, "seller": seller.engine_id, "buyer_pays_fen": instruction.buyer_pays_fen,
                   "seller_receives_fen": instruction.seller_receives_fen, "fees_fen": instruction.centre_receives_fen,
                   "delivered": delivered, "ledger_entry": entry_id})
    context.settled += 1


def _sync_liens(session: Session, context: _Context) -> None:
    """Mirror the core's order liens onto the receipts a command touched; pledges are this layer's own."""
    numbers = sorted(context.touched_receipts)
    if not numbers:
        return

    def liens(core):
        return {n: (core.receipts[n].status, core.receipts[n].encumbered_by) for n in numbers if n in core.receipts}

    engine_liens = gateway.read_fed_core(session, liens)
    rows = _receipts(session, numbers)
    for number in numbers:
        receipt = rows.get(number)
        if receipt is None or number not in engine_liens or receipt.lien_kind == "pledge":
            continue
        status, order_id = engine_liens[number]
        if status != "live":
            continue
        before = (receipt.status, receipt.lien_kind, receipt.lien_ref)
        context.batch.track(receipt, _get(session, Product, receipt.product_id).code)
        if order_id:
            receipt.lien_kind, receipt.lien_ref, receipt.status = "order", str(order_id), "encumbered"
        elif receipt.lien_kind == "order" or receipt.status == "encumbered":
            receipt.lien_kind = receipt.lien_ref = None
            receipt.status = resting_status(session, receipt)
        after = (receipt.status, receipt.lien_kind, receipt.lien_ref)
        if after != before:
            receipt.updated_at = context.at
            record_change(session, context.actor, "market_receipt", receipt.id, "lien",
                          dict(zip(("status", "lien_kind", "lien_ref"), before)),
                          dict(zip(("status", "lien_kind", "lien_ref"), after)))
    session.flush()


def _run(session: Session, command, context: _Context, *, order_id: int | None = None):
    """Apply a command and persist what it caused. A resubmitted key returns the first result; a key already used
    for a different command (another kind, or another order) is refused rather than answered with that result."""
    outcome = gateway.execute(session, command)
    if not outcome.ack.accepted:
        raise MarketRejected(outcome.ack.rejection)
    if outcome.fresh:
        _persist_events(session, outcome.events, context)
    elif order_id is not None and outcome.ack.order_id != order_id:
        raise refuse("key_reused", f"幂等键 {command.key} 已用于其他指令", f"idempotency key {command.key} was used for another command",
                     "key")
    return outcome


# ---------------------------------------------------------------- member orders


# Built once (SQLAlchemy memoises a statement object's cache key; building and keying it per order costs more than
# running it). Plain columns, no ORM entity: the order path builds no ORM object unless the command trades.
_ORDER_ACCOUNT = (
    select(TradingAccount.id, TradingAccount.engine_id, TradingAccount.member_id, TradingAccount.client_id,
           Member.division_code, MarketUser.member_id.label("link_member"),
           MarketUser.client_id.label("link_client"), MarketUser.warehouse_id.label("link_warehouse"),
           select(Order.id).where(Order.account_id == TradingAccount.id, Order.idempotency_key == bindparam("key"))
           .correlate(TradingAccount).scalar_subquery().label("existing_id"))
    .outerjoin(Member, Member.id == TradingAccount.member_id)
    .outerjoin(MarketUser, MarketUser.user_id == bindparam("user_id"))
    .where(TradingAccount.engine_id == bindparam("engine_id")))
_RECEIPTS_BY_NUMBER = select(Receipt).where(Receipt.number.in_(bindparam("numbers", expanding=True)))
_ORDERS_BY_ID = select(Order).where(Order.id.in_(bindparam("ids", expanding=True)))
_RECEIPT_LIENS = (select(Receipt.id, Receipt.number, Receipt.owner_account_id, Receipt.status, Receipt.lien_kind,
                         Receipt.lien_ref)
                  .where(Receipt.number.in_(bindparam("numbers", expanding=True))))
_INSERT_ORDER = insert(Order.__table__)
_INSERT_TRADE = insert(Trade.__table__)
_INSERT_AUDIT = insert(AuditEntry.__table__)
_INSERT_RECEIPTS = insert(Receipt.__table__).returning(Receipt.__table__.c.id, sort_by_parameter_order=True)
_SET_LIEN = (update(Receipt.__table__).where(Receipt.__table__.c.id == bindparam("receipt_id"))
             .values(status=bindparam("status"), lien_kind=bindparam("lien_kind"), lien_ref=bindparam("lien_ref"),
                     updated_at=bindparam("at")))
_CANCEL_ROW = (update(Order.__table__).where(Order.__table__.c.id == bindparam("order_id"))
               .values(status=bindparam("status"), cancel_reason=bindparam("reason"), open_lots=0,
                       updated_at=bindparam("at")))
_OWN_ORDER = (
    select(Order.id, Order.idempotency_key, Order.side, Order.order_type, Order.tif, Order.price_fen, Order.lots,
           Order.open_lots, Order.filled_lots, Order.status, Order.cancel_reason, Order.receipt_numbers,
           Order.created_at, Order.updated_at, Product.code.label("product_code"),
           TradingAccount.id.label("account_id"), TradingAccount.engine_id, TradingAccount.member_id,
           TradingAccount.client_id, MarketUser.member_id.label("link_member"),
           MarketUser.client_id.label("link_client"), MarketUser.warehouse_id.label("link_warehouse"))
    .join(TradingAccount, TradingAccount.id == Order.account_id)
    .join(Product, Product.id == Order.product_id)
    .outerjoin(MarketUser, MarketUser.user_id == bindparam("user_id"))
    .where(Order.id == bindparam("order_id")))


def _row_visible(session: Session, actor: Principal, row) -> bool:
    """Whether `actor` may see the account on a one-statement read (`row`: the account's columns and the caller's
    market-user link, or None): a trader through its link, anyone else through the account's scope."""
    if row is None:
        return False
    if actor.role in TRADERS:
        return link_sees_account(row.link_member, row.link_client, row.link_warehouse, row)
    return in_scope(session, actor, row)


def _order_account(session: Session, actor: Principal, engine_id: str, key: str):
    """What `accessible_account` decides, plus the member's division (for the audit entry) and the id of the order
    already placed on the account under `key`, in one statement instead of four. The account comes back as a plain
    row (`id`, `engine_id`, `member_id`, `client_id`)."""
    row = session.connection().execute(_ORDER_ACCOUNT, {"engine_id": engine_id, "user_id": actor.user_id,
                                                        "key": key}).first()
    if not _row_visible(session, actor, row):
        # Said as "no such account" so that nobody learns which other accounts exist.
        raise NotFound(f"交易账户不存在：{engine_id}", f"no such trading account: {engine_id}", field="account")
    return row, row.division_code, row.existing_id


def _view_of(order_id: int, key: str, account: str, product: str, side: str, order_type: str, tif: str,
             price_fen: int, lots: int, open_lots: int, filled_lots: int, status: str, cancel_reason, receipts,
             created_at: datetime, updated_at: datetime) -> dict:
    """`order_view` from plain values (the same keys, the same values)."""
    return {"order_id": order_id, "key": key, "account": account, "product": product, "side": side,
            "order_type": order_type, "tif": tif, "price_fen": price_fen, "lots": lots, "open_lots": open_lots,
            "filled_lots": filled_lots, "status": status, "cancel_reason": cancel_reason, "receipts": list(receipts),
            "created_at": created_at.isoformat(), "updated_at": updated_at.isoformat()}


def _only_event(events: list, kind, order_id: int):
    """The command's one event when it is a `kind` event for `order_id`; else None (the command did more: it
    traded, split a receipt or changed a session, and its events go through `_persist_events`)."""
    if len(events) == 1 and type(events[0]) is kind and events[0].order_id == order_id:
        return events[0]
    return None


def _sync_liens_now(session: Session, actor: Principal, at: datetime, numbers) -> None:
    """`_sync_liens` for a command that changed only orders' liens (an order placed or cancelled, no trade): the
    receipts' rows are read and written with Core statements, each change audited as there."""
    if not numbers:
        return
    numbers = sorted(set(numbers))

    def liens(core):
        return {n: (core.receipts[n].status, core.receipts[n].encumbered_by) for n in numbers if n in core.receipts}

    engine_liens = gateway.read_fed_core(session, liens)
    connection = session.connection()
    found = {row.number: row for row in connection.execute(_RECEIPT_LIENS, {"numbers": numbers})}
    for number in numbers:
        receipt = found.get(number)
        if receipt is None or number not in engine_liens or receipt.lien_kind == "pledge":
            continue
        status, order_id = engine_liens[receipt.number]
        if status != "live":
            continue
        before = (receipt.status, receipt.lien_kind, receipt.lien_ref)
        if order_id:
            after = ("encumbered", "order", str(order_id))
        elif receipt.lien_kind == "order" or receipt.status == "encumbered":
            after = (resting_status(session, receipt), None, None)
        else:
            after = before
        if after == before:
            continue
        connection.execute(_SET_LIEN, {"receipt_id": receipt.id, "status": after[0], "lien_kind": after[1],
                                       "lien_ref": after[2], "at": at})
        _forget(session, Receipt, receipt.id, ("number", receipt.number))
        record_change_now(session, actor, "market_receipt", receipt.id, "lien",
                          dict(zip(("status", "lien_kind", "lien_ref"), before)),
                          dict(zip(("status", "lien_kind", "lien_ref"), after)))


def place_order(session: Session, actor: Principal, **order) -> Order:
    """Feed one order to the core (see `submit_order`) and return its row."""
    view = submit_order(session, actor, **order)
    return _get(session, Order, view["order_id"])


def submit_order(
    session: Session,
    actor: Principal,
    *,
    account: str,
    product: str,
    side: str,
    lots: int,
    price_fen: int,
    key: str,
    order_type: str = LIMIT,
    tif: str = "DAY",
    receipts: list[str] | tuple[str, ...] = (),
    now: datetime | None = None,
) -> dict:
    """Feed one order to the core and return its view. A resubmission with the same key returns the first order,
    never a second.

    An order that only rests (no trade) is written with Core statements: its row, the liens on the receipts it
    locks and the audit entries, with no ORM object and no unit-of-work flush; an order that trades goes through
    `_persist_events` (settlement, ledger, receipt splits). Both write the same rows."""
    require(actor, TRADERS, "下单（交易中心不持有头寸）", "place orders (the centre takes no positions)")
    trading_account, division, existing_id = _order_account(session, actor, account, key)
    at = now or utcnow()
    if existing_id is not None:
        return order_view(session, _get(session, Order, existing_id))
    code = product
    rules = rules_row_for_day(session, code, trading_day(at))
    if rules is None:
        raise _rejected("unknown_product", "product", product=code)
    if rules.version_id is None:
        raise refuse("product_not_in_force", f"品种 {code} 的交易规则尚未生效", f"product {code} has no rules in force yet",
                     "product")
    # The rules in force today, checked here because the core's own limits are opened wide (see products.py).
    if type(lots) is int and lots > rules.max_order_lots:
        raise _rejected("quantity_above_maximum", "lots", lots=lots, maximum=rules.max_order_lots)
    if type(price_fen) is int and price_fen > 0:
        if price_fen % rules.tick_fen:
            raise _rejected("off_tick_price", "price_fen", price=price_fen, tick=rules.tick_fen)
        low, high = price_band(rules.reference_fen, rules)
        if not low <= price_fen <= high:
            raise _rejected("price_outside_band", "price_fen", price=price_fen, low=low, high=high)
    numbers = tuple(receipts or ())
    if side == SELL:
        found = {row.number: row for row in session.connection().execute(_RECEIPT_LIENS, {"numbers": list(numbers)})}
        for number in numbers:
            receipt = found.get(number)
            if receipt is None:
                raise _rejected("unknown_receipt", "receipt_ids", receipt=number)
            if receipt.owner_account_id != trading_account.id:
                raise _rejected("receipt_not_owned", "receipt_ids", receipt=number, member=account)
            if receipt.lien_kind == "pledge":
                raise refuse("receipt_pledged", f"仓单 {number} 已质押，不能卖出", f"receipt {number} is pledged and cannot be sold",
                             "receipt_ids")
    command = NewOrder(key, utc_micros(at), trading_account.engine_id, code, side, lots, price_fen, order_type, tif,
                       numbers)
    try:
        outcome = gateway.execute(session, command)
        if not outcome.ack.accepted:
            raise MarketRejected(outcome.ack.rejection)
    except MarketRejected as rejected:
        if rejected.rejection.code == "market_closed":
            raise _with_next_opening(session, _get(session, Product, rules.id), at, rejected.rejection) from None
        raise
    order_id = outcome.ack.order_id
    accepted = _only_event(outcome.events, OrderAccepted, order_id) if outcome.fresh else None
    if accepted is not None:
        session.flush()
        session.connection().execute(_INSERT_ORDER, {
            "id": order_id, "idempotency_key": key, "account_id": trading_account.id, "product_id": rules.id,
            "side": accepted.side, "order_type": accepted.order_type, "tif": accepted.tif,
            "price_fen": accepted.price_fen, "lots": accepted.lots, "open_lots": accepted.lots, "filled_lots": 0,
            "status": "resting", "cancel_reason": None, "receipt_numbers": list(numbers), "placed_by": actor.user_id,
            "created_at": at, "updated_at": at})
        _sync_liens_now(session, actor, at, numbers)
        view = _view_of(order_id, key, trading_account.engine_id, code, accepted.side, accepted.order_type,
                        accepted.tif, accepted.price_fen, accepted.lots, accepted.lots, 0, "resting", None, numbers,
                        at, at)
        record_change_now(session, actor, "market_order", order_id, "place", None, view, division_code=division)
        return view
    if outcome.fresh:
        _persist_events(session, outcome.events, _Context(actor, at, key=key, receipt_numbers=numbers))
    order = _get(session, Order, order_id)
    if order is None or order.idempotency_key != key:
        raise refuse("key_reused", f"幂等键 {key} 已用于其他指令", f"idempotency key {key} was used for another command", "key")
    view = order_view(session, order)
    if outcome.fresh:
        record_change(session, actor, "market_order", order.id, "place", None, view, division_code=division)
    return view


def _with_next_opening(session: Session, product: Product, at: datetime, rejection: Rejection) -> MarketRejected:
    """A member told the market is closed also wants to know when it opens again."""
    from ingot.market import timetable  # timetable drives sessions through this module, so it is imported late

    opening = timetable.next_opening(session, product, at)
    if opening is None:
        return MarketRejected(rejection)
    when = shown(opening)
    return MarketRejected(rejection._replace(message_zh=f"{rejection.message_zh}；下一交易时段 {when}（北京时间）开始",
                                             message_en=f"{rejection.message_en}; the next session opens at {when} (Beijing time)"))


def _own_order(session: Session, actor: Principal, order_id: int) -> Order:
    require(actor, TRADERS, "撤单或改单", "cancel or amend orders")
    bounded_int(order_id, "order_id", "指令编号", "the order id", minimum=1, maximum=ID_MAX)
    order = _get(session, Order, order_id)
    if order is None or not in_scope(session, actor, _get(session, TradingAccount, order.account_id)):
        raise NotFound(f"指令不存在：{order_id}", f"no such order: {order_id}", field="order_id")
    return order


def cancel_order(session: Session, actor: Principal, order_id: int, *, key: str, now: datetime | None = None) -> Order:
    """Cancel one resting order (see `submit_cancel`) and return its row."""
    submit_cancel(session, actor, order_id, key=key, now=now)
    return _get(session, Order, order_id)


def submit_cancel(session: Session, actor: Principal, order_id: int, *, key: str, now: datetime | None = None) -> dict:
    """Cancel one resting order and return its view; a resubmitted key returns the order as it is. The order, its
    account and the caller's market-user link are read in one statement; a cancel that only cancels is written
    with Core statements (the order, the receipts it released, the audit entries)."""
    require(actor, TRADERS, "撤单或改单", "cancel or amend orders")
    bounded_int(order_id, "order_id", "指令编号", "the order id", minimum=1, maximum=ID_MAX)
    row = session.connection().execute(_OWN_ORDER, {"order_id": order_id, "user_id": actor.user_id}).first()
    if not _row_visible(session, actor, row):
        raise NotFound(f"指令不存在：{order_id}", f"no such order: {order_id}", field="order_id")
    at = now or utcnow()
    before = _view_of(row.id, row.idempotency_key, row.engine_id, row.product_code, row.side, row.order_type,
                      row.tif, row.price_fen, row.lots, row.open_lots, row.filled_lots, row.status, row.cancel_reason,
                      row.receipt_numbers, row.created_at, row.updated_at)
    outcome = gateway.execute(session, CancelOrder(key, utc_micros(at), row.engine_id, order_id))
    if not outcome.ack.accepted:
        raise MarketRejected(outcome.ack.rejection)
    if not outcome.fresh:
        if outcome.ack.order_id != order_id:
            raise refuse("key_reused", f"幂等键 {key} 已用于其他指令", f"idempotency key {key} was used for another command",
                         "key")
        return before
    cancelled = _only_event(outcome.events, OrderCancelled, order_id)
    if cancelled is None:
        _persist_events(session, outcome.events, _Context(actor, at, key=key))
        order = _get(session, Order, order_id)
        view = order_view(session, order)
        record_change(session, actor, "market_order", order_id, "cancel", before, view)
        return view
    status = "expired" if cancelled.reason == "expired" else "cancelled"
    session.flush()
    session.connection().execute(_CANCEL_ROW, {"order_id": order_id, "status": status, "reason": cancelled.reason,
                                               "at": at})
    _forget(session, Order, order_id)
    _sync_liens_now(session, actor, at, row.receipt_numbers)
    view = {**before, "open_lots": 0, "status": status, "cancel_reason": cancelled.reason,
            "updated_at": at.isoformat()}
    record_change_now(session, actor, "market_order", order_id, "cancel", before, view)
    return view


def amend_order(session: Session, actor: Principal, order_id: int, *, lots: int, price_fen: int, key: str,
                now: datetime | None = None) -> Order:
    order = _own_order(session, actor, order_id)
    account = _get(session, TradingAccount, order.account_id)
    product = _get(session, Product, order.product_id)
    at = now or utcnow()
    _product, version, reference_fen = rules_for_day(session, product.code, trading_day(at))
    # The rules in force today bound an amendment as they bound a new order.
    if type(lots) is int and version is not None and lots > version.max_order_lots:
        raise _rejected("quantity_above_maximum", "lots", lots=lots, maximum=version.max_order_lots)
    if type(price_fen) is int and price_fen > 0 and version is not None:
        if price_fen % version.tick_fen:
            raise _rejected("off_tick_price", "price_fen", price=price_fen, tick=version.tick_fen)
        low, high = price_band(reference_fen, version)
        if not low <= price_fen <= high:
            raise _rejected("price_outside_band", "price_fen", price=price_fen, low=low, high=high)
    before = order_view(session, order)
    outcome = _run(session, AmendOrder(key, utc_micros(at), account.engine_id, order_id, lots, price_fen),
                   _Context(actor, at, key=key), order_id=order_id)
    if not outcome.fresh:
        return order
    record_change(session, actor, "market_order", order.id, "amend", before, order_view(session, order))
    return order


def list_orders(session: Session, actor: Principal, *, status: str | None = None, product: str | None = None,
                limit: int = 200) -> list[Order]:
    scope = scope_of(session, actor)
    query = select(Order).order_by(Order.id.desc()).limit(limit)
    if not scope.everything:
        query = query.where(Order.account_id.in_(scope.account_ids))
    if status:
        query = query.where(Order.status == status)
    if product:
        query = query.where(Order.product_id == get_product(session, product).id)
    return list(session.scalars(query))


def list_trades(session: Session, actor: Principal, *, day: date | None = None, limit: int = 200) -> list[Trade]:
    scope = scope_of(session, actor)
    query = select(Trade).order_by(Trade.id.desc()).limit(limit)
    if not scope.everything:
        ids = scope.account_ids
        query = query.where(Trade.buyer_account_id.in_(ids) | Trade.seller_account_id.in_(ids))
    if day:
        query = query.where(Trade.trade_day == day)
    return list(session.scalars(query))


# ---------------------------------------------------------------- the centre's operations


def session_control(session: Session, actor: Principal, action: str, product: str | None = None,
                    now: datetime | None = None) -> list[dict]:
    """open_auction / uncross / continuous / break / close, for one product or all; an uncross settles its trades.
    The operator's command: the session scheduler leaves it in force until the timetable's next boundary."""
    require(actor, OPERATORS, "控制交易阶段", "control trading sessions")
    at = now or utcnow()
    products = [get_product(session, product)] if product else list(session.scalars(select(Product).order_by(Product.code)))
    results = []
    for row in products:
        _, trades = apply_session_action(session, actor, row.code, action, at,
                                         f"session:{row.code}:{action}:{utc_micros(at)}")
        results.append({"product": row.code, "action": action, "trades": trades})
    record_change(session, actor, "market_session", action, action, None, {"products": [r["product"] for r in results]})
    return results


def apply_session_action(session: Session, actor: Principal, code: str, action: str, at: datetime,
                         key: str) -> tuple[bool, list[int]]:
    """One journaled SessionControl for one product; an opening action opens its trading day, which must not have
    ended. Returns whether it was fresh (False: a command under this key was already applied, e.g. by another
    process) and the ids of the trades an uncross made (settled in the same transaction)."""
    day = trading_day(at)
    if action in OPENING_ACTIONS:
        _refuse_if_day_ended(session, day, action)
    outcome = _run(session, SessionControl(key, utc_micros(at), code, action), _Context(actor, at))
    if action in OPENING_ACTIONS and outcome.fresh:
        trading_days.mark_open(session, day, at)
    return outcome.fresh, list(outcome.ack.trade_ids)


END_OF_DAY_ENTITY = "market_end_of_day"
OPENING_ACTIONS = (OPEN_AUCTION, UNCROSS, CONTINUOUS)


def end_of_day_ran(session: Session, day: date) -> bool:
    """Whether end of day has run for `day`: the trading-days table says so (the audit entry is only the audit)."""
    return session.scalar(_DAY_STATE, {"day": day}) == trading_days.ENDED


def _day_not_ended(session: Session, day: date) -> bool:
    """`not end_of_day_ran`, asked once per transaction for each day a settlement books into (a command may settle
    several trades). Remembering the answer is sound because end of day journals its own commands: it cannot commit
    while this transaction holds the engine's head, which every settlement's transaction has taken before it gets
    here, so no end of day can land between this transaction's first check and its commit."""
    rows = _rows(session)
    if (TradingDay, "open", day) not in rows:
        if end_of_day_ran(session, day):
            return False
        rows[(TradingDay, "open", day)] = True
    return True


def _refuse_if_day_ended(session: Session, day: date, attempted: str) -> None:
    """Once end of day has fixed a day's settlement prices and statements, that day is over: no session reopens
    in it and no trade is booked into it. The next session belongs to the next trading day."""
    if end_of_day_ran(session, day):
        raise Conflict(
            f"交易日 {day.isoformat()} 已完成日终（结算价与结算单已生成），不能再{_ATTEMPTS[attempted][0]}；下一交易时段属于下一交易日",
            f"trading day {day.isoformat()} has been closed by end of day (settlement prices and statements are "
            f"written), so it cannot {_ATTEMPTS[attempted][1]}; the next session belongs to the next trading day",
            field="day" if attempted == "end_of_day" else "action", code="trading_day_ended")


_ATTEMPTS = {
    "open_auction": ("开始集合竞价", "open a call auction"),
    "uncross": ("集合竞价撮合", "uncross an auction"),
    "continuous": ("开始连续交易", "open continuous trading"),
    "trade": ("记入成交", "take a trade"),
    "end_of_day": ("重复日终", "run end of day again"),
}


def _check_statements_hold_every_trade(session: Session, day: date) -> None:
    """Each of the day's trades appears on the buyer's and the seller's statement, once each."""
    listed: dict[int, int] = {}
    for statement in session.scalars(select(DailyStatement).where(DailyStatement.day == day)):
        for line in statement.trades:
            listed[line["trade_id"]] = listed.get(line["trade_id"], 0) + 1
    for trade_id, buyer_id, seller_id in session.execute(
            select(Trade.id, Trade.buyer_account_id, Trade.seller_account_id).where(Trade.trade_day == day)):
        expected = 1 if buyer_id == seller_id else 2
        if listed.get(trade_id, 0) != expected:
            raise ledger.LedgerInvariantBroken(f"trade {trade_id} of {day.isoformat()} is on {listed.get(trade_id, 0)} "
                                               f"statement line(s), not {expected}")


def phases(session: Session) -> dict[str, str]:
    return gateway.read_core(session, lambda core: {pid: p.phase for pid, p in core.products.items()})


def settlement_price_of(trades: list[tuple[int, int]], previous_fen: int, tick_fen: int, min_lots: int) -> tuple[int, str]:
    """The day's settlement price from (price, lots) in time order: the volume-weighted average rounded half-up to
    the tick when at least `min_lots` traded, else the last trade's price, else the previous settlement price."""
    volume = sum(lots for _, lots in trades)
    if trades and volume >= min_lots:
        notional = sum(price * lots for price, lots in trades)
        ticks = (2 * notional + volume * tick_fen) // (2 * volume * tick_fen)
        return ticks * tick_fen, "vwap"
    if trades:
        return trades[-1][0], "last"
    return previous_fen, "previous"


def end_of_day(session: Session, actor: Principal, day: date | None = None, now: datetime | None = None) -> dict:
    """Close every open session (DAY orders expire), fix each product's settlement price, write the statements,
    assert the ledger's and the core's invariants, and snapshot the core."""
    require(actor, OPERATORS, "执行日终", "run the end of day")
    at = now or utcnow()
    today = trading_day(at)
    day = day or today
    if day > today:
        raise refuse("trading_day_not_over", f"交易日 {day.isoformat()} 尚未到来，不能日终",
                     f"trading day {day.isoformat()} has not come yet; its end of day cannot run", "day")
    _refuse_if_day_ended(session, day, "end_of_day")
    if day == today:
        # Today's sessions end here; a late end of day for an earlier day leaves today's trading alone.
        for code, phase in sorted(phases(session).items()):
            if phase != "closed":
                session_control(session, actor, CLOSE, code, now=at)
    prices = {}
    for product in session.scalars(select(Product).order_by(Product.code)):
        version = version_in_force(session, product, day)
        if version is None:
            continue
        rows = session.execute(select(Trade.price_fen, Trade.lots).where(Trade.product_id == product.id,
                                                                          Trade.trade_day == day).order_by(Trade.id)).all()
        previous = previous_settlement_price(session, product, day)
        price, method = settlement_price_of([(int(p), int(q)) for p, q in rows], previous, version.tick_fen,
                                            version.settlement_min_lots)
        session.add(SettlementPrice(product_id=product.id, day=day, price_fen=price, method=method,
                                    volume_lots=sum(int(q) for _, q in rows)))
        _run(session, SetSettlementPrice(f"settle:{product.code}:{day.isoformat()}", utc_micros(at), product.code, price),
             _Context(actor, at))
        prices[product.code] = {"price_fen": price, "method": method}
    statements = write_statements(session, day)
    _check_statements_hold_every_trade(session, day)
    ledger.check_invariants(session)
    gateway.read_core(session, lambda core: core.check_invariants())
    # Client money: every account's ledger balance against the custodian's closing balance; a break is an alarm.
    reconciliation = _reconciliation_summary(session, reconcile_cash(session, actor, day))
    gateway.snapshot(session)
    trading_days.mark_ended(session, actor, day, at, settlement_prices=prices, statements=statements,
                            reconciliation=reconciliation)
    record_change(session, actor, END_OF_DAY_ENTITY, day.isoformat(), "run", None,
                  {"prices": prices, "statements": statements, "reconciliation": reconciliation})
    return {"day": day.isoformat(), "settlement_prices": prices, "statements": statements,
            "reconciliation": reconciliation}


def _reconciliation_summary(session: Session, rows: list) -> dict:
    counts = {"ok": 0, "break": 0, "missing": 0}
    breaks = []
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
        if row.status == "break":
            breaks.append(session.get(TradingAccount, row.account_id).engine_id)
    return {**counts, "breaks": breaks}


def write_statements(session: Session, day: date) -> int:
    start, end = day_bounds(day)
    count = 0
    for account in session.scalars(select(TradingAccount).order_by(TradingAccount.id)):
        cash = ledger.cash_of(session, account.id)

        def total(kind: str) -> int:
            return int(session.scalar(select(func.coalesce(func.sum(CashMovement.amount_fen), 0)).where(
                CashMovement.account_id == account.id, CashMovement.kind == kind,
                CashMovement.at >= start, CashMovement.at < end)) or 0)

        trades = list(session.scalars(select(Trade).where(
            Trade.trade_day == day, (Trade.buyer_account_id == account.id) | (Trade.seller_account_id == account.id))
            .order_by(Trade.id)))
        bought = sum(t.notional_fen for t in trades if t.buyer_account_id == account.id)
        sold = sum(t.notional_fen for t in trades if t.seller_account_id == account.id)
        fees = sum(t.buyer_fee_fen for t in trades if t.buyer_account_id == account.id) + sum(
            t.seller_fee_fen for t in trades if t.seller_account_id == account.id)
        metal = {}
        for code, grams in session.execute(
            select(Product.code, func.sum(Receipt.net_grams)).join(Product, Product.id == Receipt.product_id)
            .where(Receipt.owner_account_id == account.id, Receipt.status.in_(ledger.LIVE_RECEIPT_STATES))
            .group_by(Product.code)
        ):
            metal[code] = int(grams)
        session.add(DailyStatement(
            account_id=account.id, day=day, opening_fen=ledger.balance_at(session, cash, start),
            deposits_fen=total("deposit"), withdrawals_fen=total("withdrawal"), bought_fen=bought, sold_fen=sold,
            fees_fen=fees, closing_fen=ledger.balance_at(session, cash, end), metal=metal,
            trades=[{"trade_id": t.id, "side": "B" if t.buyer_account_id == account.id else "S",
                     "product": session.get(Product, t.product_id).code, "price_fen": t.price_fen, "lots": t.lots}
                    for t in trades]))
        count += 1
    session.flush()
    return count


def statements_for(session: Session, actor: Principal, *, account: str | None = None,
                   day: date | None = None) -> list[DailyStatement]:
    scope = scope_of(session, actor)
    query = select(DailyStatement).order_by(DailyStatement.day.desc(), DailyStatement.account_id)
    if account:
        query = query.where(DailyStatement.account_id == accessible_account(session, actor, account).id)
    elif not scope.everything:
        query = query.where(DailyStatement.account_id.in_(scope.account_ids))
    if day:
        query = query.where(DailyStatement.day == day)
    return list(session.scalars(query))


def statement_view(session: Session, statement: DailyStatement) -> dict:
    account = session.get(TradingAccount, statement.account_id)
    return {"account": account.engine_id, "day": statement.day.isoformat(), "opening_fen": statement.opening_fen,
            "deposits_fen": statement.deposits_fen, "withdrawals_fen": statement.withdrawals_fen,
            "bought_fen": statement.bought_fen, "sold_fen": statement.sold_fen, "fees_fen": statement.fees_fen,
            "closing_fen": statement.closing_fen, "metal_grams": statement.metal, "trades": statement.trades}


