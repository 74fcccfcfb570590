"""Issue #5 §8 on the path the application runs: the trading service through the gateway, journaled in the database.

A child process places a seeded stream of orders (each with its idempotency key, one transaction each) and prints
every acknowledgement after its commit; it is SIGKILLed mid-stream. Then, from the database alone: the core is
rebuilt (newest snapshot + the journal after it), every acknowledged order and trade is there exactly once, the
ledger and the core hold their invariants, and a fresh process resubmitting the whole stream under the same keys
gets the first answers back for what was acknowledged and creates nothing twice.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from ingot.core.db import dispose_engines, unit_of_work
from ingot.market import accounts, gateway, ledger
from ingot.market.engine import MatchingCore, NewOrder
from ingot.market.engine.journal import decode_command
from ingot.market.models import EngineCommand, EngineHead, EngineSnapshot, LedgerEntry, Order, Trade, TradingAccount
from tests.market_db.crash_worker import order_stream
from tests.market_db.helpers import build_market, open_continuous

REPO = Path(__file__).resolve().parents[2]
SEED = 5
STREAM_LENGTH = 400
SNAPSHOT_EVERY = 15
KILL_AFTER_ACKS = 45


def _worker(db_url: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.market_db.crash_worker", db_url, str(SEED), str(STREAM_LENGTH),
         str(SNAPSHOT_EVERY)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])},
    )


def _run_and_kill(db_url: str) -> tuple[dict, list[dict]]:
    process = _worker(db_url)
    lines = []
    try:
        for raw in process.stdout:
            lines.append(json.loads(raw))
            if len(lines) > KILL_AFTER_ACKS:
                break
        still_running = process.poll() is None
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()
        stderr = process.stderr.read()
        process.stderr.close()
    assert len(lines) > KILL_AFTER_ACKS, stderr
    assert still_running, "the worker finished before it could be killed mid-stream"
    assert process.returncode == -signal.SIGKILL
    return lines[0]["recovered"], lines[1:]


def _run_to_the_end(db_url: str) -> tuple[dict, list[dict]]:
    process = _worker(db_url)
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    lines = [json.loads(raw) for raw in stdout.splitlines()]
    return lines[0]["recovered"], lines[1:]


def _journaled_order_keys(session) -> Counter:
    keys = Counter()
    for payload in session.scalars(select(EngineCommand.payload).order_by(EngineCommand.sequence)):
        _, command = decode_command(payload)
        if isinstance(command, NewOrder):
            keys[(command.member_id, command.key)] += 1
    return keys


def _replayed_from_the_whole_journal(session) -> MatchingCore:
    core = MatchingCore()
    for payload in session.scalars(select(EngineCommand.payload).order_by(EngineCommand.sequence)):
        sequence, command = decode_command(payload)
        assert core.apply(command).ack.sequence == sequence
    return core


def _assert_books_hold(session, core) -> None:
    ledger.check_invariants(session)
    core.check_invariants()
    for account in session.scalars(select(TradingAccount)):
        position = accounts.cash_position(session, account)
        assert position["consistent"], position
    # One trade row and one settlement entry per trade the core made, and nothing the core did not make.
    trade_ids = set(session.scalars(select(Trade.id)))
    assert trade_ids == set(range(1, core.trade_count + 1))
    settlements = Counter(session.scalars(select(LedgerEntry.reference).where(LedgerEntry.kind == "settlement")))
    assert settlements == Counter(f"trade:{trade_id}" for trade_id in trade_ids)


def test_sigkill_mid_stream_through_the_gateway_loses_nothing_acknowledged(db_url):
    gateway.forget_cores()
    with unit_of_work(db_url) as session:
        market = build_market(session, cash_fen=10_000_000_000, seller_receipts=60)
        open_continuous(session, market)
        gateway.snapshot(session)
    gateway.forget_cores()
    dispose_engines()

    recovered, acks = _run_and_kill(db_url)
    assert recovered["snapshot"] > 0, "the worker's core was rebuilt from the setup snapshot"
    accepted = [a for a in acks if "order_id" in a]
    assert accepted and any(a["trade_ids"] for a in accepted)

    # A fresh core, from the database alone: the newest snapshot (one the worker took) plus the journal after it.
    gateway.forget_cores()
    with unit_of_work(db_url) as session:
        newest_snapshot = session.scalar(select(func.max(EngineSnapshot.sequence)))
        assert gateway.rebuilt_from_snapshot(session) == newest_snapshot > recovered["snapshot"]
        core = gateway.read_core(session, lambda held: held)
        head = session.get(EngineHead, gateway.HEAD_ID)
        assert core.sequence == head.sequence
        assert core.state_hash() == _replayed_from_the_whole_journal(session).state_hash()

        # Every acknowledged order is there exactly once, as acknowledged; so is every acknowledged trade.
        journaled = _journaled_order_keys(session)
        for ack in accepted:
            rows = session.scalars(select(Order).join(TradingAccount, TradingAccount.id == Order.account_id).where(
                TradingAccount.engine_id == ack["account"], Order.idempotency_key == ack["key"])).all()
            assert [row.id for row in rows] == [ack["order_id"]]
            assert journaled[(ack["account"], ack["key"])] == 1
            remembered = core.acks[(ack["account"], ack["key"])]
            assert (remembered.order_id, remembered.sequence, list(remembered.trade_ids)) == (
                ack["order_id"], ack["sequence"], ack["trade_ids"])
            for trade_id in ack["trade_ids"]:
                assert session.get(Trade, trade_id) is not None
        assert max(journaled.values()) == 1
        assert session.scalar(select(func.count(Order.id))) == sum(journaled.values())
        _assert_books_hold(session, core)
    gateway.forget_cores()
    dispose_engines()

    # A fresh process resubmits the whole stream under the same keys.
    recovered_again, answers = _run_to_the_end(db_url)
    assert recovered_again["snapshot"] == newest_snapshot
    by_key = {a["key"]: a for a in answers}
    assert len(answers) == STREAM_LENGTH == len(by_key)
    for ack in accepted:
        again = by_key[ack["key"]]
        assert (again["order_id"], again["sequence"], again["trade_ids"]) == (
            ack["order_id"], ack["sequence"], ack["trade_ids"])

    gateway.forget_cores()
    with unit_of_work(db_url) as session:
        core = gateway.read_core(session, lambda held: held)
        journaled = _journaled_order_keys(session)
        assert max(journaled.values()) == 1
        placed = [a for a in answers if "order_id" in a]
        assert session.scalar(select(func.count(Order.id))) == len(placed) == sum(journaled.values())
        assert len({a["order_id"] for a in placed}) == len(placed)
        assert {(a["account"], a["key"]) for a in placed} == set(journaled)
        _assert_books_hold(session, core)
        assert [o.key for o in order_stream(SEED, STREAM_LENGTH)] == [a["key"] for a in answers]
    gateway.forget_cores()
