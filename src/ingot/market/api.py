"""HTTP API of the trading centre under /api/market: member API (orders, receipts, balances, statements),
administration API (products, members, warehouses, money, sessions, end of day), market data and a live stream."""
from __future__ import annotations

import asyncio
import json
import threading
import weakref
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.routing import Match, Route

from ingot.api.deps import UNIT_OF_WORK, current_principal, token_caller
from ingot.core.auth import Principal, User
from ingot.core.db import session_factory
from ingot.core.errors import InvalidInput, NotFound
from ingot.core.group_commit import GroupCommit
from ingot.core.timeutil import utcnow
from ingot.market import accounts, gateway, marketdata, products, receipts, timetable, trading, trading_days
from ingot.market.common import (
    ID_MAX,
    MAX_AMOUNT_FEN,
    MAX_BALANCE_FEN,
    MAX_FEE_PER_LOT_FEN,
    MAX_LOTS,
    MAX_PPM,
    MAX_PRICE_FEN,
    MAX_RECEIPT_GRAMS,
    MAX_STOCK_GRAMS,
    MAX_TICK_FEN,
    MAX_UNITS_PER_LOT,
    OVERSEERS,
    require,
    scope_of,
    trading_day,
)
from ingot.market.models import CashReconciliation, Client, MarketAlarm, TradingAccount

