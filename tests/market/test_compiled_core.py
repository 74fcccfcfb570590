"""The compiled matching core (src/ingot/market/engine/_corefast.c) against the pure-Python reference.

Both are driven with the same random command streams -- valid and invalid orders of every type and time in force,
cancels, amends, duplicates, deposits and withdrawals, suspensions, session changes with the opening auction,
snapshot round trips -- and must give identical acknowledgements (of the same class), identical events in the same
order, and the same state hash. The C code changes state only for commands it accepts, so the streams are full of
refusals to prove that it hands those back untouched."""
from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingot.market.engine import commands as c
from ingot.market.engine import core as core_module
from ingot.market.engine.core import Ack, InvariantBroken, Outcome, ReferenceCore

if os.environ.get("INGOT_PURE_PYTHON") == "1":
    pytest.skip("INGOT_PURE_PYTHON=1 switches the compiled core off", allow_module_level=True)

# Not a skip: an installed checkout always has the extension (setup.py), and its absence must be noticed.
assert core_module.COMPILED, "the compiled core is not built: run `make test` (or `pip install -e .`)"
CompiledCore = core_module.CompiledCore

T0 = 1_790_000_000_000_000
MEMBERS = ("M1", "M2", "M3")
PRODUCTS = {
    # product: (tick, units per lot, max lots, band ppm, buyer fee, seller fee, settlement price)
    "CU": (10, 5, 40, 100_000, (50, 100), (40, 120), 70_000),
    # Amounts far past 64 bits: the C code must do Python's integer arithmetic, not machine arithmetic.
    "BIG": (10**6, 10**9, 10**4, 300_000, (7, 999_999), (3, 500_000), 10**14),
    # A seller's fee larger than the notional, so that the cap at the notional binds.
    "LOW": (1, 1, 40, 500_000, (0, 0), (150, 999_999), 100),
}


def setup() -> list:
    commands: list = []
    for pid, (tick, units, max_lots, band, buyer, seller, settlement) in PRODUCTS.items():
        commands.append(c.DefineProduct(f"def-{pid}", T0, pid, tick, units, max_lots, band, c.FeeSchedule(*buyer),
                                        c.FeeSchedule(*seller)))
        commands.append(c.SetSettlementPrice(f"ref-{pid}", T0, pid, settlement))
        commands.append(c.SessionControl(f"cont-{pid}", T0, pid, c.CONTINUOUS))
    for member in MEMBERS:
        commands.append(c.AdmitMember(f"admit-{member}", T0, member))
        commands.append(c.DepositCash(f"cash-{member}", T0, member, 10**32))  # BIG's notionals are ~10**24
        for pid in PRODUCTS:
            for number in range(6):
                lots = 1 + number * 3
                commands.append(c.RegisterReceipt(f"reg-{member}-{pid}-{number}", T0, f"{member}-{pid}-{number}",
                                                  pid, member, lots * 1_000 + 7 * number, lots))
    return commands


def maybe(rng, valid, invalid: list, odds: float = 0.06):
    """Usually ``valid``, now and then one of the invalid values: an order has about ten fields and should still be
    accepted more often than not. (Python's random under a Hypothesis-drawn seed: Hypothesis's own strategies
    lean towards their simplest branch and would refuse nearly every order.)"""
    return rng.choice(invalid) if rng.random() < odds else valid


def receipts_for(rng, pair: "Pair", pid: str, member: str):
    # Mostly receipts the member holds now, unencumbered or not (children of splits included); sometimes others'.
    held = [rid for rid, receipt in pair.reference.receipts.items()
            if receipt.owner_id == member and receipt.product_id == pid and receipt.status == "live"]
    if not held:
        return maybe(rng, (), [(f"{member}-{pid}-0",)], 0.5)
    listed = rng.sample(held, min(len(held), rng.randint(1, 3)))
    if rng.random() < 0.5:
        listed = tuple(listed)
    odd = [(f"{MEMBERS[0]}-{pid}-0",), ("nope",), (held[0], held[0]), None, held[0], (held[0], 7), ["M1-X-1"]]
    return maybe(rng, listed, odd, 0.1)


