"""The native core (native.py, _nativecore.c) against the pure-Python reference.

The same random streams as the compiled core's test (test_compiled_core.py: orders of every type and time in
force, valid and not, cancels, amends, duplicates, operator commands, session changes with the opening auction,
snapshot round trips) are fed to ReferenceCore one command at a time and to NativeCore in packed batches: runs of
consecutive orders and cancels go through ``NativeCore.run`` as one batch, everything else through ``apply``. Every
outcome (acknowledgement, events, freshness) must equal the reference's, command by command, and the state hashes
must agree. The tests also count what the native path itself ran, so that they cannot pass by handing everything
to the reference."""
from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingot.market.engine import commands as c
from ingot.market.engine import native
from ingot.market.engine.core import Ack, InvariantBroken, Outcome, ReferenceCore
from ingot.market.engine.journal import JournaledEngine, recover
from tests.market import test_compiled_core as streams

if os.environ.get("INGOT_PURE_PYTHON") == "1":
    pytest.skip("INGOT_PURE_PYTHON=1 switches the native core off", allow_module_level=True)
if not native.AVAILABLE:
    # Not a skip: an installed checkout always has the extension (setup.py), and its absence must be noticed.
    raise AssertionError("the native core is not built: run `make test` (or `pip install -e .`)")

NativeCore = native.NativeCore
T0 = streams.T0


def same(got: Outcome, expected: Outcome, command) -> None:
    assert type(got) is Outcome and type(got.ack) is Ack, command
    assert got.ack == expected.ack, (command, got.ack, expected.ack)
    assert got.fresh is expected.fresh, command
    assert [type(event) for event in got.events] == [type(event) for event in expected.events], command
    assert got.events == expected.events, command


class Pair:
    """ReferenceCore one command at a time; NativeCore in batches of the orders and cancels between other
    commands (cut at a random length)."""

    def __init__(self, rng: random.Random, max_batch: int = 12):
        self.rng = rng
        self.max_batch = max_batch
        self.reference = ReferenceCore()
        self.native = NativeCore()
        self.order_ids: list[tuple[int, str]] = []  # what the stream generator reads
        self.pending: list[tuple[object, Outcome]] = []
        self.batched = 0  # commands the native batch path ran itself
        for command in streams.setup():
            assert self.apply(command).ack.accepted

    def apply(self, command) -> Outcome:
        expected = self.reference.apply(command)
        if expected.ack.order_id and isinstance(command, c.NewOrder):
            self.order_ids.append((expected.ack.order_id, command.member_id))
        if type(command) in (c.NewOrder, c.CancelOrder):
            try:
                native.pack([command])
            except native.Unpackable:
                pass
            else:
                self.pending.append((command, expected))
                if len(self.pending) >= self.rng.randint(1, self.max_batch):
                    self.flush()
                return expected
        self.flush()
        same(self.native.apply(command), expected, command)
        return expected

    def flush(self) -> None:
        if not self.pending:
            return
        commands = [command for command, _ in self.pending]
        declined = self.native.declined
        batch = self.native.run(native.pack(commands))
        if self.native.declined == declined:
            self.batched += len(commands)
        assert len(batch) == len(commands)
        everything = batch.outcomes()  # built in C, in one call
        for index, (command, expected) in enumerate(self.pending):
            same(batch.outcome(index), expected, command)
            same(everything[index], expected, command)
            same(batch.decode_python(index) if index < batch._done else batch.outcome(index), expected, command)
        assert [index for index, _ in batch.fresh_sequences()] == [
            index for index, (_, expected) in enumerate(self.pending) if expected.fresh]
        self.pending = []

    def run(self, count: int, orders_only: bool = False, check_every: int = 0) -> None:
        for index, command in enumerate(streams.commands(self.rng, self, count, orders_only)):
            if command == "snapshot":
                self.check()
                self.reference = ReferenceCore.from_state(self.reference.to_state())
                self.native = NativeCore.from_state(self.native.to_state())
            else:
                self.apply(command)
            if check_every and index % check_every == check_every - 1:
                self.check()

    def check(self) -> None:
        self.flush()
        assert self.native.state_hash() == self.reference.state_hash()
        assert self.native.to_state() == self.reference.to_state()
        for core in (self.reference, self.native):
            try:
                core.check_invariants()
            except InvariantBroken as broken:  # pragma: no cover - the message is the diagnosis
                pytest.fail(str(broken))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=1, max_value=300))
