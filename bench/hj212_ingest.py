"""HJ 212 ingest into the database: the batched sink alone, and end to end over loopback.

    python bench/hj212_ingest.py [--sqlite PATH] [--postgres URL] [--devices 1000 5000] [--seconds 20] [--packets 20000]
                                 [--workers 1 2] [--skip-sink] [--backends SQLite PostgreSQL]

Part 1 (sink): 6-pollutant minute packets written by `write_batch` (COPY on PostgreSQL, executemany on SQLite), beside
the named peer "ORM add_all" — the same rows as ORM objects, one flush per batch, the way a first version would.
Part 2 (end to end): the receiver with the DB directory and sink on 127.0.0.1 in this process, or with --workers N
in N processes sharing the port through SO_REUSEPORT, each with its own sink (CPU and RSS are then their sums); the
simulated devices in a process of their own (`multiprocessing`, fork), one TCP connection each, replaying the
simulator's packets generated before the clock starts (so the generator's own simulation does not compete with the
receiver for the 2 cores while measured) with --window packets in flight per device. Reported: packets/s stored (accepted raw packets in the database ÷ time
from the fleet's start to the last batch committed), p99 answer latency (write → 9014 answer, measured by the
devices), CPU seconds of the receiver process, of the fleet process and (PostgreSQL) of all the database server's processes, the machine's busy share over the run (both
cores, PostgreSQL included, and whatever else runs), and the receiver process's peak RSS.
Each database is wiped and migrated first: point --postgres at a database of its own.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import resource
import sys
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select, text

from ingot.core.auth import SYSTEM
from ingot.core.db import dispose_engines, get_engine, normalise_url, session_factory
from ingot.core.migrate import upgrade
from ingot.monitoring.models import Measurement, RawPacket
from ingot.monitoring.receiver import run_receiver_process
from ingot.monitoring.storage import IngestRecord, Reading, VALUE_FIELDS, write_batch

POLLUTANTS = ("a21026", "a21002", "a34013", "a19001", "a00000", "a01012")
T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def fresh_database(url: str) -> str:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    else:
        with get_engine(url).begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        dispose_engines()
    upgrade(url)
    return url


def make_points(url: str, count: int) -> list[tuple[int, str]]:
    """`count` points (MN, password 123456) on one benchmark site; returns (point id, MN)."""
    from ingot.monitoring import service
    from ingot.registry import service as registry
    from ingot.registry.uscc import make_uscc

    with session_factory(url)() as session:
        registry.load_divisions(session)
        enterprise = registry.create_enterprise(session, SYSTEM, {
            "name": "基准测试冶炼厂", "uscc": make_uscc("9", "1", "530100", "70000001"), "ownership": "private",
            "division_code": "530100"})
        site = registry.create_site(session, SYSTEM, {"enterprise_id": enterprise["id"], "name": "一厂",
                                                       "division_code": "530181"})
        points = []
        for index in range(count):
            mn = f"88BE{index:020d}"
            point = service.create_point(session, SYSTEM, {"site_id": site["id"], "name": f"烟囱{index}", "mn": mn,
                                                           "password": "123456", "pollutants": list(POLLUTANTS)})
            points.append((point["id"], mn))
        session.commit()
    return points


def minute_records(points: list[tuple[int, str]], count: int) -> list[IngestRecord]:
    records = []
    for index in range(count):
        point_id, mn = points[index % len(points)]
        moment = T0 + timedelta(minutes=index // len(points))
        readings = tuple(Reading(code, {"avg": Decimal("123.45"), "min": Decimal("100.1"), "max": Decimal("150.9"),
                                        "zs_avg": Decimal("130.02")}, "N") for code in POLLUTANTS)
        records.append(IngestRecord(received_at=moment + timedelta(seconds=3), peer="127.0.0.1:40000", mn=mn,
                                    point_id=point_id, accepted=True, kind="minute", data_time=moment,
                                    text=f"##0400QN=20261101000000000;ST=22;CN=2051;PW=123456;MN={mn};Flag=4;CP=&&…&&4C81",
                                    readings=readings))
    return records


def orm_add_all(session, records: list[IngestRecord]) -> None:
    """The peer: ORM objects, one flush per batch."""
    for record in records:
        session.add(RawPacket(received_at=record.received_at, point_id=record.point_id, mn=record.mn, peer=record.peer,
                              text=record.text, accepted=True))
        for reading in record.readings:
            session.add(Measurement(point_id=record.point_id, pollutant=reading.pollutant, kind=record.kind,
                                    data_time=record.data_time, flag=reading.flag, received_at=record.received_at,
                                    **{name: reading.values.get(name) for name in VALUE_FIELDS}))


def bench_sink(url: str, packets: int, batch: int = 2000) -> list[tuple[str, float]]:
    results = []
    for name, writer in (("write_batch (COPY/executemany)", write_batch), ("peer: ORM add_all", orm_add_all)):
        url = fresh_database(url)
        records = minute_records(make_points(url, 100), packets)
        started = time.perf_counter()
        for offset in range(0, len(records), batch):
            with session_factory(url)() as session:
                writer(session, records[offset:offset + batch])
                session.commit()
        elapsed = time.perf_counter() - started
        with session_factory(url)() as session:
            stored = session.scalar(select(func.count()).select_from(RawPacket))
        assert stored == packets, (name, stored)
        results.append((name, packets / elapsed))
        dispose_engines()
    return results


def _fleet_process(conn, mns: list[str], ticks: int, window: int, seconds: float) -> None:
    """The load generator, in a process of its own: simulator packets generated before the clock starts, then
    replayed by one light client per device with `window` packets in flight each."""
    from ingot.monitoring.simulator import DeviceSpec, pregenerate, replay_fleet

    streams = pregenerate([DeviceSpec(mn=mn) for mn in mns], ticks, seed=212, start=T0)
    conn.send(sum(map(len, streams.values())))
    port = conn.recv()
    before = resource.getrusage(resource.RUSAGE_SELF)
    # The devices stand in for a fleet on other machines: the lighter their share of these two cores, the more the
    # run measures the receiver and the database; uvloop, the receiver's own loop, is the lightest client at hand.
    try:
        from uvloop import run as run_loop
    except ImportError:
        run_loop = asyncio.run
    report = run_loop(replay_fleet("127.0.0.1", port, streams, window=window, seconds=seconds))
    after = resource.getrusage(resource.RUSAGE_SELF)
    conn.send({"sent": report.packets_sent, "answers": report.answers, "p99_ms": report.p99_ms,
               "connect_failures": report.connect_failures, "seconds": report.seconds,
               "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)})


def _postgres_cpu_s(database: str) -> float:
    """CPU seconds used so far by the PostgreSQL server's processes that work for this bench: the backends
    connected to `database` and the shared ones (WAL writer, checkpointer, background writer, autovacuum), so
    other databases' clients on the machine are not counted."""
    total = 0
    for process in Path("/proc").glob("[0-9]*"):
        try:
            text = (process / "stat").read_text()
            title = (process / "cmdline").read_bytes().decode("utf-8", "replace")
        except OSError:
            continue  # the process ended meanwhile
        if text[text.index("(") + 1:text.rindex(")")] != "postgres":
            continue
        is_backend = "(" in title.split(":", 2)[-1] or "[local]" in title  # "… user database host(port) state"
        if is_backend and f" {database} " not in title:
            continue
        fields = text[text.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def _database_name(url: str) -> str:
    return url.rsplit("/", 1)[-1].split("?", 1)[0]


def _machine_busy() -> tuple[int, int]:
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


async def _serve(url: str, conn) -> dict:
    from ingot.monitoring.storage import ingest_pipeline

    loop = asyncio.get_running_loop()
    async with ingest_pipeline(url, "127.0.0.1", 0) as (server, sink, port):
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        busy_before, database_before = _machine_busy(), _postgres_cpu_s(_database_name(url))
        started = time.perf_counter()
        conn.send(port)
        fleet = await loop.run_in_executor(None, conn.recv)
        await sink.flush()
        elapsed = time.perf_counter() - started
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        busy_after, database_after = _machine_busy(), _postgres_cpu_s(_database_name(url))
        rejected = dict(server.stats.packets_rejected)
        failures = sink.stats.failures
    return {"fleet": fleet, "seconds": elapsed, "rejected": rejected, "failures": failures,
            "cpu_s": (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime),
            "database_cpu_s": database_after - database_before,
            "machine_busy": (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1])}


