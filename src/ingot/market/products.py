"""Products the centre designs (seed 002 四、(四): 产品设计): the contract, and its rules as versions in force from a
notice date, never retroactively.

The matching core fixes a product's lot and fees when it is defined, so those belong to the contract (changing them
lists a new product); tick, price band, maximum order size, sessions, grade and deliverable warehouses are versioned
and enforced here before an order reaches the core (the core's own band and size limits are set wide open).
"""
from __future__ import annotations

import re
from datetime import date, datetime
from typing import NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, aliased

from ingot.core.audit import record_change
from ingot.core.auth import Principal
from ingot.core.errors import Conflict, NotFound
from ingot.core.timeutil import utcnow
from ingot.market import gateway
from ingot.market.common import (
    MAX_FEE_PER_LOT_FEN,
    MAX_LOTS,
    MAX_PRICE_FEN,
    MAX_TICK_FEN,
    MAX_UNITS_PER_LOT,
    OPERATORS,
    MarketRejected,
    bounded_int,
    positive_int,
    refuse,
    require,
    trading_day,
)
from ingot.market.engine import DefineProduct, FeeSchedule, SetProductSuspended, SetSettlementPrice, utc_micros
from ingot.market.models import Product, ProductVersion, SettlementPrice, Warehouse

GRAMS_PER_UNIT = {"t": 1_000_000, "kg": 1_000}
_CODE = re.compile(r"^[A-Z][A-Z0-9]{1,15}$")
_SESSION = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")
# The core's own limits are opened wide: the versioned rules in force are checked by this layer.
ENGINE_BAND_PPM = 999_999
ENGINE_MAX_LOTS = 1_000_000_000
ENGINE_TICK_FEN = 1


def product_view(product: Product, version: ProductVersion | None = None) -> dict:
    view = {
        "code": product.code,
        "name_zh": product.name_zh,
        "name_en": product.name_en,
        "metal": product.metal,
        "price_unit": product.price_unit,
        "grams_per_price_unit": product.grams_per_price_unit,
        "units_per_lot": product.units_per_lot,
        "grams_per_lot": product.units_per_lot * product.grams_per_price_unit,
        "reference_price_fen": product.reference_price_fen,
        "buyer_fee": {"per_lot_fen": product.buyer_fee_per_lot_fen, "rate_ppm": product.buyer_fee_ppm},
        "seller_fee": {"per_lot_fen": product.seller_fee_per_lot_fen, "rate_ppm": product.seller_fee_ppm},
        "suspended": product.suspended,
    }
    if version is not None:
        view["version"] = version_view(version)
    return view


def version_view(version: ProductVersion) -> dict:
    return {
        "version": version.version,
        "notice_ref": version.notice_ref,
        "notice_date": version.notice_date.isoformat(),
        "effective_on": version.effective_on.isoformat(),
        "grade_zh": version.grade_zh,
        "grade_en": version.grade_en,
        "quality_spec": version.quality_spec,
        "tick_fen": version.tick_fen,
        "band_ppm": version.band_ppm,
        "max_order_lots": version.max_order_lots,
        "settlement_min_lots": version.settlement_min_lots,
        "sessions": version.sessions,
        "opening_auction": version.opening_auction,
        "deliverable_warehouses": version.deliverable_warehouses,
    }


def get_product(session: Session, code: str) -> Product:
    product = session.scalar(select(Product).where(Product.code == code))
    if product is None:
        raise NotFound(f"交易品种不存在：{code}", f"no such product: {code}", field="product")
    return product


def list_products(session: Session) -> list[Product]:
    return list(session.scalars(select(Product).order_by(Product.code)))


def version_in_force(session: Session, product: Product, day: date) -> ProductVersion | None:
    return session.scalar(
        select(ProductVersion)
        .where(ProductVersion.product_id == product.id, ProductVersion.effective_on <= day)
        .order_by(ProductVersion.effective_on.desc())
        .limit(1)
    )


def versions_of(session: Session, product: Product) -> list[ProductVersion]:
    return list(session.scalars(select(ProductVersion).where(ProductVersion.product_id == product.id)
                                .order_by(ProductVersion.version)))