def test_random_streams_agree(seed, count):
    pair = Pair(random.Random(seed))
    pair.run(count)
    pair.check()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**32))
def test_dense_order_streams_agree(seed):
    # Orders only: long queues, sweeps through many levels, receipt splits chained over fills, in long batches.
    pair = Pair(random.Random(seed), max_batch=60)
    pair.run(600, orders_only=True, check_every=150)
    pair.check()
    assert pair.batched >= 300  # the native path ran most of them, in batches


def bench_stream(count: int, seed: int):
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bench"))
    try:
        from matching import Stream
    finally:
        sys.path.pop(0)
    return Stream(count, seed)


def test_bench_stream_in_one_batch_agrees():
    """The bench's own stream, 20,000 orders in one batch (and again in batches of 700): outcome by outcome and the
    final hash; the native path must take all of it."""
    stream = bench_stream(20_000, 11)
    reference = ReferenceCore()
    whole, chunked = NativeCore(), NativeCore()
    for command in stream.setup:
        reference.apply(command)
        whole.apply(command)
        chunked.apply(command)
    expected = [reference.apply(command) for command in stream.commands]
    declined = whole.declined
    batch = whole.run(native.pack(stream.commands))
    assert whole.declined == declined and whole.native
    for index, command in enumerate(stream.commands):
        same(batch.outcome(index), expected[index], command)
    outcomes = []
    for start in range(0, len(stream.commands), 700):
        outcomes += chunked.run(native.pack(stream.commands[start:start + 700])).outcomes()
    assert chunked.declined == declined
    for got, want, command in zip(outcomes, expected, stream.commands):
        same(got, want, command)
    assert whole.trade_count == reference.trade_count > 5_000
    assert whole.state_hash() == chunked.state_hash() == reference.state_hash()
    whole.check_invariants()


def test_object_api_is_a_batch_of_one():
    pair = Pair(random.Random(1))
    core = pair.native
    rest = core.apply(c.NewOrder("a", T0, "M1", "CU", c.BUY, 3, 70_000, tif=c.GTC))
    sell = core.apply(c.NewOrder("b", T0, "M2", "CU", c.SELL, 2, 70_000, receipt_ids=("M2-CU-1",)))
    assert core.native and rest.ack.status == "resting" and sell.ack.trade_ids == (1,)
    again = core.apply(c.NewOrder("b", T0, "M2", "CU", c.SELL, 2, 70_000, receipt_ids=("M2-CU-1",)))
    assert again.ack == sell.ack and not again.fresh and again.events == []
    cancel = core.apply(c.CancelOrder("c", T0, "M1", rest.ack.order_id))
    assert cancel.ack.status == "cancelled" and cancel.ack.filled_lots == 2
    # a refusal changes nothing, and is worded as the reference words it
    before = core.state_hash()
    refused = core.apply(c.CancelOrder("d", T0, "M1", rest.ack.order_id))
    assert refused.ack.rejection.code == "unknown_order" and not refused.fresh
    assert core.state_hash() == before


@pytest.mark.parametrize("command", [
    c.NewOrder("x", T0, "M1", "CU", c.BUY, True, 70_000),           # a bool is not a quantity
    c.NewOrder("x", T0, "M1", "CU", "b", 1, 70_000),                # unknown side
    c.NewOrder("x", T0, "M1", "CU", c.BUY, 2**70, 70_000),          # beyond 64 bits
    c.NewOrder("x", T0, 3, "CU", c.BUY, 1, 70_000),                 # a member id that is no str
    c.CancelOrder("x", T0, "M1", "3"),
    c.DepositCash("x", T0, "M1", 5),
])
def test_what_pack_cannot_carry_goes_to_the_reference(command):
    with pytest.raises(native.Unpackable):
        native.pack([command])


