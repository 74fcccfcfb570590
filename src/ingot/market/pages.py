"""Web pages of the trading centre: market watch at /market, product pages with depth, tape and chart, order entry
and own orders, receipts (with a printable receipt page), statements, and the overseers' view of the whole market.

Every page is behind login; every list is scoped by the caller's market scope. A refused order re-renders the form
with its reason in the page language and changes nothing.
"""
from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from ingot.api.deps import UNIT_OF_WORK, current_principal, language
from ingot.core.auth import Principal
from ingot.core.errors import DomainError, Forbidden
from ingot.core.timeutil import utcnow
from ingot.market import accounts, barcode, marketdata, products, receipts, timetable, trading, trading_days
from ingot.market.api import OrderId, alarms_for
from ingot.market.common import ID_MAX, OVERSEERS, TRADERS, scope_of, trading_day
from ingot.market.models import (
    MEMBER_KINDS,
    RECEIPT_STATES,
    CashReconciliation,
    Member,
    Product,
    StockReport,
    TradingAccount,
    Warehouse,
)
from ingot.web.rendering import add_template_dir, render, templates

router = APIRouter(include_in_schema=False)
add_template_dir(Path(__file__).parent / "templates")
templates.env.filters["yuan"] = marketdata.yuan
# Times reach the templates as the API's ISO UTC strings; people read them in Beijing time.
templates.env.filters["local_time"] = marketdata.local_time


def _page(request: Request, template: str, principal: Principal, lang: str, status_code: int = 200, **context):
    def tr(zh: str, en: str) -> str:
        return en if lang == "en" else zh

    return render(request, template, principal, lang, status_code=status_code, tr=tr, receipt_states=RECEIPT_STATES,
                  member_kinds=MEMBER_KINDS, **context)


def _accounts_of(session: Session, principal: Principal) -> list[TradingAccount]:
    scope = scope_of(session, principal)
    query = select(TradingAccount).order_by(TradingAccount.engine_id)
    if not scope.everything:
        query = query.where(TradingAccount.id.in_(scope.account_ids))
    return list(session.scalars(query))


@router.get("/market")
def market_watch(request: Request, principal: Principal = Depends(current_principal), lang: str = Depends(language),
                 session: Session = UNIT_OF_WORK):
    today = trading_day(utcnow())
    return _page(request, "market_watch.html", principal, lang, rows=marketdata.watch(session, today), today=today,
                 tape=marketdata.tape(session, limit=20),
                 reserve=marketdata.reserve_operations(session, limit=20))


@router.get("/market/products/{code}")
def product_page(code: str, request: Request, principal: Principal = Depends(current_principal),
                 lang: str = Depends(language), session: Session = UNIT_OF_WORK):
    return _product_page(request, session, principal, lang, code)


def _product_page(request, session, principal, lang, code, *, error: DomainError | None = None, form: dict | None = None):
    product = products.get_product(session, code)
    today = trading_day(utcnow())
    version = products.version_in_force(session, product, today)
    previous = products.previous_settlement_price(session, product, today)
    band = products.price_band(previous, version) if version else None
    tape = marketdata.tape(session, code, limit=30)
    chart = marketdata.line_chart([(marketdata.local_time(row["at"], "%H:%M"), row["price_fen"]) for row in reversed(tape)],
                                  unit="")
    tradeable = principal.role in TRADERS
    own_receipts = [r for r in receipts.list_receipts(session, principal, product=code)
                    if r.lien_kind is None and r.status in ("registered", "transferred")] if tradeable else []
    return _page(
        request, "market_product.html", principal, lang, status_code=422 if error else 200, product=product,
        version=version, versions=products.versions_of(session, product), previous=previous, band=band,
        depth=marketdata.depth(session, code), tape=tape, chart=chart, bars=marketdata.bars(session, code, day=today),
        settlements=marketdata.settlement_prices(session, code, limit=20), tradeable=tradeable,
        accounts=_accounts_of(session, principal) if tradeable else [], own_receipts=own_receipts,
        next_opening=timetable.product_timetable(session, code)["next_opening"],
        error=error, form=form or {}, order_key=uuid.uuid4().hex)


@router.post("/market/orders")
def submit_order(
    request: Request,
    product: str = Form(...),
    account: str = Form(...),
    side: str = Form(...),
    lots: str = Form(...),
    price_yuan: str = Form(...),
    order_type: str = Form("limit"),
    tif: str = Form("DAY"),
    receipt: list[str] = Form(default=[]),
    key: str = Form(...),
    principal: Principal = Depends(current_principal),
    lang: str = Depends(language),
    session: Session = UNIT_OF_WORK,
):
    form = {"account": account, "side": side, "lots": lots, "price_yuan": price_yuan, "order_type": order_type,
            "tif": tif, "receipt": receipt}
    try:
        order = trading.place_order(
            session, principal, account=account, product=product, side=side, lots=_whole(lots, "lots", "手数", "lots"),
            price_fen=_fen(price_yuan), key=key, order_type=order_type, tif=tif, receipts=[r for r in receipt if r])
    except DomainError as error:
        session.rollback()
        return _product_page(request, session, principal, lang, product, error=error, form=form)
    return RedirectResponse(f"/market/orders?placed={order.id}", status_code=303)


