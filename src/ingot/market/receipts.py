"""Warehouse receipts: registered by an independent warehouse after weighing and assay, at most one lien at a time,
split exactly on partial fills, cancelled for load-out, out, or invalidated; and the warehouse's physical stock
reconciled against the registry (a break raises an alarm).

States: registered → encumbered (an order or a pledge) → transferred (a trade gave it to a new owner) →
cancelled (for load-out) → out; `invalidated` for non-conforming metal; `split` for a parent whose children replaced
it. Live states (registered, encumbered, transferred) are the ones the matching core trades.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ingot.core.audit import record_change
from ingot.core.auth import Principal
from ingot.core.errors import Forbidden, NotFound
from ingot.core.timeutil import utcnow
from ingot.market import gateway, ledger, rows
from ingot.market.accounts import get_account, get_warehouse
from ingot.market.common import (
    MAX_RECEIPT_GRAMS,
    MAX_STOCK_GRAMS,
    OPERATORS,
    WAREHOUSE,
    MarketRejected,
    bounded_int,
    refuse,
    scope_of,
    trading_day,
)
from ingot.market.engine import DeregisterReceipt, RegisterReceipt, utc_micros
from ingot.market.models import MarketAlarm, Product, Receipt, StockReport, TradingAccount, Warehouse
from ingot.market.products import get_product, version_in_force

LIVE = ledger.LIVE_RECEIPT_STATES
IN_WAREHOUSE = LIVE + ("cancelled",)


def receipt_view(session: Session, receipt: Receipt) -> dict:
    # Held for the transaction: a settlement views each receipt before and after, and views several per trade.
    product = rows.get(session, Product, receipt.product_id)
    warehouse = rows.get(session, Warehouse, receipt.warehouse_id)
    owner = rows.get(session, TradingAccount, receipt.owner_account_id)
    parent = rows.get(session, Receipt, receipt.parent_id) if receipt.parent_id else None
    return {
        "number": receipt.number, "product": product.code, "warehouse": warehouse.code, "owner": owner.engine_id,
        "grade": receipt.grade, "lot_no": receipt.lot_no, "brand": receipt.brand, "net_grams": receipt.net_grams,
        "lots": receipt.lots, "assay_certificate": receipt.assay_certificate, "assay": receipt.assay,
        "location": receipt.location, "status": receipt.status, "lien_kind": receipt.lien_kind,
        "lien_ref": receipt.lien_ref, "parent": parent.number if parent else None,
        "registered_at": receipt.registered_at.isoformat(),
    }


def get_receipt(session: Session, number: str) -> Receipt:
    receipt = session.scalar(select(Receipt).where(Receipt.number == number))
    if receipt is None:
        raise NotFound(f"仓单不存在：{number}", f"no such warehouse receipt: {number}", field="receipt")
    return receipt


def visible_receipt(session: Session, actor: Principal, number: str) -> Receipt:
    receipt = get_receipt(session, number)
    scope = scope_of(session, actor)
    if not (scope.sees_account(receipt.owner_account_id) or scope.warehouse_id == receipt.warehouse_id):
        raise NotFound(f"仓单不存在：{number}", f"no such warehouse receipt: {number}", field="receipt")
    return receipt


def list_receipts(session: Session, actor: Principal, *, status: str | None = None, product: str | None = None,
                  include_retired: bool = False) -> list[Receipt]:
    scope = scope_of(session, actor)
    query = select(Receipt).order_by(Receipt.number)
    if not scope.everything:
        if scope.warehouse_id is not None:
            query = query.where(Receipt.warehouse_id == scope.warehouse_id)
        else:
            query = query.where(Receipt.owner_account_id.in_(scope.account_ids))
    if status:
        query = query.where(Receipt.status == status)
    elif not include_retired:
        query = query.where(Receipt.status != "split")
    if product:
        query = query.where(Receipt.product_id == get_product(session, product).id)
    return list(session.scalars(query))


def _check_assay(spec: dict, assay: dict) -> None:
    """Spec keys `<element>_min_pct` / `<element>_max_pct` against assay keys `<element>_pct` (decimal strings)."""
    for key, bound in spec.items():
        if not (key.endswith("_min_pct") or key.endswith("_max_pct")):
            continue
        element = key[:-8]
        raw = assay.get(f"{element}_pct")
        if raw is None:
            raise refuse("assay_incomplete", f"化验结果缺少 {element} 含量", f"the assay lacks the {element} content", "assay")
        try:
            measured, limit = Decimal(str(raw)), Decimal(str(bound))
        except InvalidOperation:
            raise refuse("assay_invalid", f"化验值无效：{element}={raw!r}", f"invalid assay value: {element}={raw!r}", "assay") from None
        if key.endswith("_min_pct") and measured < limit:
            raise refuse("assay_below_spec", f"{element} 含量 {measured}% 低于品级要求 {limit}%",
                         f"{element} at {measured} % is below the grade's {limit} %", "assay")
        if key.endswith("_max_pct") and measured > limit:
            raise refuse("assay_above_spec", f"{element} 含量 {measured}% 高于品级上限 {limit}%",
                         f"{element} at {measured} % is above the grade's {limit} %", "assay")


def _acting_warehouse(session: Session, actor: Principal, warehouse: Warehouse) -> None:
    if actor.role in OPERATORS:
        return
    if actor.role != WAREHOUSE or scope_of(session, actor).warehouse_id != warehouse.id:
        raise Forbidden("只有该仓库可以登记或处置其仓单", "only the warehouse itself may register or dispose of its receipts")


def register_receipt(
    session: Session,
    actor: Principal,
    *,
    warehouse_code: str,
    product_code: str,
    owner_account: str,
    lot_no: str,
    net_grams: int,
    assay_certificate: str,
    assay: dict,
    location: str,
    brand: str = "",
    now: datetime | None = None,
) -> Receipt:
    """The warehouse registers weighed and assayed metal as a receipt owned by a trading account."""
    warehouse = get_warehouse(session, warehouse_code)
    _acting_warehouse(session, actor, warehouse)
    product = get_product(session, product_code)
    at = now or utcnow()
    version = version_in_force(session, product, trading_day(at))
    if version is None:
        raise refuse("product_not_in_force", f"品种 {product.code} 尚未生效", f"product {product.code} is not yet in force", "product")
    if warehouse.code not in version.deliverable_warehouses:
        raise refuse("warehouse_not_deliverable", f"仓库 {warehouse.code} 不是品种 {product.code} 的交割仓库",
                     f"warehouse {warehouse.code} is not a deliverable warehouse of {product.code}", "warehouse")
    if type(net_grams) is not int or net_grams <= 0:
        raise refuse("invalid_weight", "净重须为正整数（克）", "the net weight is a positive whole number of grams", "net_grams")
    bounded_int(net_grams, "net_grams", "净重（克）", "the net weight (g)", minimum=1, maximum=MAX_RECEIPT_GRAMS)
    grams_per_lot = product.units_per_lot * product.grams_per_price_unit
    lots = net_grams // grams_per_lot
    if lots < 1:
        raise refuse("below_one_lot", f"净重 {net_grams} 克不足一手（{grams_per_lot} 克）",
                     f"net weight {net_grams} g is less than one lot ({grams_per_lot} g)", "net_grams")
    for name, value in (("lot_no", lot_no), ("assay_certificate", assay_certificate), ("location", location)):
        if not (value or "").strip():
            raise refuse("missing_field", f"缺少必填字段：{name}", f"missing required field: {name}", name)
    _check_assay(version.quality_spec or {}, assay or {})
    owner = get_account(session, owner_account)
    serial = (session.scalar(select(func.count(Receipt.id)).where(Receipt.warehouse_id == warehouse.id,
                                                                  Receipt.parent_id.is_(None))) or 0) + 1
    number = f"{warehouse.code}{product.code}{serial:06d}"
    outcome = gateway.execute(session, RegisterReceipt(f"receipt:{number}", utc_micros(at), number, product.code,
                                                       owner.engine_id, net_grams, lots))
    if not outcome.ack.accepted:
        raise MarketRejected(outcome.ack.rejection)
    receipt = Receipt(number=number, product_id=product.id, warehouse_id=warehouse.id, owner_account_id=owner.id,
                      grade=version.grade_en, lot_no=lot_no.strip(), brand=brand, net_grams=net_grams, lots=lots,
                      assay_certificate=assay_certificate.strip(), assay=dict(assay or {}), location=location.strip(),
                      status="registered", registered_at=at, updated_at=at)
    session.add(receipt)
    session.flush()
    ledger.post(session, "receipt_in", number,
                [(ledger.ledger_account(session, ledger.WAREHOUSE_IN, product.code, warehouse.id), -net_grams),
                 (ledger.metal_of(session, owner.id, product.code), net_grams)], at=at)
    ledger.check_invariants(session)
    record_change(session, actor, "market_receipt", receipt.id, "register", None, receipt_view(session, receipt),
                  division_code=warehouse.division_code)
    return receipt


def _owner_may_act(session: Session, actor: Principal, receipt: Receipt) -> None:
    if actor.role in OPERATORS:
        return
    if not scope_of(session, actor).sees_account(receipt.owner_account_id) or actor.role == "regulator":
        raise NotFound(f"仓单不存在：{receipt.number}", f"no such warehouse receipt: {receipt.number}", field="receipt")


def _require_free(receipt: Receipt) -> None:
    if receipt.status not in LIVE:
        raise refuse("receipt_not_live", f"仓单 {receipt.number} 当前状态为 {receipt.status}，不能办理",
                     f"receipt {receipt.number} is {receipt.status} and cannot be used", "receipt")
    if receipt.lien_kind is not None:
        raise refuse("receipt_encumbered", f"仓单 {receipt.number} 已被占用（{receipt.lien_kind} {receipt.lien_ref}）",
                     f"receipt {receipt.number} is already encumbered ({receipt.lien_kind} {receipt.lien_ref})", "receipt")


def pledge_receipt(session: Session, actor: Principal, number: str, pledgee: str, now: datetime | None = None) -> Receipt:
    """A pledge is a lien like an order: a receipt carries at most one."""
    receipt = get_receipt(session, number)
    _owner_may_act(session, actor, receipt)
    _require_free(receipt)
    if not (pledgee or "").strip():
        raise refuse("missing_pledgee", "缺少质权人", "the pledgee is missing", "pledgee")
    before = receipt_view(session, receipt)
    receipt.lien_kind, receipt.lien_ref, receipt.status = "pledge", pledgee.strip()[:64], "encumbered"
    receipt.updated_at = now or utcnow()
    session.flush()
    record_change(session, actor, "market_receipt", receipt.id, "pledge", before, receipt_view(session, receipt))
    return receipt


def release_pledge(session: Session, actor: Principal, number: str, now: datetime | None = None) -> Receipt:
    require_operator = actor.role in OPERATORS
    receipt = get_receipt(session, number)
    if not require_operator:
        raise Forbidden("只有交易中心可以解除质押", "only the centre may release a pledge")
    if receipt.lien_kind != "pledge":
        raise refuse("not_pledged", f"仓单 {number} 未被质押", f"receipt {number} is not pledged", "receipt")
    before = receipt_view(session, receipt)
    receipt.lien_kind = receipt.lien_ref = None
    receipt.status = resting_status(session, receipt)
    receipt.updated_at = now or utcnow()
    session.flush()
    record_change(session, actor, "market_receipt", receipt.id, "release", before, receipt_view(session, receipt))
    return receipt


def resting_status(session: Session, receipt: Receipt) -> str:
    """The state of a live receipt without a lien: `transferred` once a trade has delivered it, else `registered`."""
    from ingot.core.audit import AuditEntry

    traded = session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.entity == "market_receipt", AuditEntry.entity_id == str(receipt.id),
        AuditEntry.action == "transfer"))
    return "transferred" if traded else "registered"


def _retire(session: Session, actor: Principal, receipt: Receipt, status: str, sink: str, at: datetime) -> None:
    outcome = gateway.execute(session, DeregisterReceipt(f"{status}:{receipt.number}", utc_micros(at), receipt.number))
    if not outcome.ack.accepted:
        raise MarketRejected(outcome.ack.rejection)
    product = session.get(Product, receipt.product_id)
    before = receipt_view(session, receipt)
    receipt.status, receipt.updated_at = status, at
    ledger.post(session, sink, receipt.number,
                [(ledger.metal_of(session, receipt.owner_account_id, product.code), -receipt.net_grams),
                 (ledger.ledger_account(session, sink, product.code), receipt.net_grams)], at=at)
    ledger.check_invariants(session)
    warehouse = session.get(Warehouse, receipt.warehouse_id)
    record_change(session, actor, "market_receipt", receipt.id, status, before, receipt_view(session, receipt),
                  division_code=warehouse.division_code)


def cancel_for_load_out(session: Session, actor: Principal, number: str, now: datetime | None = None) -> Receipt:
    """The owner takes delivery: the receipt leaves the market and waits for the metal to be loaded out."""
    receipt = get_receipt(session, number)
    _owner_may_act(session, actor, receipt)
    _require_free(receipt)
    _retire(session, actor, receipt, "cancelled", ledger.LOAD_OUT, now or utcnow())
    return receipt


def confirm_out(session: Session, actor: Principal, number: str, now: datetime | None = None) -> Receipt:
    receipt = get_receipt(session, number)
    _acting_warehouse(session, actor, session.get(Warehouse, receipt.warehouse_id))
    if receipt.status != "cancelled":
        raise refuse("not_cancelled", f"仓单 {number} 未注销，不能出库", f"receipt {number} is not cancelled for load-out", "receipt")
    before = receipt_view(session, receipt)
    receipt.status, receipt.updated_at = "out", now or utcnow()
    session.flush()
    record_change(session, actor, "market_receipt", receipt.id, "out", before, receipt_view(session, receipt))
    return receipt


def invalidate_receipt(session: Session, actor: Principal, number: str, reason: str, now: datetime | None = None) -> Receipt:
    """Non-conforming metal: the warehouse (or the centre) takes the receipt out of the market."""
    receipt = get_receipt(session, number)
    _acting_warehouse(session, actor, session.get(Warehouse, receipt.warehouse_id))
    if not (reason or "").strip():
        raise refuse("missing_reason", "作废须说明原因", "an invalidation needs its reason", "reason")
    _require_free(receipt)
    _retire(session, actor, receipt, "invalidated", ledger.INVALIDATED, now or utcnow())
    return receipt


def report_stock(session: Session, actor: Principal, *, warehouse_code: str, product_code: str, day: date,
                 physical_grams: int) -> StockReport:
    """The warehouse's physical count against the metal the registry says it holds (live and awaiting load-out)."""
    warehouse = get_warehouse(session, warehouse_code)
    _acting_warehouse(session, actor, warehouse)
    product = get_product(session, product_code)
    if type(physical_grams) is not int or physical_grams < 0:
        raise refuse("invalid_weight", "实物库存须为非负整数（克）", "the physical stock is a non-negative whole number of grams",
                     "physical_grams")
    bounded_int(physical_grams, "physical_grams", "实物库存（克）", "the physical stock (g)", minimum=0,
                maximum=MAX_STOCK_GRAMS)
    registry = int(session.scalar(select(func.coalesce(func.sum(Receipt.net_grams), 0)).where(
        Receipt.warehouse_id == warehouse.id, Receipt.product_id == product.id, Receipt.status.in_(IN_WAREHOUSE))) or 0)
    report = session.scalar(select(StockReport).where(StockReport.warehouse_id == warehouse.id,
                                                      StockReport.product_id == product.id, StockReport.day == day))
    if report is None:
        report = StockReport(warehouse_id=warehouse.id, product_id=product.id, day=day)
        session.add(report)
    report.physical_grams, report.registry_grams, report.at = physical_grams, registry, utcnow()
    report.status = "ok" if physical_grams == registry else "break"
    session.flush()
    if report.status == "break":
        session.add(MarketAlarm(
            kind="stock_break", reference=f"{warehouse.code}/{product.code}@{day.isoformat()}",
            message_zh=f"库存对账不符：仓库 {warehouse.code} 品种 {product.code} 实物 {physical_grams} 克，仓单登记 {registry} 克",
            message_en=f"stock break: warehouse {warehouse.code} product {product.code} physical {physical_grams} g, "
                       f"receipts {registry} g",
            division_code=warehouse.division_code))
        session.flush()
    record_change(session, actor, "market_stock_report", report.id, "report", None,
                  {"warehouse": warehouse.code, "product": product.code, "day": day, "physical_grams": physical_grams,
                   "registry_grams": registry, "status": report.status}, division_code=warehouse.division_code)
    return report
