"""`ingot monitor …`: listen (receiver with the DB directory and sink), simulate, query, retention, scan-alarms.

The CLI is a local operator's tool and acts as the system principal; the web and API are where scope applies.
"""
from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime

import typer
from rich.console import Console
from rich.table import Table

from ingot.core.auth import SYSTEM
from ingot.core.errors import DomainError

app = typer.Typer(help="在线监测 / online emission monitoring (HJ 212)", no_args_is_help=True)
console = Console()


def _fail(error: DomainError) -> None:
    console.print(f"[red]{error.code}[/red]: {error.message_zh} / {error.message_en}")
    raise typer.Exit(2)


def _moment(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        console.print(f"[red]{name}[/red]: 不是 ISO 8601 时间 / not an ISO 8601 time: {text}")
        raise typer.Exit(2) from None


@app.command()
def listen(
    host: str = typer.Option("0.0.0.0", help="监听地址 / address to listen on"),
    port: int = typer.Option(9212, help="监听端口 / TCP port"),
    batch_size: int = typer.Option(2000, help="每批写入的报文数 / records per database batch"),
    scan_seconds: float = typer.Option(60.0, help="缺失与状态报警扫描间隔 / alarm scan interval"),
) -> None:
    """启动 HJ 212 接收服务（设备目录与写入均在数据库）/ run the HJ 212 receiver against the database."""
    from ingot.monitoring.service import serve_receiver

    console.print(f"HJ 212 receiver on {host}:{port} (Ctrl-C to stop)")
    try:
        asyncio.run(serve_receiver(host, port, batch_size=batch_size, scan_seconds=scan_seconds))
    except RuntimeError as missing:
        console.print(f"[red]{missing}[/red]")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        pass


@app.command()
def simulate(
    devices: int = typer.Option(5, help="模拟设备数（演示监测点）/ number of demo devices"),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(9212),
    seconds: float = typer.Option(60.0, help="运行时长 / how long to run"),
    seed: int = typer.Option(212),
) -> None:
    """以演示监测点的 MN 和密码运行模拟设备 / run simulated CEMS devices as the demo points."""
    from ingot.monitoring.demo import run_demo_fleet

    try:
        summary = asyncio.run(run_demo_fleet(host, port, devices, seconds=seconds, seed=seed))
    except RuntimeError as failure:
        console.print(f"[red]{failure}[/red]")
        raise typer.Exit(2) from None
    console.print(summary)


@app.command()
def query(
    point: int = typer.Option(..., help="监测点 ID / point id"),
    start: str = typer.Option(None, help="ISO 8601 带时区 / with zone"),
    end: str = typer.Option(None, help="ISO 8601 带时区 / with zone"),
    kind: str = typer.Option("minute", help="rtd | minute | hour | day"),
    aggregation: str = typer.Option("none", help="none | hour | day"),
    pollutant: str = typer.Option(None),
    output: str = typer.Option("table", "--format", help="table | json"),
) -> None:
    """查询监测数据 / query measurements of one point."""
    from ingot.core.db import unit_of_work
    from ingot.monitoring import service
    from ingot.monitoring.api import plain

    try:
        with unit_of_work() as session:
            rows = service.query_measurements(session, SYSTEM, service.SeriesQuery(
                point, pollutant, kind, _moment(start, "start"), _moment(end, "end"), aggregation))
    except DomainError as error:
        _fail(error)
    rows = plain(rows)
    if output == "json":
        for row in rows:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    columns = ["pollutant", "kind", "data_time", "rtd", "avg", "min", "max", "zs_avg", "flag", "valid"]
    columns = [column for column in columns if any(column in row for row in rows)] or columns
    table = Table(*columns)
    for row in rows:
        table.add_row(*(str(row.get(column, "")) if row.get(column) is not None else "" for column in columns))
    console.print(table)


@app.command()
def retention(days: int = typer.Option(..., help="保留天数 / keep this many days")) -> None:
    """删除超过保留期的监测数据和原始报文 / delete measurements and raw packets older than N days."""
    from ingot.core.db import unit_of_work
    from ingot.monitoring.storage import apply_retention

    try:
        with unit_of_work() as session:
            counts = apply_retention(session, days)
    except DomainError as error:
        _fail(error)
    console.print(f"deleted {counts['measurements']} measurements, {counts['packets']} raw packets")


@app.command("scan-alarms")
def scan_alarms_command() -> None:
    """扫描数据缺失与仪器状态报警 / scan for missing-data and prolonged-flag alarms once."""
    from ingot.core.db import unit_of_work
    from ingot.monitoring.service import scan_alarms

    with unit_of_work() as session:
        opened = scan_alarms(session)
        console.print(f"opened {len(opened)} alarm(s)")
