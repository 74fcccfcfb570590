"""End to end over HTTP: the centre designs a product and admits members, the warehouse registers a receipt, two
members trade it, and the trade settles with the ledger balanced; rejections name their reason and change nothing."""
from __future__ import annotations

from sqlalchemy import func, select

from ingot.core.auth import create_user
from ingot.core.db import unit_of_work
from ingot.market import gateway, ledger
from ingot.market.models import EngineCommand, Order
from tests.conftest import login
from tests.market_db.helpers import INDIUM_RULES


def _setup_users(db_url):
    gateway.forget_cores()
    with unit_of_work(db_url) as session:
        for username, role in (("centre", "market_operator"), ("smelter", "member"), ("buyer", "member"),
                               ("keeper", "warehouse"), ("watcher", "regulator")):
            create_user(session, username=username, password="market-pass-1", role=role,
                        division_code="530000" if role == "regulator" else None)


def test_a_trade_end_to_end_through_the_api(client, db_url):
    _setup_users(db_url)
    centre = login(client, "centre", "market-pass-1")
    ok = lambda response, status=200: (response.status_code == status) or print(response.text)  # noqa: E731

    assert ok(client.post("/api/market/warehouses", headers=centre,
                          json={"code": "KM01", "name_zh": "昆明交割库", "division_code": "530100"}), 201)
    product = {"code": "IN99995", "name_zh": "精铟", "name_en": "Refined indium", "metal": "indium",
               "price_unit": "kg", "units_per_lot": 10, "reference_price_fen": 150_000,
               "buyer_fee_per_lot_fen": 300, "seller_fee_ppm": 100, "rules": INDIUM_RULES}
    assert ok(client.post("/api/market/products", headers=centre, json=product), 201)
    for code, kind, division in (("M001", "industry", "530100"), ("M002", "trader", "510100")):
        assert ok(client.post("/api/market/members", headers=centre,
                              json={"code": code, "name": code, "kind": kind, "division_code": division}), 201)
    for username, body in (("smelter", {"member": "M001"}), ("buyer", {"member": "M002"}), ("keeper", {"warehouse": "KM01"})):
        assert ok(client.post(f"/api/market/users/{username}/link", headers=centre, json=body))
    for ref, account in (("B-1", "M001"), ("B-2", "M002")):
        assert ok(client.post("/api/market/bank-lines", headers=centre,
                              json={"bank_ref": ref, "account": account, "value_date": "2026-11-23",
                                    "amount_fen": 20_000_000}), 201)
        assert ok(client.post("/api/market/deposits", headers=centre, json={"bank_ref": ref}), 201)

    keeper = login(client, "keeper", "market-pass-1")
    response = client.post("/api/market/receipts", headers=keeper, json={
        "warehouse": "KM01", "product": "IN99995", "owner_account": "M001", "lot_no": "L1", "net_grams": 100_037,
        "assay_certificate": "A-1", "assay": {"In_pct": "99.996"}, "location": "A-1"})
    assert ok(response, 201)
    number = response.json()["number"]
    low = client.post("/api/market/receipts", headers=keeper, json={
        "warehouse": "KM01", "product": "IN99995", "owner_account": "M001", "lot_no": "L2", "net_grams": 100_000,
        "assay_certificate": "A-2", "assay": {"In_pct": "99.99"}, "location": "A-2"})
    assert low.status_code == 422 and low.json()["detail"][0]["code"] == "assay_below_spec"

    assert ok(client.post("/api/market/sessions", headers=centre, json={"action": "continuous"}))

    smelter = login(client, "smelter", "market-pass-1")
    buyer = login(client, "buyer", "market-pass-1")
    ask = client.post("/api/market/orders", headers={**smelter, "Idempotency-Key": "ask-1"}, json={
        "account": "M001", "product": "IN99995", "side": "S", "lots": 10, "price_fen": 150_000, "receipts": [number]})
    assert ok(ask, 201) and ask.json()["status"] == "resting"

    commands = lambda: _count(db_url, EngineCommand.sequence)  # noqa: E731
    before = commands()
    refused = client.post("/api/market/orders", headers=buyer, json={
        "account": "M002", "product": "IN99995", "side": "B", "lots": 3, "price_fen": 150_050, "key": "bad"})
    assert refused.status_code == 422
    detail = refused.json()["detail"][0]
    assert detail["code"] == "off_tick_price" and "最小变动价位" in detail["msg"] and "tick" in detail["msg_en"]
    assert commands() == before
    other = client.post("/api/market/orders", headers=buyer, json={
        "account": "M001", "product": "IN99995", "side": "B", "lots": 1, "price_fen": 150_000, "key": "not-mine"})
    assert other.status_code == 404

    bid = client.post("/api/market/orders", headers=buyer, json={
        "account": "M002", "product": "IN99995", "side": "B", "lots": 3, "price_fen": 150_000, "key": "bid-1"})
    assert ok(bid, 201) and bid.json()["status"] == "filled"
    again = client.post("/api/market/orders", headers=buyer, json={
        "account": "M002", "product": "IN99995", "side": "B", "lots": 3, "price_fen": 150_000, "key": "bid-1"})
    assert again.json()["order_id"] == bid.json()["order_id"]
    assert _count(db_url, Order.id) == 2

    mine = client.get("/api/market/receipts", headers=buyer).json()
    assert [r["lots"] for r in mine] == [3] and mine[0]["status"] == "transferred"
    balances = {b["account"]: b for b in client.get("/api/market/balances", headers=buyer).json()}
    notional = 150_000 * 3 * 10
    assert balances == {"M002": {"account": "M002", "balance_fen": 20_000_000 - notional - 900,
                                 "available_fen": 20_000_000 - notional - 900, "locked_fen": 0, "consistent": True}}
    depth = client.get("/api/market/depth/IN99995", headers=buyer).json()
    assert depth["asks"] == [{"price_fen": 150_000, "lots": 7, "orders": 1}]
    tape = client.get("/api/market/tape", headers=buyer).json()
    assert tape[0]["price_fen"] == 150_000 and "buyer" not in tape[0]

    stream = client.get("/api/market/stream?after=0&follow=false", headers=buyer)
    assert "event: trade" in stream.text and '"lots": 3' in stream.text

    eod = client.post("/api/market/end-of-day", headers=centre, json={})
    assert ok(eod) and eod.json()["settlement_prices"]["IN99995"]["price_fen"] == 150_000
    statements = client.get("/api/market/statements", headers=buyer).json()
    assert [s["account"] for s in statements] == ["M002"] and statements[0]["metal_grams"]["IN99995"] > 0
    with unit_of_work(db_url) as session:
        ledger.check_invariants(session)


def _count(db_url, column) -> int:
    with unit_of_work(db_url) as session:
        return session.scalar(select(func.count(column)))