router = APIRouter(prefix="/api/market", tags=["market"])
# An order id in a path: the engine's ids are positive and fit a 64-bit column.
OrderId = Annotated[int, Path(ge=1, le=ID_MAX)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Rules(Strict):
    notice_ref: str = Field(min_length=1, max_length=64)
    grade_zh: str = Field(min_length=1, max_length=256)
    grade_en: str = Field(min_length=1, max_length=256)
    quality_spec: dict[str, str] = {}
    tick_fen: int = Field(ge=1, le=MAX_TICK_FEN)
    band_ppm: int = Field(ge=1, le=MAX_PPM)
    max_order_lots: int = Field(ge=1, le=MAX_LOTS)
    settlement_min_lots: int = Field(default=1, ge=1, le=MAX_LOTS)
    sessions: list[str]
    opening_auction: str | None = Field(default=None, max_length=11)
    deliverable_warehouses: list[str]


class ProductIn(Strict):
    code: str
    name_zh: str = Field(min_length=1, max_length=128)
    name_en: str = Field(min_length=1, max_length=128)
    metal: str = Field(min_length=1, max_length=32)
    price_unit: Literal["t", "kg"]
    units_per_lot: int = Field(ge=1, le=MAX_UNITS_PER_LOT)
    reference_price_fen: int = Field(ge=1, le=MAX_PRICE_FEN)
    buyer_fee_per_lot_fen: int = Field(default=0, ge=0, le=MAX_FEE_PER_LOT_FEN)
    buyer_fee_ppm: int = Field(default=0, ge=0, le=MAX_PPM)
    seller_fee_per_lot_fen: int = Field(default=0, ge=0, le=MAX_FEE_PER_LOT_FEN)
    seller_fee_ppm: int = Field(default=0, ge=0, le=MAX_PPM)
    effective_on: date | None = None
    rules: Rules


class VersionIn(Strict):
    effective_on: date
    rules: Rules


class Suspension(Strict):
    suspended: bool


class WarehouseIn(Strict):
    code: str
    name_zh: str = Field(min_length=1, max_length=128)
    name_en: str = ""
    division_code: str
    address: str = ""


class MemberIn(Strict):
    code: str
    name: str = Field(min_length=1, max_length=128)
    kind: str
    division_code: str
    enterprise_id: int | None = Field(default=None, ge=1, le=ID_MAX)


class ClientIn(Strict):
    code: str
    name: str = Field(min_length=1, max_length=128)


class UserLinkIn(Strict):
    member: str | None = None
    client: str | None = None
    warehouse: str | None = None


class BankLineIn(Strict):
    bank_ref: str = Field(min_length=1, max_length=64)
    account: str
    value_date: date
    amount_fen: int = Field(ge=-MAX_AMOUNT_FEN, le=MAX_AMOUNT_FEN)


class BankRef(Strict):
    bank_ref: str = Field(min_length=1, max_length=64)


class BankBalanceIn(Strict):
    account: str
    day: date
    closing_fen: int = Field(ge=-MAX_BALANCE_FEN, le=MAX_BALANCE_FEN)


class ReceiptIn(Strict):
    warehouse: str
    product: str
    owner_account: str
    lot_no: str = Field(min_length=1, max_length=64)
    net_grams: int = Field(ge=1, le=MAX_RECEIPT_GRAMS)
    assay_certificate: str = Field(min_length=1, max_length=64)
    assay: dict[str, str] = {}
    location: str = Field(min_length=1, max_length=64)
    brand: str = ""


class PledgeIn(Strict):
    pledgee: str = Field(min_length=1, max_length=64)


class InvalidateIn(Strict):
    reason: str = Field(min_length=1, max_length=256)


class StockReportIn(Strict):
    warehouse: str
    product: str
    day: date
    physical_grams: int = Field(ge=0, le=MAX_STOCK_GRAMS)


class OrderIn(Strict):
    account: str
    product: str
    side: Literal["B", "S"]
    # Upper bounds only: a zero or negative quantity or price reaches the core, which refuses it by name.
    lots: int = Field(le=MAX_LOTS)
    price_fen: int = Field(le=MAX_PRICE_FEN)
    order_type: Literal["limit", "market"] = "limit"
    tif: Literal["DAY", "GTC", "IOC", "FOK"] = "DAY"
    receipts: list[str] = []
    key: str | None = Field(default=None, max_length=128)


class KeyIn(Strict):
    key: str | None = Field(default=None, max_length=128)


class AmendIn(Strict):
    lots: int = Field(le=MAX_LOTS)
    price_fen: int = Field(le=MAX_PRICE_FEN)
    key: str | None = Field(default=None, max_length=128)


class SessionIn(Strict):
    action: Literal["open_auction", "uncross", "continuous", "break", "close"]
    product: str | None = None


class EndOfDayIn(Strict):
    day: date | None = None


def _key(body_key: str | None, header_key: str | None) -> str:
    key = body_key or header_key
    if not key:
        raise InvalidInput("每个指令须带幂等键（key 字段或 Idempotency-Key 请求头）",
                           "every command needs an idempotency key (the key field or the Idempotency-Key header)",
                           field="key", code="missing_key")
    return key


# ---------------------------------------------------------------- products, warehouses, members (administration)


@router.get("/products")
def get_products(session: Session = UNIT_OF_WORK, principal: Principal = Depends(current_principal)):
    today = trading_day(utcnow())
    return [products.product_view(p, products.version_in_force(session, p, today)) for p in products.list_products(session)]


@router.get("/products/{code}")
def get_product(code: str, session: Session = UNIT_OF_WORK, principal: Principal = Depends(current_principal)):
    product = products.get_product(session, code)
    view = products.product_view(product, products.version_in_force(session, product, trading_day(utcnow())))
    view["versions"] = [products.version_view(v) for v in products.versions_of(session, product)]
    return view


@router.post("/products", status_code=201)
def post_product(body: ProductIn, session: Session = UNIT_OF_WORK, principal: Principal = Depends(current_principal)):
    fields = body.model_dump(exclude={"rules"})
    product = products.create_product(session, principal, rules=body.rules.model_dump(), **fields)
    return products.product_view(product, products.versions_of(session, product)[0])


@router.post("/products/{code}/versions", status_code=201)
def post_version(code: str, body: VersionIn, session: Session = UNIT_OF_WORK,
                 principal: Principal = Depends(current_principal)):
    version = products.announce_version(session, principal, code, effective_on=body.effective_on,
                                        rules=body.rules.model_dump())
    return products.version_view(version)


@router.post("/products/{code}/suspension")
def post_product_suspension(code: str, body: Suspension, session: Session = UNIT_OF_WORK,
                            principal: Principal = Depends(current_principal)):
    return products.product_view(products.set_product_suspended(session, principal, code, body.suspended))


@router.get("/warehouses")
def get_warehouses(session: Session = UNIT_OF_WORK, principal: Principal = Depends(current_principal)):
    return [{"code": w.code, "name_zh": w.name_zh, "name_en": w.name_en, "division_code": w.division_code,
             "address": w.address} for w in accounts.list_warehouses(session)]


@router.post("/warehouses", status_code=201)
def post_warehouse(body: WarehouseIn, session: Session = UNIT_OF_WORK,
                   principal: Principal = Depends(current_principal)):
    warehouse = accounts.create_warehouse(session, principal, **body.model_dump())
    return {"code": warehouse.code, "name_zh": warehouse.name_zh, "division_code": warehouse.division_code}


@router.get("/members")
def get_members(session: Session = UNIT_OF_WORK, principal: Principal = Depends(current_principal)):
    scope = scope_of(session, principal)
    members = accounts.list_members(session)
    if not scope.everything:
        if scope.division_prefix is not None:
            members = [m for m in members if m.division_code.startswith(scope.division_prefix)]
        else:
            members = [m for m in members if m.id == scope.member_id]
    return [accounts.member_view(m) for m in members]


@router.post("/members", status_code=201)
def post_member(body: MemberIn, session: Session = UNIT_OF_WORK, principal: Principal = Depends(current_principal)):
    return accounts.member_view(accounts.create_member(session, principal, **body.model_dump()))


@router.post("/members/{code}/clients", status_code=201)
def post_client(code: str, body: ClientIn, session: Session = UNIT_OF_WORK,
                principal: Principal = Depends(current_principal)):
    client = accounts.add_client(session, principal, code, code=body.code, name=body.name)
    return {"member": code, "code": client.code, "name": client.name, "account": f"{code}/{client.code}"}


@router.post("/members/{code}/suspension")
def post_member_suspension(code: str, body: Suspension, session: Session = UNIT_OF_WORK,
                           principal: Principal = Depends(current_principal)):
    return accounts.member_view(accounts.set_member_suspended(session, principal, code, body.suspended))


@router.post("/users/{username}/link")
def post_user_link(username: str, body: UserLinkIn, session: Session = UNIT_OF_WORK,
                   principal: Principal = Depends(current_principal)):
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"用户不存在：{username}", f"no such user: {username}", field="username")
    member = accounts.get_member(session, body.member) if body.member else None
    client = None
    if body.client:
        if member is None:
            raise InvalidInput("指定客户时须同时指定会员", "a client is given together with its member", field="client")
        client = session.scalar(select(Client).where(Client.member_id == member.id, Client.code == body.client))
        if client is None:
            raise NotFound(f"客户不存在：{body.client}", f"no such client: {body.client}", field="client")
    warehouse = accounts.get_warehouse(session, body.warehouse) if body.warehouse else None
    link = accounts.link_user(session, principal, user, member=member, client=client, warehouse=warehouse)
    return {"user": username, "member_id": link.member_id, "client_id": link.client_id, "warehouse_id": link.warehouse_id}


