"""Market data: OHLCV bars aligned to Shanghai time, depth, the tape without parties, settlement prices, the chart."""
from __future__ import annotations

from datetime import timedelta

import pytest

from ingot.core.errors import DomainError
from ingot.market import gateway, marketdata, trading
from tests.market_db.helpers import NOW, build_market, open_continuous


@pytest.fixture
def market(session):
    gateway.forget_cores()
    built = build_market(session)
    open_continuous(session, built)
    return built


def _trade(session, market, price, lots, key, at):
    from ingot.market import receipts

    free = [r.number for r in receipts.list_receipts(session, market.seller) if r.lien_kind is None]
    trading.place_order(session, market.seller, account="M001", product="IN99995", side="S", lots=lots,
                        price_fen=price, key=f"s{key}", receipts=free[:1], now=at)
    trading.place_order(session, market.client_a, account="M002/C01", product="IN99995", side="B", lots=lots,
                        price_fen=price, key=f"b{key}", now=at)


def test_bars_depth_tape_and_chart(session, market):
    _trade(session, market, 150_000, 2, 1, NOW + timedelta(minutes=1))
    _trade(session, market, 151_000, 1, 2, NOW + timedelta(minutes=3))
    _trade(session, market, 149_000, 3, 3, NOW + timedelta(minutes=6))
    bars = marketdata.bars(session, "IN99995", interval="5m", day=NOW.date())
    assert [(b["open_fen"], b["high_fen"], b["low_fen"], b["close_fen"], b["volume_lots"]) for b in bars] == [
        (150_000, 151_000, 150_000, 151_000, 3), (149_000, 149_000, 149_000, 149_000, 3)]
    assert bars[0]["start"].startswith("2026-11-23T02:00:00")  # 10:00 Shanghai
    assert bars[0]["turnover_fen"] == 150_000 * 2 * 10 + 151_000 * 10
    with pytest.raises(DomainError):
        marketdata.bars(session, "IN99995", interval="7m")

    trading.place_order(session, market.client_b, account="M002/C02", product="IN99995", side="B", lots=2,
                        price_fen=148_000, key="rest", now=NOW)
    depth = marketdata.depth(session, "IN99995")
    assert depth["bids"] == [{"price_fen": 148_000, "lots": 2, "orders": 1}] and depth["phase"] == "continuous"

    tape = marketdata.tape(session, "IN99995")
    assert [t["price_fen"] for t in tape] == [149_000, 151_000, 150_000]
    assert all(set(t) == {"trade_id", "product", "price_fen", "lots", "aggressor", "at"} for t in tape)
    assert [t["trade_id"] for t in marketdata.stream_since(session, tape[-1]["trade_id"])] == [2, 3]

    chart = marketdata.line_chart([("10:01", 150_000), ("10:03", 151_000), ("10:06", 149_000)])
    assert chart.startswith("<svg") and "1,510.00" in chart and "<script" not in chart
    assert marketdata.yuan(-123_456) == "-1,234.56" and marketdata.yuan(None) == ""


def test_server_sent_events_follow_new_trades(client, db_url):
    from ingot.core.db import unit_of_work
    from tests.conftest import login

    gateway.forget_cores()
    with unit_of_work(db_url) as session:
        market = build_market(session)
        open_continuous(session, market)
        _trade(session, market, 150_000, 1, 1, NOW)
    headers = login(client, "client_b", "market-pass-1")
    with client.stream("GET", "/api/market/stream?after=0&poll_seconds=0.2", headers=headers) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        seen = []
        for line in lines:
            if line.startswith("data:"):
                seen.append(line)
                break
    assert '"price_fen": 150000' in seen[0]