def test_state_beyond_the_native_bounds_stays_with_the_reference():
    core, reference = NativeCore(), ReferenceCore()
    setup = [
        c.DefineProduct("def", T0, "HUGE", 1, 2**40, 2**40, 500_000),  # a fill's notional could pass 2^92
        c.SetSettlementPrice("ref", T0, "HUGE", 2**30),
        c.SessionControl("open", T0, "HUGE", c.CONTINUOUS),
        c.AdmitMember("a", T0, "M1"),
        c.DepositCash("d", T0, "M1", 10**40),
    ]
    for command in setup:
        same(core.apply(command), reference.apply(command), command)
    order = c.NewOrder("o", T0, "M1", "HUGE", c.BUY, 2**39, 2**30)
    declined = core.declined
    batch = core.run(native.pack([order]))
    assert core.declined == declined + 1 and not core.native
    same(batch.outcome(0), reference.apply(order), order)
    assert core.state_hash() == reference.state_hash()


def test_journal_replays_the_batch_path(tmp_path):
    """Batches through the journal (one group commit each), then recovery by the reference and by the native core
    from the journal alone, and from a snapshot plus the tail: the same state hash as the reference in memory."""
    stream = bench_stream(4_000, 5)
    reference = ReferenceCore()
    for command in stream.setup + stream.commands:
        reference.apply(command)
    engine = JournaledEngine(tmp_path, batch_size=64, core_class=NativeCore)
    for command in stream.setup:
        engine.submit(command)
    fresh = 0
    for start in range(0, len(stream.commands), 512):
        if start == 2048:
            engine.snapshot()
        released, batch = engine.submit_batch(native.pack(stream.commands[start:start + 512]))
        fresh += batch.fresh_count()
    engine.close()
    assert fresh > 3_000 and engine.core.state_hash() == reference.state_hash()
    for core_class in (ReferenceCore, NativeCore):
        recovery = recover(tmp_path, core_class=core_class)
        assert recovery.snapshot_sequence > 0
        assert recovery.core.state_hash() == reference.state_hash()
    for snapshot in tmp_path.glob("snapshot-*.json"):
        snapshot.unlink()
    full = recover(tmp_path, core_class=NativeCore)
    assert full.snapshot_sequence == 0 and full.replayed == reference.sequence
    assert full.core.state_hash() == reference.state_hash()
    # the replayed events are the reference's own, event for event
    replayed_reference = recover(tmp_path, core_class=ReferenceCore)
    assert full.events == replayed_reference.events


def test_split_children_are_found_by_id_in_the_same_batch_and_after():
    """A child receipt's id is reached through its parent (it is not hashed): sell it again in the same batch,
    in a later batch, and split it again."""
    pair = Pair(random.Random(3), max_batch=1000)
    buy = [c.NewOrder(f"b{i}", T0, "M1", "CU", c.BUY, 1, 70_000, tif=c.GTC) for i in range(4)]
    # M2 sells 1 of its 4-lot receipt: split into M2-CU-1.1 (to M1) and M2-CU-1.2 (3 lots, still M2's)
    sells = [c.NewOrder("s1", T0, "M2", "CU", c.SELL, 1, 70_000, receipt_ids=("M2-CU-1",)),
             c.NewOrder("s2", T0, "M2", "CU", c.SELL, 1, 70_000, receipt_ids=("M2-CU-1.2",)),
             c.NewOrder("s3", T0, "M1", "CU", c.SELL, 1, 70_000, receipt_ids=("M2-CU-1.1",)),
             c.NewOrder("s4", T0, "M2", "CU", c.SELL, 1, 70_000, receipt_ids=("M2-CU-1.2.2",)),
             c.NewOrder("s5", T0, "M2", "CU", c.SELL, 1, 70_000, receipt_ids=("M2-CU-1.02",))]
    for command in buy + sells:
        pair.apply(command)
    pair.flush()
    assert pair.reference.receipts["M2-CU-1.2.2"].owner_id == "M2"
    pair.check()
    later = c.NewOrder("s6", T0, "M2", "CU", c.SELL, 1, 69_990, receipt_ids=("M2-CU-1.2.2",))
    pair.apply(later)
    pair.check()
    assert pair.batched == len(buy) + len(sells) + 1


