"""Feeds a seeded stream of orders through the trading service and the database-journaled gateway, one transaction
per order, printing each acknowledgement as a JSON line once its transaction has committed. The database crash
recovery test SIGKILLs it mid-stream, then runs it again (`resubmit`) in a fresh process over the same stream.

Usage: python -m tests.market_db.crash_worker DATABASE_URL SEED COUNT SNAPSHOT_EVERY

Every line is one of
  {"recovered": {"sequence", "state_hash", "snapshot"}}   first, once the core is rebuilt from the database
  {"key", "account", "order_id", "sequence", "status", "trade_ids"} an acknowledged order
  {"key", "account", "refused": code}                     a refused order (nothing changed)
"""
from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass

from sqlalchemy import select

from ingot.core.auth import User, principal_of
from ingot.core.db import unit_of_work
from ingot.core.errors import DomainError
from ingot.market import gateway, trading
from ingot.market.accounts import get_account
from ingot.market.models import Receipt
from tests.market_db.helpers import NOW

PRODUCT = "IN99995"
BUYERS = (("client_a", "M002/C01"), ("client_b", "M002/C02"))


@dataclass(frozen=True)
class StreamOrder:
    key: str
    username: str
    account: str
    side: str
    lots: int
    price_fen: int
    tif: str


def order_stream(seed: int, count: int) -> list[StreamOrder]:
    """Sells by the industry member and buys by the two clients around 150,000 fen, all inside the band."""
    rng = random.Random(seed)
    orders = []
    for index in range(count):
        lots = rng.randint(1, 4)
        price = 150_000 + 100 * rng.randint(-5, 5)
        if rng.random() < 0.45:
            orders.append(StreamOrder(f"crash-{index:05d}", "seller", "M001", "S", lots, price, "GTC"))
        else:
            username, account = BUYERS[rng.randrange(2)]
            orders.append(StreamOrder(f"crash-{index:05d}", username, account, "B", lots, price,
                                      rng.choice(("GTC", "GTC", "IOC"))))
    return orders


def _free_receipt(session, account_id: int, lots: int) -> list[str]:
    number = session.scalar(select(Receipt.number).where(
        Receipt.owner_account_id == account_id, Receipt.status.in_(("registered", "transferred")),
        Receipt.lien_kind.is_(None), Receipt.lots >= lots).order_by(Receipt.number).limit(1))
    return [number] if number else []


def main(url: str, seed: int, count: int, snapshot_every: int) -> None:
    out = sys.stdout
    with unit_of_work(url) as session:
        snapshot = gateway.rebuilt_from_snapshot(session)
        sequence, state_hash = gateway.read_core(session, lambda core: (core.sequence, core.state_hash()))
        principals = {user.username: principal_of(user) for user in session.scalars(select(User))}
    out.write(json.dumps({"recovered": {"sequence": sequence, "state_hash": state_hash, "snapshot": snapshot}}) + "\n")
    out.flush()
    for index, order in enumerate(order_stream(seed, count), start=1):
        try:
            with unit_of_work(url) as session:
                account = get_account(session, order.account)
                receipts = _free_receipt(session, account.id, order.lots) if order.side == "S" else []
                placed = trading.place_order(
                    session, principals[order.username], account=order.account, product=PRODUCT, side=order.side,
                    lots=order.lots, price_fen=order.price_fen, key=order.key, tif=order.tif, receipts=receipts,
                    now=NOW)
                ack = gateway.read_core(session, lambda core: core.acks[(order.account, order.key)])
                line = {"key": order.key, "account": order.account, "order_id": placed.id,
                        "sequence": ack.sequence, "status": ack.status, "trade_ids": list(ack.trade_ids)}
        except DomainError as refused:
            line = {"key": order.key, "account": order.account, "refused": refused.code}
        # Printed only after the transaction committed: this is the acknowledgement the client would receive.
        out.write(json.dumps(line) + "\n")
        out.flush()
        if index % snapshot_every == 0:
            with unit_of_work(url) as session:
                gateway.snapshot(session)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