def new_order(rng, pair: "Pair", key: str):
    pid = maybe(rng, rng.choice(["CU", "CU", "BIG", "LOW"]), ["XX", 1, None])
    real = pid if pid in PRODUCTS else "CU"
    tick, *_, settlement = PRODUCTS[real]
    member = maybe(rng, rng.choice(MEMBERS), ["", "M9", 3, ["M1"]])
    side = maybe(rng, rng.choice([c.BUY, c.SELL]), ["X", None, "b"])
    order_type = maybe(rng, rng.choice([c.LIMIT, c.LIMIT, c.LIMIT, c.MARKET]), ["stop", None])
    tifs = [c.IOC, c.IOC, c.FOK] if order_type == c.MARKET else [c.DAY, c.GTC, c.GTC, c.IOC, c.FOK]
    tif = maybe(rng, rng.choice(tifs), ["GTD", "ioc", c.DAY])
    lots = maybe(rng, rng.randint(1, 25), [0, -1, 10**5, True, 2.0, None])
    lean = 4 if side == c.BUY else -4  # buyers bid up and sellers offer down, so that many orders trade
    price = maybe(rng, settlement + (rng.randint(-12, 12) + lean) * tick,
                  [settlement * 2, settlement // 2 - tick, 0, -tick, settlement + 1, True, 1.5, "70000", None])
    if side == c.SELL:
        receipts = receipts_for(rng, pair, real, member if member in MEMBERS else "M1")
    else:
        receipts = maybe(rng, rng.choice([(), []]), [("M1-CU-0",), ["x"]])
    at_us = maybe(rng, T0 + rng.randint(0, 10**6), [-1, 1.0, None])
    return c.NewOrder(key, at_us, member, pid, side, lots, price, order_type, tif, receipts)


def commands(rng, pair: "Pair", count: int, orders_only: bool = False):
    """``count`` commands, each built against the state the pair has reached (so cancels and amends name live
    orders), refusals and duplicates mixed in."""
    for index in range(count):
        # About one key in six repeats an earlier one: a duplicate must answer the first acknowledgement.
        key = maybe(rng, f"k{rng.randrange(index + 1) if rng.random() < 0.15 else index}",
                    ["", "x" * 129, "x" * 128, 7, None])
        at_us = T0 + index
        roll = 0.0 if orders_only else rng.random()
        if roll < 0.62:
            yield new_order(rng, pair, key)
        elif roll < 0.75 and pair.order_ids:
            order_id, member = pair.order_ids[-1 - rng.randrange(min(len(pair.order_ids), 10))]
            order_id = maybe(rng, order_id, [10**9, -1, "3", None, True], 0.1)
            member = maybe(rng, member, ["M1", "M2", "M9", 3], 0.15)
            yield c.CancelOrder(key, maybe(rng, at_us, [-1, 2.5]), member, order_id)
        elif roll < 0.82 and pair.order_ids:
            order_id, member = pair.order_ids[-1 - rng.randrange(min(len(pair.order_ids), 10))]
            order = pair.reference.orders.get(order_id)
            product = pair.reference.products[order.product_id if order else "CU"]
            price = (order.price if order else product.settlement_price) + rng.choice([0, 0, -1, 1, 2]) * product.tick_fen
            lots = maybe(rng, rng.randint(1, 25), [0, None])
            yield c.AmendOrder(key, at_us, member, order_id, lots, price)
        elif roll < 0.84:
            # Most session changes lead back to continuous trading, via the opening call now and then.
            pid = rng.choice(list(PRODUCTS))
            action = rng.choice([c.CONTINUOUS] * 4 + [c.OPEN_AUCTION, c.UNCROSS, c.UNCROSS, c.BREAK, c.CLOSE, "bogus"])
            yield c.SessionControl(f"op-{index}", at_us, pid, action)
        elif roll < 0.88:
            yield c.SetMemberSuspended(f"op-{index}", at_us, rng.choice(MEMBERS), rng.random() < 0.2)
        elif roll < 0.90:
            yield c.SetProductSuspended(f"op-{index}", at_us, rng.choice(list(PRODUCTS)), rng.random() < 0.2)
        elif roll < 0.94:
            amount = rng.choice([10**6, 10**12, 10**25, 0])
            kind = c.DepositCash if rng.random() < 0.5 else c.WithdrawCash
            yield kind(f"op-{index}", at_us, rng.choice(MEMBERS), amount)
        elif roll < 0.96:
            yield c.DeregisterReceipt(f"op-{index}", at_us, f"{rng.choice(MEMBERS)}-CU-{rng.randrange(6)}")
        elif roll < 0.97:
            yield c.SetSettlementPrice(f"op-{index}", at_us, "CU", rng.choice([70_000, 71_000, 69_990]))
        elif roll < 0.99:
            yield c.CancelOrder(key, at_us, rng.choice(MEMBERS), rng.randrange(-1, index + 40))
        else:
            yield "snapshot"


def invariant_verdict(core) -> str | None:
    try:
        core.check_invariants()
    except InvariantBroken as broken:
        return str(broken)
    return None


class Pair:
    """The two cores side by side, fed the same commands."""

    def __init__(self):
        self.reference = ReferenceCore()
        self.compiled = CompiledCore()
        self.order_ids: list[tuple[int, str]] = []  # (order id, member) of orders that were accepted
        self.taken_by_c = 0
        for command in setup():
            assert self.apply(command).ack.accepted

    def apply(self, command) -> Outcome:
        expected = self.reference.apply(command)
        # CompiledCore.apply is fast_apply with the reference behind it; calling the two apart counts what C took.
        got = core_module._compiled.fast_apply(self.compiled, command)
        if got is None:
            got = ReferenceCore.apply(self.compiled, command)
        else:
            self.taken_by_c += 1
        assert type(got) is Outcome and type(got.ack) is Ack
        assert got.ack == expected.ack, command
        assert got.fresh is expected.fresh, command
        assert [type(event) for event in got.events] == [type(event) for event in expected.events], command
        assert got.events == expected.events, command
        if expected.ack.order_id and isinstance(command, c.NewOrder):
            self.order_ids.append((expected.ack.order_id, command.member_id))
        return expected

    def run(self, rng, count: int, orders_only: bool = False, check_every: int = 0) -> None:
        for index, command in enumerate(commands(rng, self, count, orders_only)):
            if command == "snapshot":
                # Both continue from a restored snapshot: the C code must work on state from_state rebuilt.
                self.check()
                self.reference = ReferenceCore.from_state(self.reference.to_state())
                self.compiled = CompiledCore.from_state(self.compiled.to_state())
                assert type(self.compiled) is CompiledCore
            else:
                self.apply(command)
            if check_every and index % check_every == check_every - 1:
                self.check()

    def check(self) -> None:
        assert self.compiled.state_hash() == self.reference.state_hash()
        # Both hold every invariant (a CLOSE straight from the call auction uncrosses first, so nothing rests crossed).
        assert invariant_verdict(self.reference) is None
        assert invariant_verdict(self.compiled) is None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=1, max_value=300))