# ---------------------------------------------------------------- money


@router.post("/bank-lines", status_code=201)
def post_bank_line(body: BankLineIn, session: Session = UNIT_OF_WORK, principal: Principal = Depends(current_principal)):
    line = accounts.import_bank_line(session, principal, bank_ref=body.bank_ref, account_engine_id=body.account,
                                     value_date=body.value_date, amount_fen=body.amount_fen)
    return {"bank_ref": line.bank_ref, "amount_fen": line.amount_fen}


@router.post("/deposits", status_code=201)
def post_deposit(body: BankRef, session: Session = UNIT_OF_WORK, principal: Principal = Depends(current_principal)):
    movement = accounts.deposit(session, principal, body.bank_ref)
    return {"id": movement.id, "kind": movement.kind, "amount_fen": movement.amount_fen}


@router.post("/withdrawals", status_code=201)
def post_withdrawal(body: BankRef, session: Session = UNIT_OF_WORK, principal: Principal = Depends(current_principal)):
    movement = accounts.withdraw(session, principal, body.bank_ref)
    return {"id": movement.id, "kind": movement.kind, "amount_fen": movement.amount_fen}


@router.post("/bank-balances", status_code=201)
def post_bank_balance(body: BankBalanceIn, session: Session = UNIT_OF_WORK,
                      principal: Principal = Depends(current_principal)):
    row = accounts.import_bank_balance(session, principal, account_engine_id=body.account, day=body.day,
                                       closing_fen=body.closing_fen)
    return {"account": body.account, "day": row.day.isoformat(), "closing_fen": row.closing_fen}


