"""Numbers too large for the database are refused where they enter — a 422 naming the field with the reason in
zh-CN and English — by the API's request models and path parameters, and by the services that the pages and the
CLI call; never an overflow inside SQLite or PostgreSQL."""
from __future__ import annotations

import pytest

from ingot.core.db import unit_of_work
from ingot.core.errors import DomainError
from ingot.market import accounts, gateway, marketdata, products, receipts, trading
from tests.conftest import login
from tests.market_db.helpers import INDIUM_RULES, NOW, OPERATOR_PASSWORD, PASSWORD, build_market, open_continuous

HUGE = 10**30
JUST_OVER_BIGINT = 2**63


@pytest.fixture
def api(client, db_url):
    gateway.forget_cores()
    with unit_of_work(db_url) as session:
        market = build_market(session)
        open_continuous(session, market)
        order = trading.place_order(session, market.client_a, account="M002/C01", product="IN99995", side="B",
                                    lots=1, price_fen=150_000, key="resting-bid", now=NOW)
        order_id = order.id
    headers = {name: login(client, name, password) for name, password in (
        ("operator", OPERATOR_PASSWORD), ("keeper", PASSWORD), ("client_a", PASSWORD))}
    return client, headers, order_id


def _assert_bounded(response, field: str) -> None:
    assert response.status_code == 422, response.text
    details = response.json()["detail"]
    named = [d for d in details if d.get("field") == field]
    assert named, details
    assert named[0]["msg"].startswith(field) and "数值" in named[0]["msg"], named[0]
    assert named[0]["msg_en"].startswith(f"{field}:"), named[0]


PRODUCT = {"code": "CU", "name_zh": "阴极铜", "name_en": "Cathode copper", "metal": "copper", "price_unit": "t",
           "units_per_lot": 5, "reference_price_fen": 7_000_000,
           "rules": {**INDIUM_RULES, "quality_spec": {}}}


@pytest.mark.parametrize("field, body", [
    ("units_per_lot", {**PRODUCT, "units_per_lot": HUGE}),
    ("reference_price_fen", {**PRODUCT, "reference_price_fen": JUST_OVER_BIGINT}),
    ("buyer_fee_per_lot_fen", {**PRODUCT, "buyer_fee_per_lot_fen": HUGE}),
    ("rules.tick_fen", {**PRODUCT, "rules": {**PRODUCT["rules"], "tick_fen": HUGE}}),
    ("rules.max_order_lots", {**PRODUCT, "rules": {**PRODUCT["rules"], "max_order_lots": HUGE}}),
])
def test_product_numbers_are_bounded(api, field, body):
    client, headers, _ = api
    _assert_bounded(client.post("/api/market/products", headers=headers["operator"], json=body), field)


def test_money_metal_and_order_numbers_are_bounded(api):
    client, headers, order_id = api
    operator, keeper, member = headers["operator"], headers["keeper"], headers["client_a"]
    cases = [
        ("amount_fen", client.post("/api/market/bank-lines", headers=operator, json={
            "bank_ref": "HUGE-1", "account": "M001", "value_date": "2026-11-23", "amount_fen": HUGE})),
        ("closing_fen", client.post("/api/market/bank-balances", headers=operator, json={
            "account": "M001", "day": "2026-11-23", "closing_fen": -HUGE})),
        ("enterprise_id", client.post("/api/market/members", headers=operator, json={
            "code": "M009", "name": "x", "kind": "industry", "division_code": "530100",
            "enterprise_id": JUST_OVER_BIGINT})),
        ("net_grams", client.post("/api/market/receipts", headers=keeper, json={
            "warehouse": "KM01", "product": "IN99995", "owner_account": "M001", "lot_no": "L9", "net_grams": HUGE,
            "assay_certificate": "A-9", "assay": {"In_pct": "99.996"}, "location": "A-9"})),
        ("physical_grams", client.post("/api/market/stock-reports", headers=keeper, json={
            "warehouse": "KM01", "product": "IN99995", "day": "2026-11-23", "physical_grams": HUGE})),
        ("lots", client.post("/api/market/orders", headers=member, json={
            "account": "M002/C01", "product": "IN99995", "side": "B", "lots": HUGE, "price_fen": 150_000,
            "key": "huge-lots"})),
        ("price_fen", client.post("/api/market/orders", headers=member, json={
            "account": "M002/C01", "product": "IN99995", "side": "B", "lots": 1, "price_fen": JUST_OVER_BIGINT,
            "key": "huge-price"})),
        ("lots", client.post(f"/api/market/orders/{order_id}/amend", headers=member, json={
            "lots": HUGE, "price_fen": 150_000, "key": "huge-amend"})),
        ("order_id", client.post(f"/api/market/orders/{JUST_OVER_BIGINT}/cancel", headers=member,
                                 json={"key": "huge-cancel"})),
        ("order_id", client.post(f"/api/market/orders/{HUGE}/amend", headers=member,
                                 json={"lots": 1, "price_fen": 150_000, "key": "huge-id"})),
        ("order_id", client.post("/api/market/orders/0/cancel", headers=member, json={"key": "zero-id"})),
        ("after", client.get(f"/api/market/tape?after={HUGE}", headers=member)),
        ("after", client.get(f"/api/market/stream?after={HUGE}&follow=false", headers=member)),
    ]
    for field, response in cases:
        _assert_bounded(response, field)
    # A huge receipt number in a path is a string that matches nothing: 404, not 500.
    assert client.get(f"/api/market/receipts/{HUGE}", headers=member).status_code == 404