def _whole(value: str, field: str, zh: str, en: str) -> int:
    try:
        return int(value.strip())
    except (ValueError, AttributeError):
        raise DomainError(f"{zh}须为整数：{value!r}", f"{en} must be a whole number: {value!r}", field=field,
                          code="not_integer") from None


def _fen(value: str) -> int:
    """Yuan as typed (e.g. 1500.00) to integer fen, exactly; more than two decimals is refused, not rounded."""
    text = (value or "").strip().replace(",", "")
    whole, _, cents = text.partition(".")
    if not whole.isdigit() or (cents and (not cents.isdigit() or len(cents) > 2)):
        raise DomainError(f"价格须为元，最多两位小数：{value!r}", f"the price is in yuan with at most two decimals: {value!r}",
                          field="price_fen", code="invalid_price")
    return int(whole) * 100 + int((cents + "00")[:2])


@router.get("/market/orders")
def orders_page(request: Request, placed: int | None = Query(None, ge=1, le=ID_MAX), principal: Principal = Depends(current_principal),
                lang: str = Depends(language), session: Session = UNIT_OF_WORK):
    orders = trading.list_orders(session, principal)
    return _page(request, "market_orders.html", principal, lang,
                 orders=[trading.order_view(session, o) for o in orders],
                 trades=[trading.trade_view(session, t) for t in trading.list_trades(session, principal, limit=50)],
                 placed=placed, can_trade=principal.role in TRADERS, products=products.list_products(session),
                 cancel_key=uuid.uuid4().hex)


@router.post("/market/orders/{order_id}/cancel")
def cancel_order(order_id: OrderId, request: Request, key: str = Form(...), principal: Principal = Depends(current_principal),
                 lang: str = Depends(language), session: Session = UNIT_OF_WORK):
    trading.cancel_order(session, principal, order_id, key=key)
    return RedirectResponse("/market/orders", status_code=303)


@router.get("/market/receipts")
def receipts_page(request: Request, principal: Principal = Depends(current_principal), lang: str = Depends(language),
                  session: Session = UNIT_OF_WORK):
    return _receipts_page(request, session, principal, lang)


def _receipts_page(request, session, principal, lang, *, error: DomainError | None = None):
    rows = [receipts.receipt_view(session, r) for r in receipts.list_receipts(session, principal, include_retired=True)]
    scope = scope_of(session, principal)
    warehouse = session.get(Warehouse, scope.warehouse_id) if scope.warehouse_id else None
    return _page(request, "market_receipts.html", principal, lang, status_code=422 if error else 200, receipts=rows,
                 warehouse=warehouse, products=products.list_products(session) if warehouse else [],
                 can_load_out=principal.role in TRADERS, error=error)


def _receipt_action(request, session, principal, lang, action):
    try:
        action()
    except DomainError as error:
        session.rollback()
        return _receipts_page(request, session, principal, lang, error=error)
    return RedirectResponse("/market/receipts", status_code=303)


@router.post("/market/receipts")
async def register_receipt_form(request: Request, principal: Principal = Depends(current_principal),
                                lang: str = Depends(language), session: Session = UNIT_OF_WORK):
    form = await request.form()

    def register():
        warehouse = session.get(Warehouse, scope_of(session, principal).warehouse_id or 0)
        if warehouse is None:
            raise Forbidden("只有仓库可以登记仓单", "only a warehouse registers receipts")
        receipts.register_receipt(
            session, principal, warehouse_code=warehouse.code, product_code=form.get("product", ""),
            owner_account=form.get("owner_account", ""), lot_no=form.get("lot_no", ""),
            net_grams=_whole(form.get("net_grams", ""), "net_grams", "净重（克）", "net weight (g)"),
            assay_certificate=form.get("assay_certificate", ""),
            assay=dict(item.split("=", 1) for item in _list(form.get("assay", "")) if "=" in item),
            location=form.get("location", ""), brand=form.get("brand", ""))

    return _receipt_action(request, session, principal, lang, register)


@router.post("/market/receipts/{number}/load-out")
def load_out_form(number: str, request: Request, principal: Principal = Depends(current_principal),
                  lang: str = Depends(language), session: Session = UNIT_OF_WORK):
    return _receipt_action(request, session, principal, lang,
                           lambda: receipts.cancel_for_load_out(session, principal, number))