@router.post("/reconciliations/{day}")
def post_reconciliation(day: date, session: Session = UNIT_OF_WORK, principal: Principal = Depends(current_principal)):
    return [_reconciliation_view(session, r) for r in accounts.reconcile_cash(session, principal, day)]


@router.get("/reconciliations/{day}")
def get_reconciliation(day: date, session: Session = UNIT_OF_WORK, principal: Principal = Depends(current_principal)):
    require(principal, OVERSEERS, "查看资金对账", "see the cash reconciliation")
    scope = scope_of(session, principal)
    query = select(CashReconciliation).where(CashReconciliation.day == day).order_by(CashReconciliation.account_id)
    if not scope.everything:
        query = query.where(CashReconciliation.account_id.in_(scope.account_ids))
    return [_reconciliation_view(session, r) for r in session.scalars(query)]


def _reconciliation_view(session: Session, row: CashReconciliation) -> dict:
    return {"account": session.get(TradingAccount, row.account_id).engine_id, "day": row.day.isoformat(),
            "ledger_fen": row.ledger_fen, "bank_fen": row.bank_fen, "unmatched_lines": row.unmatched_lines,
            "status": row.status}


@router.get("/balances")
def get_balances(session: Session = UNIT_OF_WORK, principal: Principal = Depends(current_principal)):
    scope = scope_of(session, principal)
    query = select(TradingAccount).order_by(TradingAccount.engine_id)
    if not scope.everything:
        query = query.where(TradingAccount.id.in_(scope.account_ids))
    return [accounts.cash_position(session, account) for account in session.scalars(query)]


@router.get("/alarms")
def get_alarms(session: Session = UNIT_OF_WORK, principal: Principal = Depends(current_principal)):
    return [_alarm_view(a) for a in alarms_for(session, principal)]


def alarms_for(session: Session, principal: Principal) -> list[MarketAlarm]:
    require(principal, OVERSEERS, "查看市场告警", "see market alarms")
    scope = scope_of(session, principal)
    query = select(MarketAlarm).order_by(MarketAlarm.id.desc()).limit(200)
    if scope.division_prefix is not None:
        query = query.where(MarketAlarm.division_code.startswith(scope.division_prefix))
    return list(session.scalars(query))


def _alarm_view(alarm: MarketAlarm) -> dict:
    return {"id": alarm.id, "kind": alarm.kind, "reference": alarm.reference, "msg": alarm.message_zh,
            "msg_en": alarm.message_en, "raised_at": alarm.raised_at.isoformat()}


# ---------------------------------------------------------------- receipts


@router.get("/receipts")
def get_receipts(status: str | None = None, product: str | None = None, session: Session = UNIT_OF_WORK,
                 principal: Principal = Depends(current_principal)):
    return [receipts.receipt_view(session, r) for r in receipts.list_receipts(session, principal, status=status, product=product)]


@router.get("/receipts/{number}")
def get_receipt(number: str, session: Session = UNIT_OF_WORK, principal: Principal = Depends(current_principal)):
    return receipts.receipt_view(session, receipts.visible_receipt(session, principal, number))


@router.post("/receipts", status_code=201)
def post_receipt(body: ReceiptIn, session: Session = UNIT_OF_WORK, principal: Principal = Depends(current_principal)):
    receipt = receipts.register_receipt(
        session, principal, warehouse_code=body.warehouse, product_code=body.product, owner_account=body.owner_account,
        lot_no=body.lot_no, net_grams=body.net_grams, assay_certificate=body.assay_certificate, assay=body.assay,
        location=body.location, brand=body.brand)
    return receipts.receipt_view(session, receipt)


@router.post("/receipts/{number}/pledge")
def post_pledge(number: str, body: PledgeIn, session: Session = UNIT_OF_WORK,
                principal: Principal = Depends(current_principal)):
    return receipts.receipt_view(session, receipts.pledge_receipt(session, principal, number, body.pledgee))


@router.post("/receipts/{number}/release")
def post_release(number: str, session: Session = UNIT_OF_WORK, principal: Principal = Depends(current_principal)):
    return receipts.receipt_view(session, receipts.release_pledge(session, principal, number))


@router.post("/receipts/{number}/load-out")
def post_load_out(number: str, session: Session = UNIT_OF_WORK, principal: Principal = Depends(current_principal)):
    return receipts.receipt_view(session, receipts.cancel_for_load_out(session, principal, number))