def _check_rules(session: Session, rules: dict) -> dict:
    tick = positive_int(rules.get("tick_fen"), "tick_fen", "最小变动价位（分）", "tick (fen)", MAX_TICK_FEN)
    band = rules.get("band_ppm")
    if type(band) is not int or not 0 < band < 1_000_000:
        raise refuse("invalid_band", "涨跌停板幅度须在 1 至 999999 ppm 之间", "the price band must be 1 to 999999 ppm",
                     "band_ppm")
    positive_int(rules.get("max_order_lots"), "max_order_lots", "单笔最大下单量（手）", "maximum order size (lots)", MAX_LOTS)
    settlement_min_lots = rules.get("settlement_min_lots", 1)
    positive_int(settlement_min_lots, "settlement_min_lots", "结算价加权平均最低成交量（手）",
                 "minimum volume for a VWAP settlement price (lots)", MAX_LOTS)
    sessions = rules.get("sessions") or []
    if not sessions:
        raise refuse("no_sessions", "至少须有一个交易时段", "at least one trading session is needed", "sessions")
    previous_end = ""
    for window in sessions:
        if not isinstance(window, str) or not _SESSION.match(window):
            raise refuse("invalid_session", f"交易时段格式须为 HH:MM-HH:MM：{window!r}",
                         f"a trading session is HH:MM-HH:MM: {window!r}", "sessions")
        start, end = window.split("-")
        if end <= start or start < previous_end:
            raise refuse("invalid_session", f"交易时段须按时间先后且不重叠：{window}",
                         f"trading sessions must be in order and must not overlap: {window}", "sessions")
        previous_end = end
    auction = rules.get("opening_auction") or None
    if auction is not None:
        if not isinstance(auction, str) or not _SESSION.match(auction):
            raise refuse("invalid_session", f"开盘集合竞价时段格式须为 HH:MM-HH:MM：{auction!r}",
                         f"the opening call auction is HH:MM-HH:MM: {auction!r}", "opening_auction")
        start, end = auction.split("-")
        if end <= start or end > sessions[0].split("-")[0]:
            raise refuse("invalid_session", f"开盘集合竞价须在第一个交易时段开始前结束：{auction}",
                         f"the opening call auction must end by the start of the first session: {auction}",
                         "opening_auction")
    warehouses = rules.get("deliverable_warehouses") or []
    if not warehouses:
        raise refuse("no_warehouses", "至少须指定一个交割仓库", "at least one deliverable warehouse is needed",
                      "deliverable_warehouses")
    for code in warehouses:
        if session.scalar(select(Warehouse.id).where(Warehouse.code == code)) is None:
            raise refuse("unknown_warehouse", f"交割仓库不存在：{code}", f"no such warehouse: {code}",
                         "deliverable_warehouses")
    for name in ("grade_zh", "grade_en", "notice_ref"):
        if not (rules.get(name) or "").strip():
            raise refuse("missing_field", f"缺少必填字段：{name}", f"missing required field: {name}", name)
    return {
        "tick_fen": tick,
        "band_ppm": band,
        "max_order_lots": rules["max_order_lots"],
        "settlement_min_lots": settlement_min_lots,
        "sessions": list(sessions),
        "opening_auction": auction,
        "deliverable_warehouses": list(warehouses),
        "grade_zh": rules["grade_zh"].strip(),
        "grade_en": rules["grade_en"].strip(),
        "quality_spec": dict(rules.get("quality_spec") or {}),
        "notice_ref": rules["notice_ref"].strip(),
    }


