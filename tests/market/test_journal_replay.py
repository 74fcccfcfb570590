"""Journal, snapshot and replay: same commands give the same state hash, a snapshot plus the journal tail gives it
too, torn tails are cut, corruption is refused, and idempotency survives a restart."""
from __future__ import annotations

import dataclasses

import pytest

from ingot.market.engine import commands as c
from ingot.market.engine.core import MatchingCore
from ingot.market.engine.journal import (
    HEADER,
    JournalCorrupt,
    JournaledEngine,
    JournalInUse,
    decode_command,
    encode_command,
    frame,
    recover,
)
from tests.market.helpers import PRODUCT, T0, product_definition, random_stream, receipt_id, setup_commands

SETUP = setup_commands()
STREAM = random_stream(11, 900)


def in_memory(commands) -> MatchingCore:
    core = MatchingCore()
    for command in commands:
        core.apply(command)
    return core


def test_same_commands_give_the_same_state_hash():
    first, second = in_memory(SETUP + STREAM), in_memory(SETUP + STREAM)
    assert first.trade_count > 50
    assert first.state_hash() == second.state_hash()
    probe = in_memory(SETUP)
    last_accepted = max(i for i, command in enumerate(STREAM) if probe.apply(command).fresh)
    different = in_memory(SETUP + STREAM[:last_accepted])
    assert different.state_hash() != first.state_hash()


def test_canonical_state_round_trips():
    core = in_memory(SETUP + STREAM)
    restored = MatchingCore.from_state(core.to_state())
    assert restored.state_hash() == core.state_hash()
    # The restored core must behave identically from here on, not merely look the same.
    tail = random_stream(12, 200, setup=SETUP + STREAM)
    for command in tail:
        assert core.apply(command).ack == restored.apply(command).ack
    assert restored.state_hash() == core.state_hash()


@pytest.mark.parametrize("command", [
    product_definition(buyer_fee=c.FeeSchedule(5, 7)),
    c.AdmitMember("k", 1, "M7"),
    c.DepositCash("k", 1, "M7", 10),
    c.WithdrawCash("k", 1, "M7", 10),
    c.RegisterReceipt("k", 1, "WR", PRODUCT, "M7", 100, 2),
    c.DeregisterReceipt("k", 1, "WR"),
    c.SetMemberSuspended("k", 1, "M7", True),
    c.SetProductSuspended("k", 1, PRODUCT, False),
    c.SetSettlementPrice("k", 1, PRODUCT, 500),
    c.SessionControl("k", 1, PRODUCT, c.UNCROSS),
    c.NewOrder("键", 1, "M7", PRODUCT, c.SELL, 3, 500, c.MARKET, c.FOK, ("WR-1", "WR-2")),
    c.CancelOrder("k", 1, "M7", 4),
    c.AmendOrder("k", 1, "M7", 4, 2, 600),
])
def test_every_command_survives_the_record_codec(command):
    sequence, decoded = decode_command(encode_command(42, command))
    assert sequence == 42 and decoded == command and type(decoded) is type(command)


def run_journaled(directory, commands, *, batch_size=16, snapshot_at=None):
    engine = JournaledEngine(directory, batch_size=batch_size)
    for index, command in enumerate(commands):
        engine.submit(command)
        if snapshot_at is not None and index == snapshot_at:
            engine.snapshot()
    engine.close()
    return engine


def test_journal_replays_to_the_same_state(tmp_path):
    engine = run_journaled(tmp_path, SETUP + STREAM, batch_size=7)
    expected = in_memory(SETUP + STREAM).state_hash()
    assert engine.core.state_hash() == expected
    recovery = recover(tmp_path)
    assert recovery.snapshot_sequence == 0 and recovery.replayed == engine.core.sequence
    assert recovery.core.state_hash() == expected


def test_snapshot_plus_tail_replays_to_the_same_state(tmp_path):
    engine = run_journaled(tmp_path, SETUP + STREAM, snapshot_at=len(SETUP) + 500)
    recovery = recover(tmp_path)
    assert 0 < recovery.snapshot_sequence < engine.core.sequence
    assert recovery.replayed == engine.core.sequence - recovery.snapshot_sequence
    assert recovery.core.state_hash() == engine.core.state_hash() == in_memory(SETUP + STREAM).state_hash()
    assert len(list(tmp_path.glob("journal-*.log"))) == 2


def test_restarted_engine_continues_where_it_stopped(tmp_path):
    half = len(STREAM) // 2
    run_journaled(tmp_path, SETUP + STREAM[:half])
    run_journaled(tmp_path, STREAM[half:])
    assert recover(tmp_path).core.state_hash() == in_memory(SETUP + STREAM).state_hash()


