"""HJ 212 benchmark: codec decode throughput beside a naive decoder, and end-to-end ingest over loopback.

    python bench/hj212.py [--packets 20000] [--devices 200 1000] [--seconds 10] [--seed 212] [--decode-only]

Part 1 decodes one mixed set of typical 2017 packets (real-time 2011, minute 2051, hourly 2061 from the simulator,
plus the standard's 1062 example) on one core with `ingot.monitoring.hj212.decode` and, in the same run, with a
straightforward decoder written from the standard below (regex + split, Decimal values, CRC bit by bit as the
appendix's C code does), in packets per second of wall time and per CPU second of this process. Part 2 runs the
receiver with an in-memory sink and N simulated devices on 127.0.0.1 in this one process (the simulator generating
its data is part of the cost); part 3 replays packets generated beforehand, so it measures the receiver. Both
report packets/s, p99 answer latency, CPU seconds; peak RSS at the end.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ingot.monitoring.hj212 import decode  # noqa: E402
from ingot.monitoring.receiver import InMemorySink, ReceiverServer, StaticDirectory  # noqa: E402
from ingot.monitoring.simulator import DeviceSpec, VirtualDevice, run_fleet  # noqa: E402

_BEIJING = ZoneInfo("Asia/Shanghai")


# --- the peer: a naive decoder written straight from the standard ---------------------------------------------


def naive_crc(data: bytes) -> int:
    register = 0xFFFF
    for byte in data:
        register = (register >> 8) ^ byte
        for _ in range(8):
            carry = register & 1
            register >>= 1
            if carry:
                register ^= 0xA001
    return register


_FRAME = re.compile(rb"^##(\d{4})(.*)([0-9A-F]{4})\r?\n?$", re.S)
_ITEM = re.compile(r"^([A-Za-z0-9]+)-([A-Za-z]+)=(.*)$")


def naive_decode(packet: bytes) -> dict:
    match = _FRAME.match(packet)
    if not match:
        raise ValueError("bad frame")
    length, segment, crc = int(match.group(1)), match.group(2), int(match.group(3), 16)
    if len(segment) != length or naive_crc(segment) != crc:
        raise ValueError("bad length or CRC")
    text = segment.decode("utf-8")
    head, cp = text.split("CP=&&", 1)
    fields = dict(item.split("=", 1) for item in head.rstrip(";").split(";"))
    data: dict = {"fields": fields, "pollutants": {}}
    for group in cp[:-2].split(";"):
        for item in group.split(","):
            parsed = _ITEM.match(item)
            if parsed:
                code, suffix, value = parsed.groups()
                entry = data["pollutants"].setdefault(code, {})
                entry[suffix] = value if suffix in ("Flag", "EFlag", "SampleTime") else Decimal(value)
            elif item.startswith("DataTime="):
                data["data_time"] = datetime.strptime(item[9:], "%Y%m%d%H%M%S").replace(tzinfo=_BEIJING)
    return data


# --- part 1 -----------------------------------------------------------------------------------------------------


def packet_set(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    devices = [VirtualDevice(DeviceSpec(mn=f"{index:024X}"), random.Random(rng.getrandbits(64)),
                             datetime(2024, 1, 5, tzinfo=timezone.utc)) for index in range(20)]
    packets: list[bytes] = [b"##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;"
                            b"Flag=5;CP=&&RtdInterval=30&&1C80\r\n"]
    while len(packets) < count:
        for device in devices:
            packets.extend(packet for packet, ok in device.packets_for_tick() if ok)
    return packets[:count]


def time_decoder(name: str, function, packets: list[bytes], rounds: int = 3) -> tuple[str, float, float]:
    """Packets per second of wall time and per CPU second of this process, each the best of `rounds` rounds (on
    a shared machine the wall clock also counts the time other processes hold the core)."""
    best_wall = best_cpu = float("inf")
    for _ in range(rounds):
        started, cpu_started = time.perf_counter(), time.process_time()
        for packet in packets:
            function(packet)
        best_wall = min(best_wall, time.perf_counter() - started)
        best_cpu = min(best_cpu, time.process_time() - cpu_started)
    return name, len(packets) / best_wall, len(packets) / best_cpu


def measured_at() -> str:
    """The commit the codec was measured at, and whether its files differ from it."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src/ingot/monitoring/hj212", "setup.py"],
                               cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "no git checkout"
    return commit + (" with uncommitted changes to the codec" if dirty else "")


