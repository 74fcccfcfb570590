"""A small market on a migrated database: one warehouse, indium and copper, an industry member that holds metal,
a brokerage member with two clients, the reserve agency, and users for each role."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from ingot.core.auth import ADMIN, REGULATOR, Principal, create_user, principal_of
from ingot.core.db import unit_of_work
from ingot.market import accounts, gateway, products, receipts, trading

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)  # 10:00 in Shanghai
OPERATOR_PASSWORD = "operator-pass-1"
PASSWORD = "market-pass-1"

INDIUM_RULES = {
    "notice_ref": "交易中心公告〔2026〕1号",
    "grade_zh": "精铟 In≥99.995%",
    "grade_en": "refined indium In >= 99.995 %",
    "quality_spec": {"In_min_pct": "99.995"},
    "tick_fen": 100,
    "band_ppm": 100_000,
    "max_order_lots": 50,
    "sessions": ["09:00-11:30", "13:30-15:00"],
    "deliverable_warehouses": ["KM01"],
}


@dataclass
class Market:
    operator: Principal
    seller: Principal  # industry member M001, own account
    broker: Principal  # brokerage member M002, sees its clients
    client_a: Principal  # client C01 of M002
    client_b: Principal  # client C02 of M002
    warehouse: Principal
    regulator: Principal
    users: dict


def build_market(session, *, cash_fen: int = 20_000_000, seller_receipts: int = 2) -> Market:
    operator_user = create_user(session, username="operator", password=OPERATOR_PASSWORD, role="market_operator")
    operator = principal_of(operator_user)
    warehouse = accounts.create_warehouse(session, operator, code="KM01", name_zh="昆明交割库", division_code="530100")
    products.create_product(
        session, operator, code="IN99995", name_zh="精铟", name_en="Refined indium", metal="indium", price_unit="kg",
        units_per_lot=10, reference_price_fen=150_000, buyer_fee_per_lot_fen=300, buyer_fee_ppm=150,
        seller_fee_per_lot_fen=200, seller_fee_ppm=100, rules=INDIUM_RULES, now=NOW)
    seller_member = accounts.create_member(session, operator, code="M001", name="云南某铟业", kind="industry",
                                           division_code="530100", now=NOW)
    broker_member = accounts.create_member(session, operator, code="M002", name="某期货经纪", kind="brokerage",
                                           division_code="510100", now=NOW)
    client_a = accounts.add_client(session, operator, "M002", code="C01", name="客户甲", now=NOW)
    client_b = accounts.add_client(session, operator, "M002", code="C02", name="客户乙", now=NOW)

    users = {}

    def user(username, role, **link):
        created = create_user(session, username=username, password=PASSWORD, role=role,
                              division_code="510000" if role == REGULATOR else None)
        if link:
            accounts.link_user(session, operator, created, **link)
        users[username] = created
        return principal_of(created)

    market = Market(
        operator=operator,
        seller=user("seller", "member", member=seller_member),
        broker=user("broker", "member", member=broker_member),
        client_a=user("client_a", "member", member=broker_member, client=client_a),
        client_b=user("client_b", "member", member=broker_member, client=client_b),
        warehouse=user("keeper", "warehouse", warehouse=warehouse),
        regulator=user("regulator", REGULATOR),
        users=users,
    )
    for index, engine_id in enumerate(("M001", "M002/C01", "M002/C02")):
        fund(session, operator, engine_id, cash_fen, f"BANK-{index:04d}")
    for index in range(seller_receipts):
        receipts.register_receipt(
            session, market.warehouse, warehouse_code="KM01", product_code="IN99995", owner_account="M001",
            lot_no=f"L{index:03d}", net_grams=100_000 + 37 * index, assay_certificate=f"ASSAY-{index}",
            assay={"In_pct": "99.996"}, location=f"A-{index}", now=NOW)
    session.flush()
    return market


def fund(session, operator, engine_id: str, amount_fen: int, bank_ref: str):
    accounts.import_bank_line(session, operator, bank_ref=bank_ref, account_engine_id=engine_id,
                              value_date=NOW.date(), amount_fen=amount_fen)
    return accounts.deposit(session, operator, bank_ref, now=NOW)


def open_continuous(session, market: Market):
    return trading.session_control(session, market.operator, "continuous", now=NOW)


ADMIN_PRINCIPAL = Principal(user_id=0, username="system", role=ADMIN)


def open_market(db_url: str, **build) -> Market:
    """A fresh process's view of a built market in continuous trading: the in-memory cores forgotten, the market
    built (`build_market`'s options) and opened, committed."""
    gateway.forget_cores()
    with unit_of_work(db_url) as session:
        built = build_market(session, **build)
        open_continuous(session, built)
    return built