@router.post("/market/receipts/{number}/out")
def out_form(number: str, request: Request, principal: Principal = Depends(current_principal),
             lang: str = Depends(language), session: Session = UNIT_OF_WORK):
    return _receipt_action(request, session, principal, lang, lambda: receipts.confirm_out(session, principal, number))


@router.get("/market/receipts/{number}")
def receipt_page(number: str, request: Request, principal: Principal = Depends(current_principal),
                 lang: str = Depends(language), session: Session = UNIT_OF_WORK):
    receipt = receipts.visible_receipt(session, principal, number)
    view = receipts.receipt_view(session, receipt)
    product = session.get(Product, receipt.product_id)
    warehouse = session.get(Warehouse, receipt.warehouse_id)
    return _page(request, "market_receipt.html", principal, lang, receipt=view, product=product, warehouse=warehouse)


@router.get("/market/receipts/{number}/print")
def receipt_print_page(number: str, request: Request, principal: Principal = Depends(current_principal),
                       lang: str = Depends(language), session: Session = UNIT_OF_WORK):
    """The receipt's particulars with its number as a Code 128 barcode, laid out for printing."""
    receipt = receipts.visible_receipt(session, principal, number)
    view = receipts.receipt_view(session, receipt)
    product = session.get(Product, receipt.product_id)
    warehouse = session.get(Warehouse, receipt.warehouse_id)
    return _page(request, "market_receipt_print.html", principal, lang, receipt=view, product=product,
                 warehouse=warehouse, barcode=barcode.svg(receipt.number))


@router.get("/market/statements")
def statements_page(request: Request, principal: Principal = Depends(current_principal), lang: str = Depends(language),
                    session: Session = UNIT_OF_WORK):
    positions = [accounts.cash_position(session, a) for a in _accounts_of(session, principal)]
    statements = [trading.statement_view(session, s) for s in trading.statements_for(session, principal)[:100]]
    return _page(request, "market_statements.html", principal, lang, positions=positions, statements=statements)


@router.get("/market/oversight")
def oversight_page(request: Request, day: date | None = None, principal: Principal = Depends(current_principal),
                   lang: str = Depends(language), session: Session = UNIT_OF_WORK):
    if principal.role not in OVERSEERS:
        raise Forbidden("仅交易中心、监管人员和审计人员可查看全市场视图", "only the centre, regulators and auditors see the whole market")
    scope = scope_of(session, principal)
    day = day or trading_day(utcnow())
    members = list(session.scalars(select(Member).order_by(Member.code)))
    if scope.division_prefix is not None:
        members = [m for m in members if m.division_code.startswith(scope.division_prefix)]
    reconciliations = session.scalars(select(CashReconciliation).order_by(CashReconciliation.day.desc(),
                                                                          CashReconciliation.account_id).limit(100)).all()
    engine_ids = {a.id: a.engine_id for a in session.scalars(select(TradingAccount))}
    stock = session.scalars(select(StockReport).order_by(StockReport.day.desc()).limit(50)).all()
    codes = {p.id: p.code for p in products.list_products(session)}
    warehouses = {w.id: w.code for w in accounts.list_warehouses(session)}
    return _page(
        request, "market_oversight.html", principal, lang, day=day, members=members,
        positions=[accounts.cash_position(session, a) for a in _accounts_of(session, principal)],
        reconciliations=[r for r in reconciliations if scope.sees_account(r.account_id)], engine_ids=engine_ids,
        trades=[trading.trade_view(session, t) for t in trading.list_trades(session, principal, day=day)],
        volume=sum(t.lots for t in trading.list_trades(session, principal, day=day, limit=10_000)),
        alarms=alarms_for(session, principal), stock=stock, codes=codes, warehouses=warehouses,
        settlements=marketdata.settlement_prices(session, limit=30),
        trading_days=[trading_days.trading_day_view(row)
                      for row in trading_days.list_trading_days(session, principal, limit=30)],
        watch=marketdata.watch(session, day))


# ---------------------------------------------------------------- the centre's administration page


def _admin_page(request, session, principal, lang, *, error: DomainError | None = None, done: str | None = None):
    if principal.role not in ("admin", "market_operator"):
        raise Forbidden("仅交易中心可以管理品种与交易阶段", "only the centre administers products and sessions")
    today = trading_day(utcnow())
    rows = [(p, products.version_in_force(session, p, today), products.versions_of(session, p))
            for p in products.list_products(session)]
    return _page(request, "market_admin.html", principal, lang, status_code=422 if error else 200, rows=rows,
                 phases=trading.phases(session), warehouses=accounts.list_warehouses(session), error=error, done=done,
                 today=today, timetable={row["product"]: row for row in timetable.timetable(session, principal)})


