"""Matching benchmark: one seeded stream of limit, market and cancel orders fed to Ingot's matching core -- the
compiled core (C extension ``_corefast``, what ``MatchingCore`` runs when it is built) and the pure-Python reference
(``ReferenceCore``) -- and, in the same run, to the PyPI order books ``limit-order-book``, ``pyorderbook`` and
``matching-engine``; then to both cores behind the journal with group commit and fsync.

    bench/out/venv/bin/python bench/matching.py [--orders 100000] [--repeats 3] [--seed 7] [--batch 64 1024]

The peers are never project dependencies: they live in a bench-only virtualenv under bench/out/ (git-ignored). The
core imports only the standard library (this script puts src/ on the path), so that venv needs nothing but the peers:

    python3.11 -m venv bench/out/venv && bench/out/venv/bin/pip install -r bench/peers.txt
    # matching-engine needs Python >= 3.12; to include it, a second venv on 3.12 runs the whole bench there:
    python3.12 -m venv bench/out/venv312 && bench/out/venv312/bin/pip install -r bench/peers.txt matching-engine==0.1.1

The compiled core is the one `pip install -e .` builds into src/ (setup.py); a venv that cannot import it reports
it as missing. Run with the project's .venv instead and the peers are reported as skipped.

The native core (``native.NativeCore``: the C extension ``_nativecore`` with its own C state, see
docs/market-engine.md) runs the stream through its batch entry point: packed batches of ``--native-batch``
commands per call (packed before timing; a second row times the packing too, a third builds every Outcome, Ack and
event object from the batch's records; p50/p99 are then per call, i.e. what each command of a batch waits), through its object API (``apply``, a batch of one), and behind the journal
(one packed batch per group commit). Before timing, every Ingot contender must end the stream in the same state hash.

For each contender it prints orders/s over the whole stream (a loop with no per-order timing) and p50/p99 latency
per order (a second pass timing each call). Inputs are built before timing for every contender alike. A peer that
will not install or run is reported with the reason and skipped. Ingot's core does more per order than the peers:
pre-trade cash and receipt checks, fees, self-trade prevention, receipt transfer and settlement events. Both Ingot
cores must end in the same state hash (checked after the run). The load average is printed before and after.
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
# --engine-path DIR puts a mypyc-compiled build of ingot.market.engine first (see docs/market-engine.md); it has to
# be on the path before the first import, hence read here rather than through argparse.
if "--engine-path" in sys.argv:
    sys.path.insert(0, sys.argv[sys.argv.index("--engine-path") + 1])

from ingot.market.engine import commands as c  # noqa: E402
from ingot.market.engine import core as core_module  # noqa: E402
from ingot.market.engine.core import MatchingCore, ReferenceCore  # noqa: E402
try:  # a --engine-path build may predate the native core
    from ingot.market.engine import native  # noqa: E402
except ImportError:  # pragma: no cover
    native = None
from ingot.market.engine.journal import JournaledEngine  # noqa: E402

REFERENCE = "ingot reference (mypyc)" if core_module.__file__.endswith(".so") else "ingot reference (Python)"
COMPILED = "ingot compiled core (C)"
CORES = [(COMPILED, MatchingCore)] if core_module.COMPILED else []
CORES.append((REFERENCE, ReferenceCore))
NATIVE = "ingot native core (C state)"
NATIVE_BUILT = native is not None and native.AVAILABLE

PRODUCT = "CU"
MID = 70_000  # fen per price unit
MEMBERS = [f"M{i:03d}" for i in range(200)]


class Stream:
    """Setup commands plus the order stream, in Ingot commands and in a neutral form for the peers:
    (kind, side, order_id, lots, price) with kind in limit / market / cancel."""

    def __init__(self, count: int, seed: int):
        rng = random.Random(seed)
        self.setup: list = [
            c.DefineProduct("def", 0, PRODUCT, 10, 5, 1_000, 200_000, c.FeeSchedule(50, 100), c.FeeSchedule(50, 100)),
            c.SetSettlementPrice("ref", 0, PRODUCT, MID),
            c.SessionControl("open", 0, PRODUCT, c.CONTINUOUS),
        ]
        for member in MEMBERS:
            self.setup += [c.AdmitMember(f"a-{member}", 0, member), c.DepositCash(f"d-{member}", 0, member, 10**14)]
        plan = []
        for index in range(count):
            roll = rng.random()
            member = rng.choice(MEMBERS)
            if roll < 0.2 and index:
                plan.append(("cancel", rng.randrange(index), member))
                continue
            side = c.BUY if rng.random() < 0.5 else c.SELL
            lots = rng.randint(1, 20)
            if roll < 0.3:
                price = MID + (80 if side == c.BUY else -80) * 10
                plan.append(("market", side, lots, price, member))
            else:
                price = MID + 10 * (rng.randint(-40, 40) + (-4 if side == c.BUY else 4))
                plan.append(("limit", side, lots, price, member))
        # Run the plan once through a shadow core to learn each order's id (its sequence number) and owner, so
        # cancels name real orders; each sell gets its own warehouse receipt registered up front.
        receipts = []
        for index, step in enumerate(plan):
            if step[0] != "cancel" and step[1] == c.SELL:
                rid = f"WR{index:07d}"
                receipts.append(c.RegisterReceipt(f"r-{rid}", 0, rid, PRODUCT, step[4], step[2] * 5_000_123, step[2]))
        self.setup += receipts
        shadow = MatchingCore()
        for command in self.setup:
            assert shadow.apply(command).ack.accepted, command
        self.commands: list = []
        self.neutral: list[tuple] = []
        placed: list[tuple[int, str]] = []  # (order id, member) of earlier orders
        for index, step in enumerate(plan):
            key = f"k{index}"
            if step[0] == "cancel":
                order_id, member = placed[step[1] % len(placed)] if placed else (0, step[2])
                command = c.CancelOrder(key, index, member, order_id)
                neutral = ("cancel", "", order_id, 0, 0)
            else:
                kind, side, lots, price, member = step
                market = kind == "market"
                command = c.NewOrder(key, index, member, PRODUCT, side, lots, price,
                                     c.MARKET if market else c.LIMIT, c.IOC if market else c.GTC,
                                     (f"WR{index:07d}",) if side == c.SELL else ())
            ack = shadow.apply(command).ack
            if step[0] != "cancel":
                if not ack.accepted:
                    raise SystemExit(f"stream order refused: {ack.rejection}")
                placed.append((ack.order_id, member))
                neutral = (kind, side, ack.order_id, lots, price)
            self.commands.append(command)
            self.neutral.append(neutral)
        self.trades = shadow.trade_count


def percentile(sorted_values: list[int], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))] / 1000.0


def throughput(make, feed, items: list) -> tuple[float, float]:
    """(wall seconds, CPU seconds) for one pass over the stream on a fresh instance, garbage collector off (for
    everyone alike). CPU time is reported too because the machine is shared: it is what one core actually spent."""
    subject = make()
    gc.collect()
    gc.disable()
    cpu_started = time.process_time()
    started = time.perf_counter()
    for item in items:
        feed(subject, item)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    gc.enable()
    return elapsed, cpu


def latencies(make, feed, items: list) -> tuple[float, float]:
    subject = make()
    timings = []
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()
    for item in items:
        started = clock()
        feed(subject, item)
        timings.append(clock() - started)
    gc.enable()
    timings.sort()
    return percentile(timings, 0.50), percentile(timings, 0.99)


def measure_all(contenders: list[tuple], repeats: int) -> list[dict]:
    """Round-robin the contenders ``repeats`` times and keep each one's best pass: other processes on a shared
    machine and the allocator's warm-up then weigh on all of them alike, not on whoever happens to run first.

    A contender is (name, make, feed, items) with one order per item, or (name, make, feed, items, orders) for a
    batch contender whose items are batches holding ``orders`` orders in all; its p50/p99 are then per batch."""
    best = {name: float("inf") for name, *_ in contenders}
    best_cpu = dict(best)
    for _ in range(repeats):
        for name, make, feed, items, *_ in contenders:
            wall, cpu = throughput(make, feed, items)
            best[name] = min(best[name], wall)
            best_cpu[name] = min(best_cpu[name], cpu)
    results = []
    for name, make, feed, items, *orders in contenders:
        count = orders[0] if orders else len(items)
        p50, p99 = latencies(make, feed, items)
        results.append({"name": name, "rate": count / best[name], "cpu_rate": count / best_cpu[name],
                        "p50": p50, "p99": p99, "per_batch": bool(orders)})
    return results


# ---------------------------------------------------------------- contenders


def ingot_core(stream: Stream, core_class):
    def make():
        core = core_class()
        for command in stream.setup:
            core.apply(command)
        return core

    def feed(core, command):
        core.apply(command)

    return make, feed, stream.commands


def ingot_journaled(stream: Stream, batch: int, directory: Path, core_class):
    runs = []

    def make():
        target = directory / f"{core_class.__name__}-batch{batch}-run{len(runs)}"
        runs.append(target)
        engine = JournaledEngine(target, batch_size=batch, core_class=core_class)
        for command in stream.setup:
            engine.submit(command)
        engine.flush()
        return engine

    def feed(engine, command):
        engine.submit(command)

    return make, feed, stream.commands


def native_made(stream: Stream):
    """A NativeCore after the setup, its state already native (loading it is setup, like the setup commands)."""
    core = native.NativeCore()
    for command in stream.setup:
        core.apply(command)
    if not core.load_native():
        raise SystemExit("the bench's state does not fit the native core")
    return core


def chunks(commands: list, size: int) -> list[list]:
    return [commands[start:start + size] for start in range(0, len(commands), size)]


def native_batches(stream: Stream, size: int, *, packing: bool = False, objects: bool = False):
    """The native batch path, ``size`` commands per call. Packed before timing, as every other contender's
    inputs are built before timing; with ``packing`` the packing (``native.pack``, in C) is timed too, with
    ``objects`` every Outcome, Ack and event object is built from the batch's records as well."""
    if packing:
        items = chunks(stream.commands, size)

        def feed(core, commands):
            core.run(native.pack(commands))
    else:
        items = [native.pack(commands) for commands in chunks(stream.commands, size)]
        if objects:
            def feed(core, packed):
                core.run(packed).outcomes()
        else:
            def feed(core, packed):
                core.run(packed)

    return (lambda: native_made(stream)), feed, items, len(stream.commands)