def create_product(
    session: Session,
    actor: Principal,
    *,
    code: str,
    name_zh: str,
    name_en: str,
    metal: str,
    price_unit: str,
    units_per_lot: int,
    reference_price_fen: int,
    buyer_fee_per_lot_fen: int = 0,
    buyer_fee_ppm: int = 0,
    seller_fee_per_lot_fen: int = 0,
    seller_fee_ppm: int = 0,
    rules: dict,
    effective_on: date | None = None,
    now: datetime | None = None,
) -> Product:
    """List a product with its first version of rules, effective from `effective_on` (today at the earliest)."""
    require(actor, OPERATORS, "设计交易品种", "design products")
    now = now or utcnow()
    today = trading_day(now)
    if not _CODE.match(code or ""):
        raise refuse("invalid_code", "品种代码须为 2–16 位大写字母或数字，字母开头", "a product code is 2-16 upper-case letters or digits",
                     "code")
    if session.scalar(select(Product.id).where(Product.code == code)) is not None:
        raise Conflict(f"交易品种已存在：{code}", f"product already exists: {code}", field="code")
    if price_unit not in GRAMS_PER_UNIT:
        raise refuse("invalid_price_unit", f"计价单位须为 t 或 kg，收到 {price_unit!r}", f"the price unit is t or kg, got {price_unit!r}",
                     "price_unit")
    positive_int(units_per_lot, "units_per_lot", "每手计价单位数", "units per lot", MAX_UNITS_PER_LOT)
    positive_int(reference_price_fen, "reference_price_fen", "挂牌基准价（分）", "listing reference price (fen)", MAX_PRICE_FEN)
    for name, value in (("buyer_fee_per_lot_fen", buyer_fee_per_lot_fen), ("seller_fee_per_lot_fen", seller_fee_per_lot_fen)):
        if type(value) is not int or value < 0:
            raise refuse("invalid_fee", f"手续费不能为负：{name}", f"a fee cannot be negative: {name}", name)
        bounded_int(value, name, "每手手续费（分）", "fee per lot (fen)", minimum=0, maximum=MAX_FEE_PER_LOT_FEN)
    for name, value in (("buyer_fee_ppm", buyer_fee_ppm), ("seller_fee_ppm", seller_fee_ppm)):
        if type(value) is not int or not 0 <= value < 1_000_000:
            raise refuse("invalid_fee", f"手续费率须在 0 至 999999 ppm 之间：{name}", f"a fee rate is 0 to 999999 ppm: {name}", name)
    checked = _check_rules(session, rules)
    if reference_price_fen % checked["tick_fen"]:
        raise refuse("off_tick_reference", "挂牌基准价须为最小变动价位的整数倍", "the reference price must be a multiple of the tick",
                     "reference_price_fen")
    effective_on = effective_on or today
    if effective_on < today:
        raise refuse("retroactive", "规则不能追溯生效", "rules cannot take effect retroactively", "effective_on")
    product = Product(
        code=code, name_zh=name_zh, name_en=name_en, metal=metal, price_unit=price_unit,
        grams_per_price_unit=GRAMS_PER_UNIT[price_unit], units_per_lot=units_per_lot,
        reference_price_fen=reference_price_fen, buyer_fee_per_lot_fen=buyer_fee_per_lot_fen,
        buyer_fee_ppm=buyer_fee_ppm, seller_fee_per_lot_fen=seller_fee_per_lot_fen, seller_fee_ppm=seller_fee_ppm,
    )
    session.add(product)
    session.flush()
    version = ProductVersion(product_id=product.id, version=1, notice_date=today, effective_on=effective_on, **checked)
    session.add(version)
    session.flush()
    at_us = utc_micros(now)
    for command in (
        DefineProduct(f"product:{code}", at_us, code, ENGINE_TICK_FEN, units_per_lot, ENGINE_MAX_LOTS, ENGINE_BAND_PPM,
                      FeeSchedule(buyer_fee_per_lot_fen, buyer_fee_ppm), FeeSchedule(seller_fee_per_lot_fen, seller_fee_ppm)),
        SetSettlementPrice(f"reference:{code}", at_us, code, reference_price_fen),
    ):
        outcome = gateway.execute(session, command)
        if not outcome.ack.accepted:
            raise MarketRejected(outcome.ack.rejection)
    record_change(session, actor, "market_product", product.id, "create", None, product_view(product, version))
    return product


def announce_version(
    session: Session, actor: Principal, code: str, *, effective_on: date, rules: dict, now: datetime | None = None
) -> ProductVersion:
    """A notice today of new rules from `effective_on`: strictly after today, and after every version already noticed."""
    require(actor, OPERATORS, "修改交易规则", "change trading rules")
    now = now or utcnow()
    today = trading_day(now)
    product = get_product(session, code)
    checked = _check_rules(session, rules)
    if effective_on <= today:
        raise refuse("retroactive", f"新规则须在公告日（{today.isoformat()}）之后生效，不得追溯",
                     f"new rules take effect after the notice day ({today.isoformat()}), never retroactively",
                     "effective_on")
    latest = session.scalar(select(ProductVersion).where(ProductVersion.product_id == product.id)
                            .order_by(ProductVersion.version.desc()).limit(1))
    if latest is not None and effective_on <= latest.effective_on:
        raise refuse("not_after_latest", f"生效日须晚于已公告版本的生效日 {latest.effective_on.isoformat()}",
                     f"the effective date must be after the latest noticed version's {latest.effective_on.isoformat()}",
                     "effective_on")
    version = ProductVersion(product_id=product.id, version=(latest.version + 1 if latest else 1), notice_date=today,
                             effective_on=effective_on, **checked)
    session.add(version)
    session.flush()
    record_change(session, actor, "market_product_version", version.id, "create", None, version_view(version))
    return version