@router.get("/market/admin")
def admin_page(request: Request, done: str | None = None, principal: Principal = Depends(current_principal),
               lang: str = Depends(language), session: Session = UNIT_OF_WORK):
    return _admin_page(request, session, principal, lang, done=done)


def _admin_action(request, session, principal, lang, action):
    try:
        message = action()
    except DomainError as error:
        session.rollback()
        return _admin_page(request, session, principal, lang, error=error)
    return RedirectResponse(f"/market/admin?done={message}", status_code=303)


def _list(text: str) -> list[str]:
    return [part.strip() for part in (text or "").replace("，", ",").split(",") if part.strip()]


def _rules_from_form(form) -> dict:
    return {
        "notice_ref": form.get("notice_ref", ""), "grade_zh": form.get("grade_zh", ""), "grade_en": form.get("grade_en", ""),
        "quality_spec": dict(item.split("=", 1) for item in _list(form.get("quality_spec", "")) if "=" in item),
        "tick_fen": _fen(form.get("tick_yuan", "")), "band_ppm": _whole(form.get("band_ppm", ""), "band_ppm", "涨跌停板", "band"),
        "max_order_lots": _whole(form.get("max_order_lots", ""), "max_order_lots", "最大手数", "maximum lots"),
        "sessions": _list(form.get("sessions", "")), "opening_auction": (form.get("opening_auction") or "").strip() or None,
        "deliverable_warehouses": _list(form.get("warehouses", "")),
    }


@router.post("/market/admin/session")
async def admin_session(request: Request, principal: Principal = Depends(current_principal),
                        lang: str = Depends(language), session: Session = UNIT_OF_WORK):
    form = await request.form()
    return _admin_action(request, session, principal, lang, lambda: (
        trading.session_control(session, principal, form.get("action", ""), form.get("product") or None), "session")[1])


@router.post("/market/admin/timetable")
def admin_timetable(request: Request, principal: Principal = Depends(current_principal), lang: str = Depends(language),
                    session: Session = UNIT_OF_WORK):
    return _admin_action(request, session, principal, lang,
                         lambda: (timetable.run_schedule(session, principal), "timetable")[1])


@router.post("/market/admin/eod")
def admin_eod(request: Request, principal: Principal = Depends(current_principal), lang: str = Depends(language),
              session: Session = UNIT_OF_WORK):
    return _admin_action(request, session, principal, lang, lambda: (trading.end_of_day(session, principal), "eod")[1])


@router.post("/market/admin/versions")
async def admin_version(request: Request, principal: Principal = Depends(current_principal),
                        lang: str = Depends(language), session: Session = UNIT_OF_WORK):
    form = await request.form()

    def announce():
        try:
            effective_on = date.fromisoformat(form.get("effective_on", ""))
        except ValueError:
            raise DomainError("生效日期须为 YYYY-MM-DD", "the effective date is YYYY-MM-DD", field="effective_on",
                              code="invalid_date") from None
        products.announce_version(session, principal, form.get("product", ""), effective_on=effective_on,
                                  rules=_rules_from_form(form))
        return "version"

    return _admin_action(request, session, principal, lang, announce)


@router.post("/market/admin/products")
async def admin_product(request: Request, principal: Principal = Depends(current_principal),
                        lang: str = Depends(language), session: Session = UNIT_OF_WORK):
    form = await request.form()

    def create():
        products.create_product(
            session, principal, code=form.get("code", ""), name_zh=form.get("name_zh", ""),
            name_en=form.get("name_en", ""), metal=form.get("metal", ""), price_unit=form.get("price_unit", ""),
            units_per_lot=_whole(form.get("units_per_lot", ""), "units_per_lot", "每手单位数", "units per lot"),
            reference_price_fen=_fen(form.get("reference_yuan", "")),
            buyer_fee_ppm=_whole(form.get("fee_ppm", "0"), "fee_ppm", "手续费率", "fee rate"),
            seller_fee_ppm=_whole(form.get("fee_ppm", "0"), "fee_ppm", "手续费率", "fee rate"),
            rules=_rules_from_form(form))
        return "product"

    return _admin_action(request, session, principal, lang, create)


@router.post("/market/admin/suspension")
async def admin_suspension(request: Request, principal: Principal = Depends(current_principal),
                           lang: str = Depends(language), session: Session = UNIT_OF_WORK):
    form = await request.form()
    return _admin_action(request, session, principal, lang, lambda: (products.set_product_suspended(
        session, principal, form.get("product", ""), form.get("suspended") == "1"), "suspension")[1])