def native_object_api(stream: Stream):
    def feed(core, command):
        core.apply(command)

    return (lambda: native_made(stream)), feed, stream.commands


def native_journaled(stream: Stream, batch: int, directory: Path):
    """The batch path behind the journal: one packed batch of ``batch`` commands per group commit (write + fsync),
    its fresh commands encoded by the journal's own codec."""
    runs = []

    def make():
        target = directory / f"native-batch{batch}-run{len(runs)}"
        runs.append(target)
        engine = JournaledEngine(target, batch_size=batch, core_class=native.NativeCore)
        for command in stream.setup:
            engine.submit(command)
        engine.flush()
        engine.core.load_native()
        return engine

    def feed(engine, packed):
        engine.submit_batch(packed)

    return make, feed, [native.pack(commands) for commands in chunks(stream.commands, batch)], len(stream.commands)


def limit_order_book_peer(stream: Stream):
    from limit_order_book import LimitOrderBook

    def feed(book, item):
        kind, side, order_id, lots, price = item
        if kind == "limit":
            book.limit(side == c.BUY, order_id, lots, price)
        elif kind == "market":
            book.market(side == c.BUY, order_id, lots)
        elif book.has(order_id):
            book.cancel(order_id)

    return LimitOrderBook, feed, stream.neutral


