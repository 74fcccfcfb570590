"""Receipt and tape pages show times in Beijing time, and a receipt prints with its number as a Code 128 barcode;
a member sees only its own receipts' print views."""
from __future__ import annotations

import re

from sqlalchemy import select

from ingot.core.db import unit_of_work
from ingot.market import barcode, gateway, trading
from ingot.market.models import Receipt
from tests.market_db.helpers import NOW, PASSWORD, build_market, open_continuous

FIRST = "KM01IN99995000001"


def _browser_login(client, username):
    response = client.post("/login", data={"username": username, "password": PASSWORD, "next": "/market"},
                           follow_redirects=False)
    assert response.status_code == 303, response.text


def _market_with_a_trade(db_url):
    gateway.forget_cores()
    with unit_of_work(db_url) as session:
        market = build_market(session)
        open_continuous(session, market)
        trading.place_order(session, market.seller, account="M001", product="IN99995", side="S", lots=2,
                            price_fen=150_000, key="ask", receipts=[FIRST], now=NOW)
        trading.place_order(session, market.client_a, account="M002/C01", product="IN99995", side="B", lots=2,
                            price_fen=150_000, key="bid", now=NOW)
        # NOW is 02:00 UTC, 10:00 in Shanghai; give the receipt a registration time that crosses midnight.
        session.scalar(select(Receipt).where(Receipt.number == FIRST)).registered_at = NOW.replace(hour=17, minute=5)


def test_times_on_the_receipt_and_tape_pages_are_beijing_time(client, db_url):
    _market_with_a_trade(db_url)
    _browser_login(client, "seller")
    receipt = client.get(f"/market/receipts/{FIRST}")
    assert receipt.status_code == 200
    assert "2026-11-24 01:05:00" in receipt.text and "2026-11-23T17:05" not in receipt.text
    product = client.get("/market/products/IN99995")
    assert product.status_code == 200
    assert "10:00:00" in product.text and "02:00:00" not in product.text
    watch = client.get("/market")
    assert "2026-11-23 10:00:00" in watch.text and "2026-11-23T02:00:00" not in watch.text
    # The API keeps ISO 8601 in UTC with its offset.
    tape = client.get("/api/market/tape").json()
    assert tape[0]["at"] == "2026-11-23T02:00:00+00:00"


def test_a_receipt_prints_with_its_number_as_a_code_128_barcode(client, db_url):
    _market_with_a_trade(db_url)
    _browser_login(client, "seller")
    page = client.get("/market/receipts/KM01IN99995000002/print")
    assert page.status_code == 200 and 'data-testid="receipt-print"' in page.text
    drawn = re.findall(r'<rect x="\d+" y="0" width="(\d+)" height="80"/>', page.text)
    expected = [2 * int(w) for w in barcode.module_widths("KM01IN99995000002")[0::2]]
    assert [int(w) for w in drawn] == expected
    assert "ASSAY-1" in page.text and "100,037 g" in page.text and "<script" not in page.text
    assert 'href="/market/receipts/KM01IN99995000002/print"' in client.get("/market/receipts/KM01IN99995000002").text
    client.post("/logout")

    # Someone else's receipt is not there at all for a client.
    _browser_login(client, "client_b")
    assert client.get("/market/receipts/KM01IN99995000002/print").status_code == 404