@router.post("/receipts/{number}/out")
def post_out(number: str, session: Session = UNIT_OF_WORK, principal: Principal = Depends(current_principal)):
    return receipts.receipt_view(session, receipts.confirm_out(session, principal, number))


@router.post("/receipts/{number}/invalidate")
def post_invalidate(number: str, body: InvalidateIn, session: Session = UNIT_OF_WORK,
                    principal: Principal = Depends(current_principal)):
    return receipts.receipt_view(session, receipts.invalidate_receipt(session, principal, number, body.reason))


@router.post("/stock-reports", status_code=201)
def post_stock_report(body: StockReportIn, session: Session = UNIT_OF_WORK,
                      principal: Principal = Depends(current_principal)):
    report = receipts.report_stock(session, principal, warehouse_code=body.warehouse, product_code=body.product,
                                   day=body.day, physical_grams=body.physical_grams)
    return {"warehouse": body.warehouse, "product": body.product, "day": report.day.isoformat(),
            "physical_grams": report.physical_grams, "registry_grams": report.registry_grams, "status": report.status}


# ---------------------------------------------------------------- orders, trades, statements


def _acknowledge(session: Session, order) -> dict:
    """Commit the command (journal, order, settlement, audit) and only then answer: the request's own unit of work
    would commit after the response has been sent, and an acknowledgement must never precede its journal record."""
    view = trading.order_view(session, order)
    session.commit()
    return view


# The order endpoints are most of the server's traffic. Their units of work run on the order desk's one thread, a
# batch of them to a transaction with a savepoint each (`core.group_commit`), the token checked on the event loop
# first; each answers with the view built from the values it wrote, once the batch has committed.
_order_desks: "weakref.WeakKeyDictionary[object, GroupCommit]" = weakref.WeakKeyDictionary()
_order_desks_lock = threading.Lock()


def _order_desk() -> GroupCommit:
    factory = session_factory()
    desk = _order_desks.get(factory)
    if desk is None:
        with _order_desks_lock:
            desk = _order_desks.get(factory)
            if desk is None:
                desk = _order_desks[factory] = GroupCommit(factory, gateway.begin_writing, name="market-order-desk")
    return desk


async def _at_the_desk(caller: int, work):
    return await asyncio.wrap_future(_order_desk().submit(caller, work))


@router.post("/orders", status_code=201)
async def post_order(body: OrderIn, idempotency_key: str | None = Header(default=None),
                     caller: int = Depends(token_caller)):
    work = _order_work(body, idempotency_key, {})  # the lane below runs the same work
    return JSONResponse(await _at_the_desk(caller, work), status_code=201)


@router.get("/orders")
def get_orders(status: str | None = None, product: str | None = None, session: Session = UNIT_OF_WORK,
               principal: Principal = Depends(current_principal)):
    return [trading.order_view(session, o) for o in trading.list_orders(session, principal, status=status, product=product)]


@router.post("/orders/{order_id}/cancel")
async def post_cancel(order_id: OrderId, body: KeyIn, idempotency_key: str | None = Header(default=None),
                      caller: int = Depends(token_caller)):
    work = _cancel_work(body, idempotency_key, {"order_id": order_id})  # the lane below runs the same work
    return JSONResponse(await _at_the_desk(caller, work))


@router.post("/orders/{order_id}/amend")
def post_amend(order_id: OrderId, body: AmendIn, idempotency_key: str | None = Header(default=None),
               session: Session = UNIT_OF_WORK, principal: Principal = Depends(current_principal)):
    order = trading.amend_order(session, principal, order_id, lots=body.lots, price_fen=body.price_fen,
                                key=_key(body.key, idempotency_key))
    return _acknowledge(session, order)


@router.get("/trades")
def get_trades(day: date | None = None, session: Session = UNIT_OF_WORK,
               principal: Principal = Depends(current_principal)):
    return [trading.trade_view(session, t) for t in trading.list_trades(session, principal, day=day)]


@router.get("/statements")
def get_statements(account: str | None = None, day: date | None = None, session: Session = UNIT_OF_WORK,
                   principal: Principal = Depends(current_principal)):
    return [trading.statement_view(session, s) for s in trading.statements_for(session, principal, account=account, day=day)]