def pyorderbook_peer(stream: Stream):
    import logging

    from pyorderbook import Book, Order, Side

    logging.getLogger("pyorderbook").setLevel(logging.WARNING)
    logging.getLogger("pyorderbook.book").setLevel(logging.WARNING)

    class Adapter:
        def __init__(self):
            self.book = Book()
            self.by_id: dict[int, Order] = {}

    def feed(adapter, item):
        kind, side, order_id, lots, price = item
        if kind == "cancel":
            order = adapter.by_id.pop(order_id, None)
            if order is not None and order.id in adapter.book.order_map:
                adapter.book.cancel(order)
            return
        order = Order(Side.BID if side == c.BUY else Side.ASK, PRODUCT, price, lots)
        adapter.book.match(order)
        if kind == "market":
            # No market orders in pyorderbook: a limit at the protection price, remainder cancelled (IOC).
            if order.id in adapter.book.order_map:
                adapter.book.cancel(order)
        else:
            adapter.by_id[order_id] = order

    return Adapter, feed, stream.neutral


def matching_engine_peer(stream: Stream):
    try:
        from matching_engine import CancelOrder, NewOrder, OrderType, SelfTradePrevention, SequencedCommand, Side
        from matching_engine import TimeInForce
        from matching_engine.engine import MatchingEngine
    except ImportError as exc:
        if sys.version_info < (3, 12):
            raise RuntimeError("not installable here: every matching-engine release on PyPI requires "
                               f"Python >= 3.12 (this is {platform.python_version()})") from exc
        raise

    # Its commands are built before timing, as Ingot's are (the engine wants them sequenced: seq strictly rising).
    # One account and no self-trade prevention, as in the other peers; a market order is its native MARKET IOC
    # (price 0, sweeps: the protection price 80 ticks out never binds on this stream); cancels of filled or unknown
    # orders are refused by it, as by Ingot.
    account, stp = 1, SelfTradePrevention.NONE
    commands = []
    for seq, (kind, side, order_id, lots, price) in enumerate(stream.neutral, start=1):
        if kind == "cancel":
            command = CancelOrder(order_id, account)
        else:
            market = kind == "market"
            command = NewOrder(order_id, account, Side.BUY if side == c.BUY else Side.SELL, 0 if market else price,
                               lots, OrderType.MARKET if market else OrderType.LIMIT,
                               TimeInForce.IOC if market else TimeInForce.GTC, stp=stp)
        commands.append(SequencedCommand(seq, seq, command))

    def feed(engine, command):
        engine.process(command)

    return MatchingEngine, feed, commands