def test_random_streams_agree(seed, count):
    pair = Pair()
    pair.run(random.Random(seed), count)
    pair.check()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**32))
def test_dense_order_streams_agree(seed):
    # Orders only: long queues, sweeps through many levels, receipt splits chained over fills.
    pair = Pair()
    pair.run(random.Random(seed), 600, orders_only=True, check_every=100)
    pair.check()
    assert pair.taken_by_c >= 100  # most accepted orders are the C path's; refusals and FOK are the reference's


def test_seeded_long_stream_agrees():
    """The bench's own stream (orders, markets and cancels from 200 members), 20,000 orders: outcome by outcome
    and the final hash."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2] / "bench"))
    try:
        from matching import Stream
    finally:
        sys.path.pop(0)
    stream = Stream(20_000, 11)
    reference, compiled = ReferenceCore(), CompiledCore()
    for command in stream.setup:
        reference.apply(command)
        compiled.apply(command)
    # fast_apply is the C path alone (None where it would hand over to the reference): this stream is nothing but
    # GTC limits, IOC markets and cancels, so C must take every command -- else the comparison proves nothing.
    fast_apply = core_module._compiled.fast_apply
    for command in stream.commands:
        expected, got = reference.apply(command), fast_apply(compiled, command)
        assert got is not None, command
        assert (got.ack, got.events, got.fresh) == (expected.ack, expected.events, expected.fresh), command
    assert compiled.trade_count == reference.trade_count > 5_000
    assert compiled.state_hash() == reference.state_hash()
    compiled.check_invariants()


def test_the_c_path_takes_orders_and_cancels_and_declines_the_rest():
    pair = Pair()
    fast_apply = core_module._compiled.fast_apply
    rest = fast_apply(pair.compiled, c.NewOrder("a", T0, "M1", "CU", c.BUY, 3, 70_000, tif=c.GTC))
    sell = fast_apply(pair.compiled, c.NewOrder("b", T0, "M2", "CU", c.SELL, 2, 70_000, receipt_ids=("M2-CU-1",)))
    cancel = fast_apply(pair.compiled, c.CancelOrder("c", T0, "M1", rest.ack.order_id))
    assert rest.ack.status == "resting" and sell.ack.trade_ids == (1,) and cancel.ack.status == "cancelled"
    # FOK, amendments, operator commands and refusals other than an unknown order: the reference's, untouched
    before = pair.compiled.state_hash()
    for command in (c.NewOrder("d", T0, "M1", "CU", c.BUY, 3, 70_000, tif=c.FOK),
                    c.NewOrder("e", T0, "M1", "CU", c.BUY, 3, 70_005),
                    c.AmendOrder("f", T0, "M1", rest.ack.order_id, 1, 70_000),
                    c.DepositCash("g", T0, "M1", 5)):
        assert fast_apply(pair.compiled, command) is None, command
    assert pair.compiled.state_hash() == before


def test_duplicate_answers_the_same_ack_object():
    pair = Pair()
    command = c.NewOrder("dup", T0, "M1", "CU", c.BUY, 3, 70_000)
    first = pair.compiled.apply(command)
    again = pair.compiled.apply(command)
    assert first.fresh and not again.fresh and again.events == []
    assert again.ack is first.ack


def test_refusal_leaves_compiled_state_untouched():
    pair = Pair()
    before = pair.compiled.state_hash()
    placed = pair.compiled.apply(c.NewOrder("big", T0, "M1", "CU", c.BUY, 40, 77_000))
    assert placed.ack.accepted
    pair.compiled.apply(c.CancelOrder("undo", T0, "M1", placed.ack.order_id))
    after_cancel = pair.compiled.state_hash()
    assert after_cancel != before  # sequence and acks moved
    for command in (c.NewOrder("r1", T0, "M1", "CU", c.SELL, 5, 70_000, receipt_ids=("M2-CU-1",)),
                    c.NewOrder("r2", T0, "M1", "CU", c.BUY, 5, 70_001),
                    c.CancelOrder("r3", T0, "M1", 10**9),
                    c.CancelOrder("r4", T0, "M2", placed.ack.order_id)):
        outcome = pair.compiled.apply(command)
        assert not outcome.ack.accepted and not outcome.fresh
    assert pair.compiled.state_hash() == after_cancel


def test_pure_python_switch_and_fallback():
    """INGOT_PURE_PYTHON=1 gives the reference itself, and it computes the same state as the compiled core."""
    program = (
        "import sys; sys.path.insert(0, 'bench')\n"
        "from matching import Stream\n"
        "from ingot.market.engine import core\n"
        "stream = Stream(3000, 5)\n"
        "engine = core.MatchingCore()\n"
        "[engine.apply(command) for command in stream.setup + stream.commands]\n"
        "print(core.COMPILED, core.MatchingCore is core.ReferenceCore, engine.state_hash())\n"
    )
    root = str(__import__("pathlib").Path(__file__).resolve().parents[2])
    answers = {}
    for flag in ("0", "1"):
        env = dict(os.environ, INGOT_PURE_PYTHON=flag)
        answers[flag] = subprocess.run([sys.executable, "-c", program], cwd=root, env=env, capture_output=True,
                                       text=True, check=True).stdout.split()
    assert answers["0"][:2] == ["True", "False"]
    assert answers["1"][:2] == ["False", "True"]
    assert answers["0"][2] == answers["1"][2]