# ---------------------------------------------------------------- the centre's operations


@router.post("/sessions")
def post_session(body: SessionIn, session: Session = UNIT_OF_WORK, principal: Principal = Depends(current_principal)):
    return trading.session_control(session, principal, body.action, body.product)


@router.get("/sessions")
def get_sessions(session: Session = UNIT_OF_WORK, principal: Principal = Depends(current_principal)):
    return trading.phases(session)


@router.post("/sessions/run")
def post_sessions_run(session: Session = UNIT_OF_WORK, principal: Principal = Depends(current_principal)):
    """Bring every product's phase in line with its timetable now, as the scheduler inside `ingot serve` does."""
    return timetable.run_schedule(session, principal)


@router.get("/timetable")
def get_timetable(session: Session = UNIT_OF_WORK, principal: Principal = Depends(current_principal)):
    return timetable.timetable(session, principal)


@router.get("/trading-days")
def get_trading_days(limit: int = Query(100, ge=1, le=1000), session: Session = UNIT_OF_WORK,
                     principal: Principal = Depends(current_principal)):
    return [trading_days.trading_day_view(row) for row in trading_days.list_trading_days(session, principal, limit=limit)]


@router.post("/end-of-day")
def post_end_of_day(body: EndOfDayIn, session: Session = UNIT_OF_WORK,
                    principal: Principal = Depends(current_principal)):
    return trading.end_of_day(session, principal, body.day)


# ---------------------------------------------------------------- market data


@router.get("/tape")
def get_tape(product: str | None = None, after: int = Query(0, ge=0, le=ID_MAX), limit: int = Query(100, ge=1, le=1000),
             session: Session = UNIT_OF_WORK, principal: Principal = Depends(current_principal)):
    return marketdata.tape(session, product, after_id=after, limit=limit)


@router.get("/depth/{product}")
def get_depth(product: str, levels: int = Query(10, ge=1, le=50), session: Session = UNIT_OF_WORK,
              principal: Principal = Depends(current_principal)):
    return marketdata.depth(session, product, levels)


@router.get("/bars/{product}")
def get_bars(product: str, interval: str = "5m", day: date | None = None, session: Session = UNIT_OF_WORK,
             principal: Principal = Depends(current_principal)):
    return marketdata.bars(session, product, interval=interval, day=day)


@router.get("/settlement-prices")
def get_settlement_prices(product: str | None = None, session: Session = UNIT_OF_WORK,
                          principal: Principal = Depends(current_principal)):
    return marketdata.settlement_prices(session, product)


@router.get("/reserve-operations")
def get_reserve_operations(session: Session = UNIT_OF_WORK, principal: Principal = Depends(current_principal)):
    return marketdata.reserve_operations(session)


@router.get("/stream")
async def stream(request: Request, after: int | None = Query(None, ge=0, le=ID_MAX), follow: bool = True,
                 poll_seconds: float = Query(1.0, ge=0.2, le=30), product: str | None = Query(None, max_length=16),
                 principal: Principal = Depends(current_principal)):
    """Server-sent events, polling the database so that what any process commits appears: one `trade` event per
    trade after `after` (default: from now), and with `product` only that product's trades plus a `depth` event
    with its order book whenever the book changes (first at once). `follow=false` sends what is there and ends."""
    if product is not None:
        with session_factory()() as reader:
            products.get_product(reader, product)

    def fetch(last: int) -> list[dict]:
        with session_factory()() as reader:
            return marketdata.stream_since(reader, last, product)

    def book() -> dict:
        with session_factory()() as reader:
            return marketdata.depth(reader, product)

    def start() -> int:
        with session_factory()() as reader:
            return marketdata.latest_trade_id(reader)

    async def events():
        last = start() if after is None else after
        shown_book = None
        yield ": ingot market stream\n\n"
        while True:
            for trade in fetch(last):
                last = trade["trade_id"]
                yield f"id: {last}\nevent: trade\ndata: {json.dumps(trade, ensure_ascii=False)}\n\n"
            if product is not None:
                current = book()
                if current != shown_book:
                    shown_book = current
                    yield f"event: depth\ndata: {json.dumps(current, ensure_ascii=False)}\n\n"
            if not follow or await request.is_disconnected():
                return
            await asyncio.sleep(poll_seconds)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