PEERS = [
    ("limit-order-book", limit_order_book_peer),
    ("pyorderbook", pyorderbook_peer),
    ("matching-engine", matching_engine_peer),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3, help="throughput runs per contender; the best counts")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 1024],
                        help="journal group-commit batch sizes to try (commands per fsync)")
    parser.add_argument("--native-batch", type=int, nargs="+", default=[1, 1024, 4096],
                        help="commands per call of the native core's batch path")
    parser.add_argument("--journal-dir", default=None, help="where the journaled run writes (default: a temp dir)")
    parser.add_argument("--engine-path", default=None, help="directory holding a mypyc build of ingot.market.engine "
                        "(its reference core is then the mypyc build; it has no compiled C core)")
    args = parser.parse_args()

    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpu(s); "
          f"{args.orders} orders, seed {args.seed}")
    stream = Stream(args.orders, args.seed)
    kinds = {kind: sum(1 for item in stream.neutral if item[0] == kind) for kind in ("limit", "market", "cancel")}
    print(f"stream: {kinds}, {stream.trades} trades in Ingot's core")

    skipped = [] if core_module.COMPILED else [
        {"name": COMPILED, "rate": None, "note": "missing: the extension is not built (pip install -e .)"}]
    print(f"engine: {core_module.__file__}; compiled core: "
          f"{core_module._compiled.__file__ if core_module.COMPILED else 'not built (pip install -e .)'}")
    same = {name: final_hash(stream, core_class) for name, core_class in CORES}
    if NATIVE_BUILT:
        same[NATIVE + ", object API"] = final_hash(stream, native.NativeCore)
        for size in args.native_batch:
            core = native_made(stream)
            for packed in native_batches(stream, size)[2]:
                core.run(packed)
            if core.declined != len(stream.setup):
                raise SystemExit(f"the native batch path declined {core.declined - len(stream.setup)} commands")
            same[f"{NATIVE}, batch {size}"] = core.state_hash()
    if len(set(same.values())) != 1:
        raise SystemExit(f"the cores disagree on the final state: {same}")
    contenders = [(name, *ingot_core(stream, core_class)) for name, core_class in CORES]
    if NATIVE_BUILT:
        for size in args.native_batch:
            contenders.append((f"{NATIVE}, batch of {size}, packed before timing", *native_batches(stream, size)))
        size = max(args.native_batch)
        contenders.append((f"{NATIVE}, batch of {size}, packing timed", *native_batches(stream, size, packing=True)))
        contenders.append((f"{NATIVE}, batch of {size}, every object built",
                           *native_batches(stream, size, objects=True)))
        contenders.append((f"{NATIVE}, object API (apply)", *native_object_api(stream)))
    else:
        skipped.append({"name": NATIVE, "rate": None, "note": "missing: the extension is not built"})
    for name, build in PEERS:
        try:
            make, feed, items = build(stream)
            feed(make(), items[0])  # fail here, not mid-measurement, if the peer cannot run
            contenders.append((name, make, feed, items))
        except Exception as exc:  # noqa: BLE001 - a peer failing to install or run is reported, not fatal
            skipped.append({"name": name, "rate": None, "note": f"skipped: {type(exc).__name__}: {exc}"})
    directory = Path(args.journal_dir) if args.journal_dir else Path(tempfile.mkdtemp(prefix="ingot-journal-"))
    try:
        for name, core_class in CORES:
            for batch in args.batch:
                contenders.append((f"{name} + journal (batch {batch}, fsync)",
                                   *ingot_journaled(stream, batch, directory, core_class)))
        if NATIVE_BUILT:
            for batch in args.batch:
                contenders.append((f"{NATIVE} + journal (batch of {batch} per submit_batch, fsync)",
                                   *native_journaled(stream, batch, directory)))
        load_before = os.getloadavg()
        started = time.strftime("%H:%M:%S")
        results = measure_all(contenders, args.repeats)
        load_after = os.getloadavg()
    finally:
        if not args.journal_dir:
            shutil.rmtree(directory, ignore_errors=True)
    journaled = [row for row in results if "+ journal" in row["name"]]
    results = [row for row in results if row not in journaled] + skipped + journaled

    width = max(58, *(len(row["name"]) for row in results))
    print(f"\n{'contender':{width}} {'orders/s':>10} {'(per CPU s)':>12} {'p50 µs':>8} {'p99 µs':>8}")
    for row in results:
        if row["rate"] is None:
            print(f"{row['name']:{width}} {row['note']}")
        else:
            print(f"{row['name']:{width}} {row['rate']:10,.0f} {row['cpu_rate']:12,.0f} {row['p50']:8.2f} "
                  f"{row['p99']:8.2f}{'  (p50/p99 per batch call)' if row.get('per_batch') else ''}")
    print(f"\nstarted {started}; load average (1, 5, 15 min) before {fmt_load(load_before)}, "
          f"after {fmt_load(load_after)}; {os.cpu_count()} cpu(s)")
    peers = [row for row in results if row["rate"] is not None and not row["name"].startswith("ingot")]
    fastest = max(peers, key=lambda row: row["rate"]) if peers else None
    for row in results:
        if not row["name"].startswith("ingot") or row["rate"] is None or "+ journal" in row["name"]:
            continue
        print(f"{row['name']}: {row['rate']:,.0f} orders/s, {row['cpu_rate']:,.0f} per CPU s (goal >= 300,000)")
        if fastest:
            print(f"    / fastest peer ({fastest['name']}): {row['rate'] / fastest['rate']:.2f}x wall, "
                  f"{row['cpu_rate'] / fastest['cpu_rate']:.2f}x per CPU s  (goal >= 3x)")
    for row in journaled:
        print(f"{row['name']}: {row['rate']:,.0f} orders/s, {row['cpu_rate']:,.0f} per CPU s (goal >= 50,000)")


def fmt_load(load: tuple[float, float, float]) -> str:
    return " ".join(f"{value:.2f}" for value in load)


def final_hash(stream: Stream, core_class) -> str:
    """The state hash after the whole stream, one apply per command."""
    core = core_class()
    for command in stream.setup + stream.commands:
        core.apply(command)
    return core.state_hash()


if __name__ == "__main__":
    main()