def decode_part(count: int, seed: int) -> None:
    packets = packet_set(count, seed)
    for packet in packets:  # both decoders must agree that every packet is valid before they are timed
        naive_decode(packet)
        decode(packet)
    average = sum(map(len, packets)) / len(packets)
    load = os.getloadavg()
    print(f"Part 1 — decode, {len(packets)} mixed 2017 packets (2011/2051/2061/1062, mean {average:.0f} bytes), one core;"
          f" codec at {measured_at()}; load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'decoder':<40}{'packets/s':>14}{'per CPU s':>14}")
    rows = [time_decoder("ingot.monitoring.hj212.decode", decode, packets),
            time_decoder("peer: naive regex decoder (this file)", naive_decode, packets)]
    for name, rate, cpu_rate in rows:
        print(f"{name:<40}{rate:>14,.0f}{cpu_rate:>14,.0f}")
    print(f"{'speed-up over the peer':<40}{rows[0][1] / rows[1][1]:>13.1f}×{rows[0][2] / rows[1][2]:>13.1f}×")
    load = os.getloadavg()
    print(f"load after part 1: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


# --- part 2 -----------------------------------------------------------------------------------------------------


async def ingest(devices: int, seconds: float, seed: int) -> dict:
    specs = [DeviceSpec(mn=f"88BENCH{index:017d}") for index in range(devices)]
    sink = InMemorySink()
    server = ReceiverServer(StaticDirectory({spec.mn: spec.password for spec in specs}), sink)
    await server.start("127.0.0.1", 0)
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    try:
        report = await run_fleet("127.0.0.1", server.port, specs, seconds=seconds, seed=seed, interval=0,
                                 max_in_flight=8)
    finally:
        await server.stop()
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return {"devices": devices, "accepted": len(sink.accepted), "seconds": report.seconds,
            "packets_per_s": len(sink.accepted) / report.seconds if report.seconds else 0.0,
            "p99_ms": report.p99_ms, "cpu_s": cpu, "rejected": dict(server.stats.packets_rejected)}


async def replay(devices: int, per_device: int, window: int, seed: int) -> dict:
    """The receiver alone: packets generated before the clock starts, replayed by light clients keeping
    `window` packets in flight each; latency from write to the 9014 answer."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 5, tzinfo=timezone.utc)
    streams = {}
    for index in range(devices):
        device = VirtualDevice(DeviceSpec(mn=f"88REPLAY{index:016d}"), random.Random(rng.getrandbits(64)), start)
        packets: list[bytes] = []
        while len(packets) < per_device:
            packets.extend(packet for packet, ok in device.packets_for_tick() if ok and b"PNUM" not in packet)
        streams[device.spec.mn] = packets[:per_device]
    sink = InMemorySink()
    server = ReceiverServer(StaticDirectory({mn: "123456" for mn in streams}), sink)
    await server.start("127.0.0.1", 0)
    latencies: list[float] = []

    async def client(packets: list[bytes]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        sent: list[float] = []
        for packet in packets[:window]:
            writer.write(packet)
            sent.append(time.perf_counter())
        next_index, answered = min(window, len(packets)), 0
        while answered < len(packets):
            await reader.readuntil(b"\r\n")
            latencies.append(time.perf_counter() - sent[answered])
            answered += 1
            if next_index < len(packets):
                writer.write(packets[next_index])
                sent.append(time.perf_counter())
                next_index += 1
        writer.close()

    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    try:
        await asyncio.gather(*(client(packets) for packets in streams.values()))
    finally:
        elapsed = time.perf_counter() - started
        await server.stop()
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000 if latencies else 0.0
    return {"devices": devices, "accepted": len(sink.accepted), "seconds": elapsed,
            "packets_per_s": len(sink.accepted) / elapsed, "p99_ms": p99, "cpu_s": cpu,
            "rejected": dict(server.stats.packets_rejected)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--devices", type=int, nargs="*", default=[200, 1000])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=212)
    parser.add_argument("--per-device", type=int, default=20, help="packets each replay client sends")
    parser.add_argument("--decode-only", action="store_true", help="run part 1 alone")
    args = parser.parse_args(argv)

    decode_part(args.packets, args.seed)
    if args.decode_only:
        return

    print(f"\nPart 2 — end to end over loopback into the in-memory sink ({args.seconds:g} s per run, receiver and "
          f"fleet share this process)")
    print(f"{'devices':>8}{'accepted':>10}{'packets/s':>12}{'p99 answer ms':>15}{'CPU s':>8}  rejected")
    for count in args.devices:
        row = asyncio.run(ingest(count, args.seconds, args.seed))
        print(f"{row['devices']:>8}{row['accepted']:>10}{row['packets_per_s']:>12,.0f}{row['p99_ms'] or 0:>15.1f}"
              f"{row['cpu_s']:>8.1f}  {row['rejected'] or '-'}")
    print(f"\nPart 3 — the receiver alone: pre-generated packets replayed over loopback, 8 in flight per device,"
          f" {args.per_device} packets each")
    print(f"{'devices':>8}{'accepted':>10}{'packets/s':>12}{'p99 answer ms':>15}{'CPU s':>8}  rejected")
    for count in args.devices:
        row = asyncio.run(replay(count, args.per_device, 8, args.seed))
        print(f"{row['devices']:>8}{row['accepted']:>10}{row['packets_per_s']:>12,.0f}{row['p99_ms']:>15.1f}"
              f"{row['cpu_s']:>8.1f}  {row['rejected'] or '-'}")
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS of this process: {peak_kib / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