def test_idempotency_survives_replay(tmp_path):
    engine = run_journaled(tmp_path, SETUP + STREAM)
    restarted = JournaledEngine(tmp_path)
    sequence = restarted.core.sequence
    for command in STREAM[:200]:
        original = engine.core.acks.get((command.member_id, command.key))
        outcome = restarted.execute(command)
        if original is not None:
            assert outcome.ack == original and not outcome.fresh
    assert restarted.core.sequence == sequence
    assert restarted.core.state_hash() == engine.core.state_hash()
    restarted.close()


def test_torn_tail_is_cut_and_nothing_acknowledged_is_lost(tmp_path):
    engine = run_journaled(tmp_path, SETUP + STREAM)
    [segment] = tmp_path.glob("journal-*.log")
    whole = segment.stat().st_size
    record = frame(encode_command(engine.core.sequence + 1, c.AdmitMember("late", T0, "M8")))
    with open(segment, "ab") as handle:
        handle.write(record[: len(record) - 3])
    recovery = recover(tmp_path)
    assert recovery.truncated_bytes == len(record) - 3
    assert segment.stat().st_size == whole
    assert recovery.core.state_hash() == engine.core.state_hash()


def test_bad_crc_at_the_tail_is_cut(tmp_path):
    engine = run_journaled(tmp_path, SETUP + STREAM[:50])
    [segment] = tmp_path.glob("journal-*.log")
    record = bytearray(frame(encode_command(engine.core.sequence + 1, c.AdmitMember("late", T0, "M8"))))
    record[-1] ^= 0xFF
    with open(segment, "ab") as handle:
        handle.write(bytes(record))
    assert recover(tmp_path).core.state_hash() == engine.core.state_hash()


def test_corruption_before_the_tail_is_refused(tmp_path):
    run_journaled(tmp_path, SETUP + STREAM, snapshot_at=len(SETUP) + 100)
    first_segment = sorted(tmp_path.glob("journal-*.log"))[0]
    data = bytearray(first_segment.read_bytes())
    data[HEADER.size + 5] ^= 0x01
    first_segment.write_bytes(bytes(data))
    for snapshot in tmp_path.glob("snapshot-*.json"):
        snapshot.unlink()  # force a full replay through the damaged segment
    with pytest.raises(JournalCorrupt):
        recover(tmp_path)


def test_tampered_snapshot_is_refused(tmp_path):
    run_journaled(tmp_path, SETUP + STREAM[:100], snapshot_at=len(SETUP) + 50)
    [snapshot] = tmp_path.glob("snapshot-*.json")
    snapshot.write_bytes(snapshot.read_bytes().replace(b'"centre_fees_fen":', b'"centre_fees_fen":1', 1))
    with pytest.raises(JournalCorrupt):
        recover(tmp_path)


def test_acknowledgements_wait_for_the_group_commit(tmp_path):
    engine = JournaledEngine(tmp_path, batch_size=5)
    released = []
    for command in SETUP[:4]:
        released += engine.submit(command)
    assert released == []
    duplicate = engine.submit(SETUP[0])
    refused = engine.submit(c.AdmitMember("bad", T0, ""))
    assert duplicate == [] and refused == []
    released = engine.submit(SETUP[4])
    assert [o.ack.key for o in released] == [cmd.key for cmd in SETUP[:4]] + [SETUP[0].key, "bad", SETUP[4].key]
    assert recover(tmp_path).core.sequence == 5
    # With nothing unwritten, a duplicate is answered at once.
    assert engine.submit(SETUP[1])[0].ack == released[1].ack
    engine.close()


def test_resubmitted_order_after_restart_is_not_a_second_order(tmp_path):
    engine = JournaledEngine(tmp_path, batch_size=3)
    for command in SETUP:
        engine.submit(command)
    order = c.NewOrder("once", T0 + 5, "M1", PRODUCT, c.SELL, 2, SETUP[1].price_fen,
                       receipt_ids=(receipt_id("M1", 0),))
    first = engine.execute(order)
    engine.close()
    again = JournaledEngine(tmp_path).execute(dataclasses.replace(order))
    assert again.ack == first.ack and not again.fresh
    assert [o.order_id for o in recover(tmp_path).core.orders.values()] == [first.ack.order_id]


def test_a_journal_directory_has_one_writer_at_a_time(tmp_path):
    first = JournaledEngine(tmp_path)
    with pytest.raises(JournalInUse):
        JournaledEngine(tmp_path)
    first.close()
    JournaledEngine(tmp_path).close()
