"""Market API benchmark: order round trips over HTTP at a fixed offered rate, against the goal p99 < 20 ms at 500/s.

    .venv/bin/python bench/market_api.py [--database URL] [--rate 500] [--seconds 20] [--seed 5]

A fresh database (SQLite under bench/out/ by default; point --database at a PostgreSQL database of its own, it is
wiped) is migrated and given the administrative divisions and the demo trading centre, plus cash for five buying accounts and one warehouse
receipt per planned sell order for M001 (all before the clock starts). Then `ingot serve` runs as a separate process
(one uvicorn worker by default, as shipped; --workers N for `ingot serve --workers N`, whose processes' CPU and
peak RSS are then summed) and this process offers orders to `POST /api/market/orders` and
`POST /api/market/orders/{id}/cancel` at a fixed rate (open loop: a request is sent on schedule whether or not the
earlier ones have been answered, so a server that falls behind shows it in the latency, not in a lower rate).
Mix on refined indium (IN99995, tick 100 fen): 60 % buy limits a few ticks either side of the reference, 20 % sell
limits from M001 each locking one receipt (so some trade and settle), 20 % cancels of the same user's earlier orders.
The round trip is measured from the moment a request was due to its answer (so time spent waiting for one of the
--connections keep-alive connections counts: no coordinated omission), the service time from the write; every answer
counts, refusals (e.g. cancelling an order that has filled) included. The load generator (a bare asyncio HTTP/1.1
client, cheap next to the server) shares the machine with the server, so the load average is printed before and
after. Afterwards the books are checked: every order acknowledged with 201 is in the database, the ledger's
invariants hold over the whole book and the core's own invariants hold.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out" / "market-api"
OUT.mkdir(parents=True, exist_ok=True)
os.environ.setdefault("INGOT_DATA_DIR", str(OUT))
os.environ.setdefault("INGOT_SECRET_KEY", "bench-market-api-secret-key-not-for-production-use-0123456789")
sys.path.insert(0, str(ROOT / "src"))

import httpx  # noqa: E402
from sqlalchemy import text  # noqa: E402

from ingot.core.auth import principal_of  # noqa: E402
from ingot.core.db import dispose_engines, get_engine, normalise_url, unit_of_work  # noqa: E402
from ingot.core.migrate import upgrade  # noqa: E402

PRODUCT, MID, TICK = "IN99995", 150_000, 100
BUYERS = (("trader", "M011"), ("client1", "M010/C01"), ("client2", "M010/C02"), ("m002", "M002"), ("m003", "M003"))
SELLER = ("m001", "M001")


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


def prepare(url: str, sells: int) -> tuple[str, list[str]]:
    """Demo region and market, cash for the buyers, `sells` receipts of IN99995 for M001; returns the demo password
    and the receipt numbers."""
    from ingot.core.auth import User
    from ingot.core.timeutil import utcnow
    from ingot.market import accounts, products, receipts
    from ingot.market.common import trading_day
    from ingot.market.demo import load_market_demo
    from ingot.registry.demo import DEMO_PASSWORD
    from ingot.registry.service import load_divisions
    from sqlalchemy import select

    now = utcnow()
    with unit_of_work(url) as session:
        load_divisions(session)  # the registry's demo industry is not needed: members then link to no enterprise
        load_market_demo(session, now=now)
    numbers = []
    with unit_of_work(url) as session:
        operator = principal_of(session.scalar(select(User).where(User.username == "centre")))
        keeper = principal_of(session.scalar(select(User).where(User.username == "wh_km")))
        day = trading_day(now)
        for index, (_user, account) in enumerate(BUYERS):
            reference = f"BENCH-{day:%Y%m%d}-{index:04d}"
            accounts.import_bank_line(session, operator, bank_ref=reference, account_engine_id=account, value_date=day,
                                      amount_fen=10**12)
            accounts.deposit(session, operator, reference, now=now)
        lot_grams = 10 * products.GRAMS_PER_UNIT["kg"]
        for index in range(sells):
            receipt = receipts.register_receipt(
                session, keeper, warehouse_code="KM01", product_code=PRODUCT, owner_account="M001",
                lot_no=f"BENCH-{index:05d}", net_grams=10 * lot_grams + 7, assay_certificate=f"AC-BENCH-{index:05d}",
                assay={"In_pct": "99.996"}, location="KM01-B", brand="基准", now=now + timedelta(microseconds=index))
            numbers.append(receipt.number)
    dispose_engines()
    return DEMO_PASSWORD, numbers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (`ingot serve --workers N` is a supervisor with N worker processes)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                pending.extend(int(child) for child in task.read_text().split())
            except OSError:
                continue
    return found


def proc_cpu_seconds(pid: int) -> float:
    """CPU seconds of the server: the process and its live descendants."""
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def proc_peak_rss_mb(pid: int) -> float:
    """Peak RSS of the server, summed over the process and its live descendants."""
    total = 0
    for member in process_tree(pid):
        try:
            lines = Path(f"/proc/{member}/status").read_text().splitlines()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in lines if line.startswith("VmHWM:")), 0)
    return total / 1024


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


class Connection:
    """A bare HTTP/1.1 keep-alive connection: the load generator must cost far less than the server it measures
    (an httpx AsyncClient with thousands of requests queued on its pool spent more CPU than the server did)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def request(self, path: str, body: bytes, headers: str) -> tuple[int, bytes]:
        for attempt in (0, 1):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            try:
                self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n{headers}Content-Type: "
                                  f"application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
                head = await self.reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                lines = head.decode("latin-1").lower().split("\r\n")
                length = next((int(line[15:]) for line in lines if line.startswith("content-length:")), None)
                if length is None:  # chunked
                    payload = b""
                    while True:
                        size = int((await self.reader.readuntil(b"\r\n"))[:-2], 16)
                        payload += (await self.reader.readexactly(size + 2))[:-2]
                        if not size:
                            break
                else:
                    payload = await self.reader.readexactly(length)
                if "connection: close" in lines:
                    self.close()
                return status, payload
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def drive(base: str, password: str, receipt_numbers: list[str], rate: float, seconds: float, seed: int,
                connections: int, server_pid: int) -> dict:
    rng = random.Random(seed)
    host, port = base.rsplit("//", 1)[1].split(":")
    headers = {}
    async with httpx.AsyncClient(base_url=base, timeout=60.0) as client:
        for username, _account in (*BUYERS, SELLER):
            answer = await client.post("/api/auth/token", data={"username": username, "password": password})
            answer.raise_for_status()
            headers[username] = f"Authorization: Bearer {answer.json()['access_token']}\r\n"
    placed: dict[str, list[int]] = {username: [] for username, _ in (*BUYERS, SELLER)}
    acknowledged: set[int] = set()
    receipts_left = list(receipt_numbers)

    def plan(index: int) -> tuple[str, str, dict]:
        roll = rng.random()
        if roll < 0.2 and receipts_left:
            username, account = SELLER
            body = {"account": account, "product": PRODUCT, "side": "S", "lots": rng.randint(1, 5),
                    "price_fen": MID + TICK * rng.randint(-2, 12), "receipts": [receipts_left.pop()]}
            return username, "/api/market/orders", {**body, "key": f"o{index}"}
        username, account = rng.choice(BUYERS)
        if roll < 0.4 and placed[username]:
            order_id = placed[username].pop(rng.randrange(len(placed[username])))
            return username, f"/api/market/orders/{order_id}/cancel", {"key": f"c{index}"}
        body = {"account": account, "product": PRODUCT, "side": "B", "lots": rng.randint(1, 5),
                "price_fen": MID + TICK * rng.randint(-12, 2)}
        return username, "/api/market/orders", {**body, "key": f"o{index}"}

    latencies: list[float] = []  # from the moment the request was due: includes waiting for a free connection
    service: list[float] = []  # from the write to the answer
    statuses: dict[int, int] = {}
    errors: dict[str, int] = {}

    async def send(connection: Connection, index: int, due: float | None) -> None:
        username, path, body = plan(index)
        written = time.perf_counter()
        try:
            status, payload = await connection.request(path, json.dumps(body).encode(), headers[username])
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            return
        answered = time.perf_counter()
        if due is not None:
            latencies.append(answered - due)
            service.append(answered - written)
            statuses[status] = statuses.get(status, 0) + 1
        if status == 201:
            answer = json.loads(payload)
            acknowledged.add(answer["order_id"])
            if answer.get("status") == "resting":
                placed[username].append(answer["order_id"])

    warm = Connection(host, int(port))
    for index in range(40):  # warm-up, sequential and untimed: the server builds its core, pools fill
        await send(warm, -1 - index, None)
    warm.close()

    queue: asyncio.Queue = asyncio.Queue()

    async def worker() -> None:
        connection = Connection(host, int(port))
        while True:
            item = await queue.get()
            if item is None:
                connection.close()
                return
            await send(connection, *item)

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    count = int(rate * seconds)
    # The server's CPU is counted from here: the logins above (argon2 verifies each password, ≈ 0.1 s of CPU apiece)
    # and the warm-up are not order traffic.
    cpu_before = proc_cpu_seconds(server_pid)
    start = time.perf_counter()
    lag = 0.0
    for index in range(count):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            lag = max(lag, -delay)
        queue.put_nowait((index, due))
    offered = time.perf_counter() - start
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    server_cpu = proc_cpu_seconds(server_pid) - cpu_before
    return {"server_cpu": server_cpu, "offered": count, "offered_seconds": offered, "elapsed": elapsed, "latencies": latencies,
            "service": service, "statuses": statuses, "errors": errors, "max_send_lag_ms": lag * 1000,
            "acknowledged": acknowledged}


