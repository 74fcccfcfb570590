"""The product page updates itself: it loads a small script from the package's static folder, and the stream it
subscribes to carries the product's trades and a `depth` event whenever its book changes."""
from __future__ import annotations

import json

from ingot.core.db import unit_of_work
from ingot.market import gateway, trading
from tests.conftest import login
from tests.market_db.helpers import NOW, PASSWORD, build_market, open_continuous


def _events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_the_stream_carries_a_products_trades_and_its_depth(client, db_url):
    gateway.forget_cores()
    with unit_of_work(db_url) as session:
        market = build_market(session)
        open_continuous(session, market)
        trading.place_order(session, market.seller, account="M001", product="IN99995", side="S", lots=3,
                            price_fen=150_100, key="ask", receipts=["KM01IN99995000001"], now=NOW)
        trading.place_order(session, market.client_a, account="M002/C01", product="IN99995", side="B", lots=1,
                            price_fen=150_100, key="bid", now=NOW)
    headers = login(client, "client_a", PASSWORD)
    response = client.get("/api/market/stream?product=IN99995&after=0&follow=false", headers=headers)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = _events(response.text)
    assert [kind for kind, _ in events] == ["trade", "depth"]
    assert events[0][1]["product"] == "IN99995" and events[0][1]["lots"] == 1
    assert events[1][1]["asks"] == [{"price_fen": 150_100, "lots": 2, "orders": 1}] and events[1][1]["bids"] == []
    assert client.get("/api/market/stream?product=NOPE&follow=false", headers=headers).status_code == 404


def test_the_product_page_loads_the_live_script_from_the_static_folder(client, db_url):
    gateway.forget_cores()
    with unit_of_work(db_url) as session:
        build_market(session)
    client.post("/login", data={"username": "client_a", "password": PASSWORD, "next": "/market"})
    page = client.get("/market/products/IN99995")
    assert page.status_code == 200
    assert '<script src="/static/market-live.js" defer></script>' in page.text
    assert 'data-live-product="IN99995"' in page.text and "data-live-depth" in page.text and "data-live-tape" in page.text
    script = client.get("/static/market-live.js")
    assert script.status_code == 200 and "EventSource" in script.text and "/api/market/stream?product=" in script.text
    assert "http://" not in script.text and "https://" not in script.text  # nothing from a CDN
