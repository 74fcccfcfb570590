"""`ingot serve --workers 2`: two server processes on one port, sharing nothing but the database. Orders placed
through either process meet in one book (each process brings its core level with the committed journal before
every command), every trade settles once, and the ledger balances afterwards."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import select

from ingot.core.db import dispose_engines, unit_of_work
from ingot.market import gateway, ledger
from ingot.market.models import Receipt, Trade, TradingAccount
from tests.conftest import free_port
from tests.market_db.helpers import PASSWORD, build_market, open_continuous


def test_two_server_processes_trade_in_one_book(db_url, tmp_path):
    gateway.forget_cores()
    with unit_of_work(db_url) as session:
        open_continuous(session, build_market(session, cash_fen=200_000_000, seller_receipts=6))
    with unit_of_work(db_url) as session:
        numbers = list(session.scalars(select(Receipt.number).order_by(Receipt.id)))  # all the seller's
    dispose_engines()
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        server = subprocess.Popen([str(Path(sys.executable).with_name("ingot")), "serve", "--host", "127.0.0.1",
                                   "--port", str(port), "--workers", "2", "--no-market-sessions"],
                                  env={**os.environ, "INGOT_DATABASE_URL": db_url}, stdout=output, stderr=output)
    base = f"http://127.0.0.1:{port}"
    try:
        for _attempt in range(300):
            try:
                if httpx.get(f"{base}/docs", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                assert server.poll() is None, log.read_text(errors="replace")
                time.sleep(0.1)
        # each call below opens a connection of its own, so the kernel hands them to either process
        def token(username: str) -> dict:
            answer = httpx.post(f"{base}/api/auth/token", data={"username": username, "password": PASSWORD})
            assert answer.status_code == 200, answer.text
            return {"Authorization": f"Bearer {answer.json()['access_token']}"}

        seller, buyer = token("seller"), token("client_a")
        statuses = []
        for index, number in enumerate(numbers):
            ask = httpx.post(f"{base}/api/market/orders", headers=seller, json={
                "account": "M001", "product": "IN99995", "side": "S", "lots": 10, "price_fen": 150_000,
                "receipts": [number], "key": f"ask-{index}"})
            assert ask.status_code == 201 and ask.json()["status"] == "resting", ask.text
            bid = httpx.post(f"{base}/api/market/orders", headers=buyer, json={
                "account": "M002/C01", "product": "IN99995", "side": "B", "lots": 10, "price_fen": 150_000,
                "key": f"bid-{index}"})
            assert bid.status_code == 201, bid.text
            statuses.append(bid.json()["status"])
            again = httpx.post(f"{base}/api/market/orders", headers=buyer, json={
                "account": "M002/C01", "product": "IN99995", "side": "B", "lots": 10, "price_fen": 150_000,
                "key": f"bid-{index}"})
            assert again.json()["order_id"] == bid.json()["order_id"]  # whichever process answers the resubmission
    finally:
        server.send_signal(signal.SIGINT)
        status = server.wait(60)
    output = log.read_text(errors="replace")
    assert output.count("Started server process") == 2, output
    assert status == 0, output
    assert statuses == ["filled"] * len(numbers)
    gateway.forget_cores()
    with unit_of_work(db_url) as session:
        assert len(session.scalars(select(Trade)).all()) == len(numbers)
        ledger.check_invariants(session)
        owners = set(session.scalars(select(TradingAccount.engine_id).join(
            Receipt, Receipt.owner_account_id == TradingAccount.id).where(Receipt.number.in_(numbers))))
    assert owners == {"M002/C01"}