def check_books(url: str, acknowledged: set[int]) -> str:
    """Every acknowledged order is stored; the ledger (whole book) and the core hold their invariants."""
    from sqlalchemy import select

    from ingot.market import gateway, ledger
    from ingot.market.models import Order

    with unit_of_work(url) as session:
        stored = set(session.scalars(select(Order.id)))
        ledger.check_invariants(session)
        gateway.read_core(session, lambda core: core.check_invariants())
    dispose_engines()
    missing = acknowledged - stored
    if missing:
        return f"{len(missing)} acknowledged orders missing from the database (e.g. {sorted(missing)[:5]})"
    return f"books hold: {len(acknowledged)} acknowledged orders all stored, ledger and core invariants hold"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default=f"sqlite:///{OUT / 'ingot.db'}",
                        help="a database used only by this bench: it is wiped (default: SQLite under bench/out/)")
    parser.add_argument("--rate", type=float, default=500.0, help="orders offered per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections the load generator uses")
    parser.add_argument("--workers", type=int, default=1, help="server processes (ingot serve --workers)")
    args = parser.parse_args()

    url = fresh_database(args.database)
    started = time.perf_counter()
    password, numbers = prepare(url, int(args.rate * args.seconds * 0.25) + 50)
    print(f"database: {url.split('@')[-1]}; demo market loaded, {len(numbers)} receipts registered "
          f"({time.perf_counter() - started:.1f} s, untimed)")

    port = free_port()
    env = {**os.environ, "INGOT_DATABASE_URL": url}
    server = subprocess.Popen([str(ROOT / ".venv" / "bin" / "ingot"), "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", str(args.workers)],
                              env=env, stdout=subprocess.DEVNULL, stderr=open(OUT / "server.log", "w"))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"{base}/docs", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.time() > deadline:
                print(f"server did not start; see {OUT / 'server.log'}")
                return 1
            time.sleep(0.2)
        load_before = os.getloadavg()[0]
        client_cpu = time.process_time()
        result = asyncio.run(drive(base, password, numbers, args.rate, args.seconds, args.seed,
                                   args.connections, server.pid))
        client_cpu = time.process_time() - client_cpu
        server_cpu = result["server_cpu"]
        rss = proc_peak_rss_mb(server.pid)
        load_after = os.getloadavg()[0]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    latencies, service = result["latencies"], result["service"]
    answered = len(latencies)
    print(f"offered {result['offered']} requests at {args.rate:g}/s over {result['offered_seconds']:.1f} s "
          f"(worst send lag {result['max_send_lag_ms']:.1f} ms) on {args.connections} connections; all answered after "
          f"{result['elapsed']:.1f} s")
    print(f"answers by status: {dict(sorted(result['statuses'].items()))}; transport errors: {result['errors'] or '-'}")
    print(f"{'':<34}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>10}")
    for name, values in (("round trip (from when it was due)", latencies), ("service (from write to answer)", service)):
        print(f"{name:<34}{percentile(values, 0.5) * 1000:>9.1f}{percentile(values, 0.9) * 1000:>9.1f}"
              f"{percentile(values, 0.99) * 1000:>9.1f}{max(values, default=float('nan')) * 1000:>10.1f}")
    print(f"answered/s {answered / result['elapsed']:,.0f}; server CPU {server_cpu:.1f} s "
          f"({server_cpu / max(answered, 1) * 1000:.1f} ms per answer), peak RSS {rss:.0f} MB; "
          f"load generator CPU {client_cpu:.1f} s; load average {load_before:.2f} -> {load_after:.2f}")
    print(check_books(url, result["acknowledged"]))
    p99 = percentile(latencies, 0.99) * 1000
    met = p99 < 20 and answered == result["offered"] and set(result["statuses"]) <= {200, 201, 404, 409, 422}
    print(f"API round trip p99 at {args.rate:g} orders/s: {p99:.1f} ms (goal < 20 ms): {'met' if met else 'not met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