# Members' order traffic is most of what the server answers, and FastAPI tries routes in order: every other
# context's routes, and the market's own above, were tried on each order first (a measurable share of an order's CPU).
HOT_PATHS = ("/api/market/orders", "/api/market/orders/{order_id}/cancel", "/api/market/orders/{order_id}/amend")


def mount(app) -> None:
    """Try the market's API first, and in it the order endpoints. No other router serves paths under /api/market
    and these paths overlap no other market route, so only the time to find them changes."""
    hot = [route for route in router.routes if getattr(route, "path", None) in HOT_PATHS]
    router.routes[:] = hot + [route for route in router.routes if route not in hot]
    routes = app.router.routes
    ours = [index for index, route in enumerate(routes) if getattr(route, "original_router", None) is router]
    included = [index for index, route in enumerate(routes) if hasattr(route, "original_router")]
    if ours and included:
        routes.insert(included[0], routes.pop(ours[0]))
    # Ahead of everything, the lanes that answer a well-formed order or cancel without FastAPI's per-request work.
    routes[0:0] = [_LaneRoute("/api/market/orders", _OrderLane(OrderIn, _order_work, 201), methods=["POST"]),
                   _LaneRoute("/api/market/orders/{order_id:int}/cancel", _OrderLane(KeyIn, _cancel_work, 200),
                              methods=["POST"])]


# ---------------------------------------------------------------- the order lanes
#
# FastAPI's handling of a request (solving the dependencies, validating each parameter, serialising the answer) cost
# about as much CPU as placing the order itself once the order path had been made lean. A lane answers the one
# well-formed case of the two busiest endpoints directly: a JSON body that the endpoint's own model validates, a
# path id within bounds. It runs the same work as the documented endpoint above (`_order_work`, `_cancel_work`: the
# token checked first, then the unit of work at the order desk, committed before the answer), and any refusal it raises
# is answered by the same error handlers. Anything else (no or another content type, a body the model refuses, an id
# out of range) the lane declines: the request goes on, body and all, to the FastAPI route, which owns every
# validation error. The documented routes stay what the OpenAPI schema shows.

_LANE_DECLINED = "ingot.market.lane_declined"


def _order_work(body: OrderIn, idempotency_key: str | None, path_params: dict):
    def work(session: Session, principal: Principal) -> dict:
        return trading.submit_order(
            session, principal, account=body.account, product=body.product, side=body.side, lots=body.lots,
            price_fen=body.price_fen, order_type=body.order_type, tif=body.tif, receipts=body.receipts,
            key=_key(body.key, idempotency_key))

    return work


def _cancel_work(body: KeyIn, idempotency_key: str | None, path_params: dict):
    order_id = path_params["order_id"]

    def work(session: Session, principal: Principal) -> dict:
        return trading.submit_cancel(session, principal, order_id, key=_key(body.key, idempotency_key))

    return work


class _LaneRoute(Route):
    def matches(self, scope):
        if scope.get(_LANE_DECLINED):
            return Match.NONE, {}
        return super().matches(scope)


class _OrderLane:
    def __init__(self, model: type[BaseModel], make_work, status_code: int):
        self.model, self.make_work, self.status_code = model, make_work, status_code

    async def __call__(self, scope, receive, send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        parsed = self._parse(request, body)
        if parsed is None:
            await self._decline(scope, receive, send, body)
            return
        work = self.make_work(parsed, request.headers.get("idempotency-key"), scope.get("path_params", {}))
        caller = await token_caller(request)
        view = await _at_the_desk(caller, work)
        await JSONResponse(view, status_code=self.status_code)(scope, receive, send)

    def _parse(self, request: Request, body: bytes):
        if not body or not request.headers.get("content-type", "").startswith("application/json"):
            return None
        order_id = request.path_params.get("order_id")
        if order_id is not None and not 1 <= order_id <= ID_MAX:
            return None
        try:
            return self.model.model_validate_json(body)
        except ValidationError:
            return None

    async def _decline(self, scope, receive, send, body: bytes) -> None:
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        scope[_LANE_DECLINED] = True
        scope.pop("path_params", None)
        await scope["app"].router(scope, replay, send)
