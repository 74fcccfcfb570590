"""The browser path: demo members trade demo receipts through the pages; refusals show their reason and change nothing."""
from __future__ import annotations

from sqlalchemy import func, select

from ingot.core.db import unit_of_work
from ingot.market import gateway, ledger
from ingot.market.demo import DEMO_PASSWORD, load_market_demo
from ingot.market.models import Order


def _browser_login(client, username):
    response = client.post("/login", data={"username": username, "password": DEMO_PASSWORD, "next": "/market"},
                           follow_redirects=False)
    assert response.status_code == 303, response.text


def _orders(db_url) -> int:
    with unit_of_work(db_url) as session:
        return session.scalar(select(func.count(Order.id)))


def test_members_trade_demo_receipts_through_the_browser(client, db_url):
    gateway.forget_cores()
    with unit_of_work(db_url) as session:
        load_market_demo(session)

    assert client.get("/market", headers={"accept": "text/html"}, follow_redirects=False).status_code == 303
    _browser_login(client, "m001")
    watch = client.get("/market")
    assert watch.status_code == 200 and "IN99995" in watch.text and "精铟" in watch.text
    page = client.get("/market/products/GE99999")
    assert page.status_code == 200 and 'data-testid="order-form"' in page.text
    receipt = next(line.split('value="')[1].split('"')[0] for line in page.text.splitlines() if 'value="KM01GE' in line)

    before = _orders(db_url)
    refused = client.post("/market/orders", data={"product": "GE99999", "account": "M001", "side": "S", "lots": "2",
                                                  "price_yuan": "9000.50", "tif": "DAY", "receipt": receipt, "key": "k1"})
    assert refused.status_code == 422 and "off_tick_price" in refused.text and "最小变动价位" in refused.text
    assert _orders(db_url) == before

    sold = client.post("/market/orders", data={"product": "GE99999", "account": "M001", "side": "S", "lots": "2",
                                               "price_yuan": "9000.00", "tif": "DAY", "receipt": receipt, "key": "k2"},
                       follow_redirects=False)
    assert sold.status_code == 303
    client.post("/logout")

    _browser_login(client, "client1")
    bought = client.post("/market/orders", data={"product": "GE99999", "account": "M010/C01", "side": "B", "lots": "2",
                                                 "price_yuan": "9000", "tif": "IOC", "key": "k3"}, follow_redirects=True)
    assert bought.status_code == 200 and "filled" in bought.text
    receipts_page = client.get("/market/receipts?lang=en")
    assert "KM01GE" in receipts_page.text and "transferred" in receipts_page.text
    assert "M010/C02" not in receipts_page.text and "M001" not in receipts_page.text.split("<table")[1]
    statements = client.get("/market/statements")
    assert statements.status_code == 200 and "M010/C01" in statements.text and "M010/C02" not in statements.text
    number = receipts_page.text.split('href="/market/receipts/')[1].split('"')[0]
    assert client.get(f"/market/receipts/{number}").status_code == 200
    assert client.get("/market/oversight").status_code == 403
    client.post("/logout")

    _browser_login(client, "market_watch")
    oversight = client.get("/market/oversight")
    assert oversight.status_code == 200 and "M010/C01" in oversight.text and "M001/" not in oversight.text
    with unit_of_work(db_url) as session:
        ledger.check_invariants(session)


def test_the_centre_designs_rules_and_runs_sessions_from_its_page(client, db_url):
    gateway.forget_cores()
    with unit_of_work(db_url) as session:
        load_market_demo(session)
    _browser_login(client, "centre")
    assert client.get("/market/admin").status_code == 200
    rules = {"notice_ref": "公告〔2026〕9号", "grade_zh": "精铟", "grade_en": "refined indium", "quality_spec": "In_min_pct=99.995",
             "tick_yuan": "5.00", "band_ppm": "60000", "max_order_lots": "40", "sessions": "09:00-11:30",
             "warehouses": "KM01"}
    retro = client.post("/market/admin/versions", data={"product": "IN99995", "effective_on": "2020-01-01", **rules})
    assert retro.status_code == 422 and "retroactive" in retro.text
    fine = client.post("/market/admin/versions", data={"product": "IN99995", "effective_on": "2099-01-01", **rules},
                       follow_redirects=False)
    assert fine.status_code == 303
    assert "v2@2099-01-01" in client.get("/market/admin").text
    closed = client.post("/market/admin/session", data={"action": "close", "product": "CU"}, follow_redirects=False)
    assert closed.status_code == 303
    assert client.get("/api/market/sessions").json()["CU"] == "closed"
    assert "reserve-operations" in client.get("/market").text
    client.post("/logout")
    _browser_login(client, "m001")
    assert client.get("/market/admin").status_code == 403


def test_warehouse_registers_and_loads_out_through_the_browser(client, db_url):
    gateway.forget_cores()
    with unit_of_work(db_url) as session:
        load_market_demo(session)
    _browser_login(client, "wh_km")
    page = client.get("/market/receipts")
    assert page.status_code == 200 and 'data-testid="receipt-form"' in page.text
    form = {"product": "IN99995", "owner_account": "M011", "lot_no": "W-1", "brand": "", "net_grams": "100050",
            "assay_certificate": "AC-W-1", "assay": "In_pct=99.990", "location": "Z-9"}
    low = client.post("/market/receipts", data=form)
    assert low.status_code == 422 and "assay_below_spec" in low.text
    done = client.post("/market/receipts", data={**form, "assay": "In_pct=99.997"}, follow_redirects=False)
    assert done.status_code == 303
    client.post("/logout")
    _browser_login(client, "trader")
    mine = client.get("/market/receipts")
    number = next(part.split("/load-out")[0] for part in mine.text.split('action="/market/receipts/')[1:]
                  if "/load-out" in part.split('"')[0])
    assert client.post(f"/market/receipts/{number}/load-out", follow_redirects=False).status_code == 303
    client.post("/logout")
    _browser_login(client, "wh_km")
    assert client.post(f"/market/receipts/{number}/out", follow_redirects=False).status_code == 303
    with unit_of_work(db_url) as session:
        from ingot.market.receipts import get_receipt

        assert get_receipt(session, number).status == "out"
        ledger.check_invariants(session)