def _worker_process(url: str, port: int, conn) -> None:
    """One of --workers receiver processes: its own receiver (SO_REUSEPORT on the shared port) and sink."""
    from ingot.monitoring.storage import ingest_pipeline

    async def serve() -> dict:
        loop = asyncio.get_running_loop()
        async with ingest_pipeline(url, "127.0.0.1", port, reuse_port=True) as (server, sink, _port):
            before = resource.getrusage(resource.RUSAGE_SELF)
            conn.send("listening")
            await loop.run_in_executor(None, conn.recv)  # the fleet is done
            await sink.flush()
            after = resource.getrusage(resource.RUSAGE_SELF)
            conn.send({"rejected": dict(server.stats.packets_rejected), "failures": sink.stats.failures,
                       "connections": server.stats.connections_total,
                       "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
                       "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
            # keep the database connection (and its server process's CPU count) until the parent has read it
            await loop.run_in_executor(None, conn.recv)

    run_receiver_process(serve())


def _serve_workers(url: str, conn, workers: int, context) -> dict:
    import socket
    from collections import Counter

    # Reserve a port: a bound socket that never listens takes no connections from the SO_REUSEPORT group.
    placeholder = socket.socket()
    placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    placeholder.bind(("127.0.0.1", 0))
    port = placeholder.getsockname()[1]
    pipes, processes = [], []
    for _ in range(workers):
        ours, theirs = context.Pipe()
        process = context.Process(target=_worker_process, args=(url, port, theirs))
        process.start()
        pipes.append(ours)
        processes.append(process)
    for pipe in pipes:
        assert pipe.recv() == "listening"
    placeholder.close()
    busy_before, database_before = _machine_busy(), _postgres_cpu_s(_database_name(url))
    started = time.perf_counter()
    conn.send(port)
    fleet = conn.recv()
    for pipe in pipes:
        pipe.send("flush")
    reports = [pipe.recv() for pipe in pipes]
    elapsed = time.perf_counter() - started
    busy_after, database_after = _machine_busy(), _postgres_cpu_s(_database_name(url))
    for pipe in pipes:
        pipe.send("done")
    for process in processes:
        process.join(30)
    rejected = Counter()
    for report in reports:
        rejected.update(report["rejected"])
    return {"fleet": fleet, "seconds": elapsed, "rejected": dict(rejected),
            "failures": sum(report["failures"] for report in reports),
            "cpu_s": sum(report["cpu_s"] for report in reports),
            "database_cpu_s": database_after - database_before,
            "connections": [report["connections"] for report in reports],
            "peak_rss_mb": sum(report["peak_rss_mb"] for report in reports),
            "machine_busy": (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1])}


def _end_to_end(url: str, devices: int, seconds: float, packets: int, window: int, workers: int = 1) -> dict:
    import multiprocessing

    points = make_points(url, devices)
    dispose_engines()  # no pooled connection crosses the fork
    ticks = max(2, packets // (2 * devices))
    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe()
    fleet = context.Process(target=_fleet_process, args=(theirs, [mn for _, mn in points], ticks, window, seconds))
    fleet.start()
    generated = ours.recv()
    try:
        if workers > 1:
            figures = _serve_workers(url, ours, workers, context)
        else:
            figures = run_receiver_process(_serve(url, ours))
    finally:
        fleet.join(30)
    with session_factory(url)() as session:
        stored = session.scalar(select(func.count()).select_from(RawPacket).where(RawPacket.accepted.is_(True)))
    return {
        "generated": generated,
        "stored": stored,
        "packets_per_s": stored / figures["seconds"],
        "p99_ms": figures["fleet"]["p99_ms"],
        "cpu_s": figures["cpu_s"],
        "fleet_cpu_s": figures["fleet"]["cpu_s"],
        "database_cpu_s": figures["database_cpu_s"],
        "machine_busy": figures["machine_busy"],
        "peak_rss_mb": figures.get("peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "seconds": figures["seconds"],
        "rejected": figures["rejected"],
        "failures": figures["failures"],
        "connections": figures.get("connections"),
    }


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[1]).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src/ingot/monitoring", "bench"],
                               capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    except OSError:
        return "unknown"
    return (head or "unknown") + (" (monitoring or bench modified)" if dirty else "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sqlite", default="/tmp/ingot-bench-ingest.db")
    parser.add_argument("--postgres", default=None, help="postgresql://… of a database used only by this bench")
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--devices", type=int, nargs="*", default=[1000, 5000])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--skip-sink", action="store_true", help="run part 2 alone")
    parser.add_argument("--backends", nargs="*", default=["SQLite", "PostgreSQL"], help="SQLite and/or PostgreSQL")
    parser.add_argument("--e2e-packets", type=int, default=300_000, help="packets the fleet generates per run")
    parser.add_argument("--window", type=int, default=8, help="packets in flight per device")
    parser.add_argument("--workers", type=int, nargs="*", default=[1],
                        help="receiver processes sharing the port (SO_REUSEPORT), each with its own sink; "
                             "1 = the receiver in this process")
    options = parser.parse_args(argv)
    backends = [("SQLite", f"sqlite:///{options.sqlite}")] + ([("PostgreSQL", options.postgres)] if options.postgres else [])
    backends = [(name, url) for name, url in backends if name in options.backends]
    load = os.getloadavg()
    print(f"commit {_commit()}, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")

    if not options.skip_sink:
        print(f"Part 1 — sink only, {options.packets} six-pollutant minute packets, batches of 2000")
        print(f"{'backend':<12} {'writer':<34} {'packets/s':>10}")
        for backend, url in backends:
            for name, rate in bench_sink(url, options.packets):
                print(f"{backend:<12} {name:<34} {rate:>10,.0f}")
    if options.skip_end_to_end:
        return
    import importlib.util

    missing = [name for name in ("ingot.monitoring.receiver", "ingot.monitoring.simulator")
               if importlib.util.find_spec(name) is None]
    if missing:
        print(f"\nPart 2 skipped: not in this build: {', '.join(missing)}")
        return
    print(f"\nPart 2 — end to end over loopback: the receiver and the batched sink in this process (workers = 1) or "
          f"in N processes sharing the port; the fleet in a process of its own replaying simulator packets generated "
          f"before the clock, {options.window} in flight per device, up to {options.seconds:.0f} s per run")
    print(f"{'backend':<12} {'workers':>7} {'devices':>7} {'stored':>9} {'packets/s':>10} {'p99 ms':>8} "
          f"{'recv CPU s':>10} {'fleet CPU s':>11} {'PG CPU s':>8} {'machine busy':>12} {'peak RSS MB':>12} {'load':>6}")
    for backend, url in backends:
        for workers in options.workers:
            for devices in options.devices:
                url = fresh_database(url)
                figures = _end_to_end(url, devices, options.seconds, options.e2e_packets, options.window, workers)
                dispose_engines()
                p99 = "—" if figures["p99_ms"] is None else f"{figures['p99_ms']:.1f}"
                pg_cpu = f"{figures['database_cpu_s']:.1f}" if backend == "PostgreSQL" else "—"
                print(f"{backend:<12} {workers:>7} {devices:>7} {figures['stored']:>9} "
                      f"{figures['packets_per_s']:>10,.0f} {p99:>8} {figures['cpu_s']:>10.1f} {figures['fleet_cpu_s']:>11.1f} "
                      f"{pg_cpu:>8} {figures['machine_busy']:>11.0%} {figures['peak_rss_mb']:>12.0f} {os.getloadavg()[0]:>6.2f}"
                      + (f"  rejected {figures['rejected']}" if figures["rejected"] else "")
                      + (f"  failed batches {figures['failures']}" if figures["failures"] else "")
                      + (f"  connections per worker {figures['connections']}" if figures.get("connections") else ""))
                sys.stdout.flush()
    sys.stdout.flush()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