def set_product_suspended(session: Session, actor: Principal, code: str, suspended: bool, *, now: datetime | None = None) -> Product:
    require(actor, OPERATORS, "暂停或恢复品种", "suspend or resume products")
    product = get_product(session, code)
    before = product_view(product)
    at = now or utcnow()
    key = f"product-suspend:{code}:{int(suspended)}:{utc_micros(at)}"
    outcome = gateway.execute(session, SetProductSuspended(key, utc_micros(at), code, suspended))
    if not outcome.ack.accepted:
        raise MarketRejected(outcome.ack.rejection)
    product.suspended = suspended
    session.flush()
    record_change(session, actor, "market_product", product.id, "suspend" if suspended else "resume", before,
                  product_view(product))
    return product


def previous_settlement_price(session: Session, product: Product, day: date) -> int:
    """The settlement price of the last trading day before `day`, else the listing reference price."""
    price = session.scalar(select(SettlementPrice.price_fen)
                           .where(SettlementPrice.product_id == product.id, SettlementPrice.day < day)
                           .order_by(SettlementPrice.day.desc()).limit(1))
    return int(price) if price is not None else product.reference_price_fen


def _version_and_previous_price():
    """The product's version in force on :day and its previous settlement price, as subqueries on Product."""
    candidate = aliased(ProductVersion)
    day = bindparam("day")
    version_id = (select(candidate.id)
                  .where(candidate.product_id == Product.id, candidate.effective_on <= day)
                  .order_by(candidate.effective_on.desc()).limit(1).correlate(Product).scalar_subquery())
    previous = (select(SettlementPrice.price_fen)
                .where(SettlementPrice.product_id == Product.id, SettlementPrice.day < day)
                .order_by(SettlementPrice.day.desc()).limit(1).correlate(Product).scalar_subquery())
    return version_id, previous


def _rules_for_day_statement():
    version_id, previous = _version_and_previous_price()
    return (select(Product, ProductVersion, previous).outerjoin(ProductVersion, ProductVersion.id == version_id)
            .where(Product.code == bindparam("code")))


# Built once: SQLAlchemy memoises a statement object's cache key, and building and keying this one on every order
# cost more than running it.
_RULES_FOR_DAY = _rules_for_day_statement()


def _rules_columns_statement():
    version_id, previous = _version_and_previous_price()
    return (select(Product.id, Product.code, Product.reference_price_fen, ProductVersion.id.label("version_id"),
                   ProductVersion.tick_fen, ProductVersion.band_ppm, ProductVersion.max_order_lots,
                   previous.label("previous_fen"))
            .outerjoin(ProductVersion, ProductVersion.id == version_id)
            .where(Product.code == bindparam("code")))


_RULES_COLUMNS = _rules_columns_statement()


def rules_row_for_day(session: Session, code: str, day: date):
    """What `rules_for_day` decides for an order, as one plain row read through Core (no ORM objects are built):
    `id`, `code`, `version_id` (None when no version is in force), `tick_fen`, `band_ppm`, `max_order_lots` and
    `reference_fen`, the reference for the day's price band. None when there is no such product."""
    row = session.connection().execute(_RULES_COLUMNS, {"code": code, "day": day}).first()
    if row is None:
        return None
    return _RulesRow(row.id, row.code, row.version_id, row.tick_fen, row.band_ppm, row.max_order_lots,
                     int(row.previous_fen) if row.previous_fen is not None else row.reference_price_fen)


class _RulesRow(NamedTuple):
    id: int
    code: str
    version_id: int | None
    tick_fen: int
    band_ppm: int
    max_order_lots: int
    reference_fen: int


def rules_for_day(session: Session, code: str, day: date) -> tuple[Product, ProductVersion | None, int] | None:
    """The product with this code, its version in force on `day` and the reference for that day's price band
    (`version_in_force` and `previous_settlement_price`), read in one statement: the order path asks for all three on
    every order. None when there is no such product."""
    row = session.execute(_RULES_FOR_DAY, {"code": code, "day": day}).first()
    if row is None:
        return None
    product, version, price = row
    return product, version, int(price) if price is not None else product.reference_price_fen


def price_band(reference_fen: int, version: ProductVersion) -> tuple[int, int]:
    """Reference ± band, narrowed inward to whole ticks."""
    tick = version.tick_fen
    unit = tick * 1_000_000
    low = -(-(reference_fen * (1_000_000 - version.band_ppm)) // unit) * tick
    high = (reference_fen * (1_000_000 + version.band_ppm)) // unit * tick
    return max(tick, low), high