def test_a_registered_id_that_a_split_overwrites():
    """The reference's receipts dict lets a split's child overwrite a receipt registered under the same id; the
    native core must then hash children's ids to do the same."""
    pair = Pair(random.Random(4))
    pair.apply(c.RegisterReceipt("reg-odd", T0, "M2-CU-1.1", "CU", "M3", 5_000, 5))
    pair.apply(c.NewOrder("b", T0, "M1", "CU", c.BUY, 1, 70_000, tif=c.GTC))
    pair.apply(c.NewOrder("s", T0, "M2", "CU", c.SELL, 1, 70_000, receipt_ids=("M2-CU-1",)))
    pair.apply(c.NewOrder("again", T0, "M3", "CU", c.SELL, 1, 70_000, receipt_ids=("M2-CU-1.1",)))
    pair.apply(c.NewOrder("mine", T0, "M1", "CU", c.SELL, 1, 70_000, receipt_ids=("M2-CU-1.1",)))
    pair.flush()
    assert pair.native.state_hash() == pair.reference.state_hash()
    assert pair.reference.receipts["M2-CU-1.1"].owner_id == "M1"
    # (The overwritten receipt's grams are lost to the reference too -- its invariant check says so; the native
    # core reproduces the reference, quirks included.)
    with pytest.raises(InvariantBroken):
        pair.reference.check_invariants()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**32))
def test_c_packing_is_the_python_packing_byte_for_byte(seed):
    rng = random.Random(seed)
    pair = Pair(rng)
    stream = [command for command in streams.commands(rng, pair, 200) if type(command) in (c.NewOrder, c.CancelOrder)]
    stream.append(c.NewOrder("键\ud800", T0, "M1", "CU", c.SELL, 1, 70_000, receipt_ids=["M1-CU-1", "M1-CU-1"]))
    packable = []
    for command in stream:
        try:
            native._pack_python([command])
        except native.Unpackable:
            continue
        packable.append(command)
    assert len(packable) > len(stream) // 3
    # each command alone (packable or not), then runs of packable ones (strings met again are written once)
    chunks = [[command] for command in stream] + [packable[start:start + 7] for start in range(0, len(packable), 7)]
    for chunk in chunks:
        try:
            expected = native._pack_python(chunk)
        except native.Unpackable as refused:
            with pytest.raises(native.Unpackable) as raised:
                native.pack(chunk)
            assert raised.value.args == refused.args
            continue
        got = native.pack(chunk)
        assert (got.records, got.blob) == (expected.records, expected.blob)


def test_a_malformed_batch_changes_nothing():
    pair = Pair(random.Random(5))
    core = pair.native
    good = native.pack([c.NewOrder("g", T0, "M1", "CU", c.BUY, 1, 70_000, tif=c.GTC)] * 3)
    before = core.state_hash()
    broken = bytearray(good.records)
    broken[2 * native.RECORD + 16:2 * native.RECORD + 24] = (len(good.blob) + 5 << 24 | 3).to_bytes(8, "little")
    with pytest.raises(ValueError, match="malformed command record 2"):
        core.run(native.Packed(bytes(broken), good.blob, good.commands))
    assert core.state_hash() == before
    assert core.run(good).outcome(0).ack.status == "resting"
