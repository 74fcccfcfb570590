"""Kill the engine with SIGKILL in the middle of a stream, restart from the journal, and find every acknowledged
order and trade exactly once, with cash and metal balanced and the state equal to a clean replay."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from ingot.market.engine.core import Ack, MatchingCore
from ingot.market.engine.events import OrderAccepted, SettlementInstruction, TradeExecuted
from ingot.market.engine.journal import JournaledEngine, recover
from tests.market.helpers import random_stream, setup_commands

REPO = Path(__file__).resolve().parents[2]
SEED = 2026
STREAM_LENGTH = 40_000
KILL_AFTER_ACKS = 2_500


def run_and_kill(directory: Path, batch_size: int) -> list[dict]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.market.crash_worker", str(directory), str(SEED), str(STREAM_LENGTH),
         str(batch_size)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])},
    )
    acks = []
    try:
        for line in process.stdout:
            acks.append(json.loads(line))
            if len(acks) >= KILL_AFTER_ACKS:
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
    assert len(acks) >= KILL_AFTER_ACKS, stderr
    assert still_running, "the worker finished before it could be killed mid-stream"
    assert process.returncode == -signal.SIGKILL
    return acks


@pytest.mark.parametrize("batch_size", [1, 32])
def test_sigkill_mid_stream_loses_nothing_acknowledged(tmp_path, batch_size):
    acks = run_and_kill(tmp_path, batch_size)
    recovery = recover(tmp_path)
    core = recovery.core
    core.check_invariants()

    # Every accepted acknowledgement is in the recovered state, exactly as it was given.
    accepted = [a for a in acks if a["sequence"]]
    assert accepted and len({a["sequence"] for a in accepted}) == len(accepted)
    for a in accepted:
        expected = Ack(a["key"], a["member"], a["sequence"], a["status"], a["order_id"], a["filled"],
                       tuple(a["trade_ids"]))
        assert core.acks[(a["member"], a["key"])] == expected
    assert core.sequence >= accepted[-1]["sequence"]

    # Every acknowledged order and trade appears exactly once in what the journal replays.
    accepted_orders = Counter(e.order_id for e in recovery.events if isinstance(e, OrderAccepted))
    trades = Counter(e.trade_id for e in recovery.events if isinstance(e, TradeExecuted))
    settlements = Counter(e.trade_id for e in recovery.events if isinstance(e, SettlementInstruction))
    assert max(accepted_orders.values()) == 1 and max(trades.values()) == 1 and settlements == trades
    acked_trades = [t for a in accepted for t in a["trade_ids"]]
    assert acked_trades and all(trades[t] == 1 for t in acked_trades)
    for a in accepted:
        if a["order_id"] and a["status"] != "amended":
            assert accepted_orders[a["order_id"]] == 1

    # Accounts balance: every fen deposited is somewhere, buyers paid exactly what sellers and the centre got.
    deposits = sum(cmd.amount_fen for cmd in setup_commands() if hasattr(cmd, "amount_fen"))
    held = sum(m.available_fen + m.locked_fen for m in core.members.values())
    assert held + core.centre_fees_fen == deposits
    paid = sum(e.buyer_pays_fen for e in recovery.events if isinstance(e, SettlementInstruction))
    got = sum(e.seller_receives_fen + e.centre_receives_fen for e in recovery.events
              if isinstance(e, SettlementInstruction))
    assert paid == got

    # The recovered state is exactly the state of a clean run over the same prefix of commands.
    clean = MatchingCore()
    commands = setup_commands() + random_stream(SEED, len(acks) + 2 * batch_size + 10)
    for command in commands:
        if clean.sequence == core.sequence:
            break
        clean.apply(command)
    assert clean.state_hash() == core.state_hash()

    # Resubmitting everything that was acknowledged creates nothing new.
    engine = JournaledEngine(tmp_path, batch_size=batch_size)
    sequence = engine.core.sequence
    for command, a in zip(commands, acks):
        if a["sequence"]:
            outcome = engine.execute(command)
            assert outcome.ack.sequence == a["sequence"] and not outcome.fresh
    assert engine.core.sequence == sequence
    engine.close()