def test_the_pages_refuse_huge_ids_and_numbers(api):
    client, headers, _ = api
    member = headers["client_a"]
    assert client.post(f"/market/orders/{JUST_OVER_BIGINT}/cancel", headers=member,
                       data={"key": "page-cancel"}).status_code == 422
    assert client.get(f"/market/orders?placed={HUGE}", headers=member).status_code == 422
    page = client.post("/market/receipts", headers=headers["keeper"], data={
        "product": "IN99995", "owner_account": "M001", "lot_no": "L9", "net_grams": str(HUGE),
        "assay_certificate": "A-9", "assay": "In_pct=99.996", "location": "A-9"})
    assert page.status_code == 422 and "receipt-error" in page.text and "out_of_range" in page.text


@pytest.fixture
def market(session):
    gateway.forget_cores()
    built = build_market(session)
    open_continuous(session, built)
    session.commit()
    return built


def _refused(call) -> DomainError:
    with pytest.raises(DomainError) as refused:
        call()
    assert refused.value.status_code == 422 or refused.value.status_code == 404
    assert refused.value.message_zh and refused.value.message_en
    return refused.value


def test_the_services_bound_what_the_pages_and_the_cli_pass(session, market):
    operator = market.operator
    cases = [
        ("net_grams", lambda: receipts.register_receipt(
            session, market.warehouse, warehouse_code="KM01", product_code="IN99995", owner_account="M001",
            lot_no="L9", net_grams=HUGE, assay_certificate="A-9", assay={"In_pct": "99.996"}, location="A-9", now=NOW)),
        ("physical_grams", lambda: receipts.report_stock(
            session, market.warehouse, warehouse_code="KM01", product_code="IN99995", day=NOW.date(),
            physical_grams=HUGE)),
        ("amount_fen", lambda: accounts.import_bank_line(
            session, operator, bank_ref="HUGE-2", account_engine_id="M001", value_date=NOW.date(), amount_fen=-HUGE)),
        ("closing_fen", lambda: accounts.import_bank_balance(
            session, operator, account_engine_id="M001", day=NOW.date(), closing_fen=HUGE)),
        ("enterprise_id", lambda: accounts.create_member(
            session, operator, code="M009", name="x", kind="industry", division_code="530100",
            enterprise_id=JUST_OVER_BIGINT, now=NOW)),
        ("units_per_lot", lambda: products.create_product(
            session, operator, code="CU", name_zh="铜", name_en="Copper", metal="copper", price_unit="t",
            units_per_lot=HUGE, reference_price_fen=7_000_000, rules=INDIUM_RULES, now=NOW)),
        ("tick_fen", lambda: products.create_product(
            session, operator, code="CU", name_zh="铜", name_en="Copper", metal="copper", price_unit="t",
            units_per_lot=5, reference_price_fen=7_000_000, rules={**INDIUM_RULES, "tick_fen": HUGE}, now=NOW)),
        ("seller_fee_per_lot_fen", lambda: products.create_product(
            session, operator, code="CU", name_zh="铜", name_en="Copper", metal="copper", price_unit="t",
            units_per_lot=5, reference_price_fen=7_000_000, seller_fee_per_lot_fen=HUGE, rules=INDIUM_RULES,
            now=NOW)),
        ("order_id", lambda: trading.cancel_order(session, market.client_a, JUST_OVER_BIGINT, key="c", now=NOW)),
        ("after", lambda: marketdata.tape(session, after_id=HUGE)),
    ]
    for field, call in cases:
        refused = _refused(call)
        assert refused.field == field, (field, refused.code, refused.message_en)
        assert refused.code == "out_of_range", (field, refused.code)
        session.rollback()


def test_an_amendment_is_held_to_the_maximum_order_size(session, market):
    bid = trading.place_order(session, market.client_a, account="M002/C01", product="IN99995", side="B", lots=1,
                              price_fen=150_000, key="b", now=NOW)
    refused = _refused(lambda: trading.amend_order(session, market.client_a, bid.id, lots=51, price_fen=150_000,
                                                   key="a", now=NOW))
    assert refused.code == "quantity_above_maximum" and refused.field == "lots"
