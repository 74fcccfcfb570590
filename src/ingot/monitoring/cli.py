"""`ingot monitor …`: listen (receiver with the DB directory and sink), simulate, query, retention, scan-alarms.

The CLI is a local operator's tool and acts as the system principal; the web and API are where scope applies.
"""
from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime
from typing import Optional

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
    workers: int = typer.Option(1, min=1, max=64, help="接收进程数（共用端口，每个进程用一个 CPU 核）/ receiver "
                                                       "processes sharing the port, one CPU core each"),
    scan_seconds: float = typer.Option(60.0, min=0.1, help="缺失与状态报警扫描间隔（秒）/ alarm scan interval (s)"),
    retention_days: Optional[int] = typer.Option(
        None, min=1, help="保留天数：启动时及每隔 --retention-every 秒删除更早的监测数据和原始报文；缺省取环境变量 "
                          "INGOT_MONITORING_RETENTION_DAYS，均未设置则永久保留 / delete measurements and raw packets older "
                          "than this many days at start and every --retention-every seconds; default: "
                          "INGOT_MONITORING_RETENTION_DAYS, unset keeps everything"),
    retention_every: float = typer.Option(3600.0, min=1.0, help="保留期清理间隔（秒）/ retention interval (s)"),
    command_poll: float = typer.Option(1.0, min=0.05, help="查询待发命令的间隔（秒）/ how often queued commands are "
                                                            "picked up (s)"),
    command_timeout: float = typer.Option(30.0, min=0.1, help="等待设备执行命令的时限（秒）/ how long a device may take "
                                                               "to answer a command (s)"),
) -> None:
    """启动 HJ 212 接收服务（设备目录与写入均在数据库），并执行待发命令、报警扫描和保留期清理 / run the HJ 212 receiver
    against the database, with its jobs: queued platform commands, the alarm scan and retention.

    --workers N 启动 N 个共用端口的接收进程 / runs N receiver processes on the port (one core each): each sends the
    commands of the devices it holds; the first also runs the alarm scan and retention.

    保留期 / retention: --retention-days, else the environment variable INGOT_MONITORING_RETENTION_DAYS; with neither,
    everything is kept. It is applied at start and every --retention-every seconds, audited like `ingot monitor
    retention`."""
    from ingot.monitoring.jobs import JobSettings
    from ingot.monitoring.receiver import run_receiver_process
    from ingot.monitoring.service import serve_receiver, serve_receiver_workers
    from ingot.monitoring.settings import retention_days_setting

    if retention_days is None:
        try:
            retention_days = retention_days_setting()
        except ValueError as setting:
            console.print(f"[red]{setting}[/red]")
            raise typer.Exit(2) from None
    if workers > 1 and port == 0:
        console.print("[red]--port[/red]: 多个接收进程须共用一个固定端口 / several receiver processes need one fixed port, not 0")
        raise typer.Exit(2)
    jobs = JobSettings(scan_seconds=scan_seconds, retention_days=retention_days, retention_every_seconds=retention_every,
                       command_poll_seconds=command_poll, command_timeout_seconds=command_timeout)
    kept = f"{retention_days} days" if retention_days else "everything"
    processes = f", {workers} processes" if workers > 1 else ""
    console.print(f"HJ 212 receiver on {host}:{port}{processes}, retention: {kept} (Ctrl-C to stop)")
    try:
        if workers > 1:
            status = serve_receiver_workers(host, port, workers, batch_size=batch_size, jobs=jobs)
            if status:
                console.print("[red]接收进程意外退出 / a receiver process ended unexpectedly[/red]")
                raise typer.Exit(status)
        else:
            run_receiver_process(serve_receiver(host, port, batch_size=batch_size, jobs=jobs))
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


# --- commands the platform sends to devices ---------------------------------------------------------------------

command_app = typer.Typer(help="下发设备命令（校时、数据间隔、提取历史数据）/ commands sent to devices (time calibration, "
                               "intervals, history retrieval)", no_args_is_help=True)
app.add_typer(command_app, name="command")

_FINAL = ("refused", "executed", "failed", "timed_out", "offline")


def _acting_as(session, username: str | None):
    """The CLI acts as the system principal, or as a named user with that user's role and scope."""
    if username is None:
        return SYSTEM
    from sqlalchemy import select

    from ingot.core.auth import User, principal_of

    user = session.scalar(select(User).where(User.username == username))
    if user is None or user.disabled:
        console.print(f"[red]--user[/red]: 用户不存在或已停用 / no such enabled user: {username}")
        raise typer.Exit(2)
    return principal_of(user)


def _params(items: list[str]) -> dict[str, str]:
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            console.print(f"[red]--param[/red]: 须为 名称=取值 / must be NAME=VALUE: {item!r}")
            raise typer.Exit(2)
        params[name.strip()] = value.strip()
    return params


def _print_commands(rows: list[dict], output: str) -> None:
    from ingot.monitoring.api import plain

    rows = plain(rows)
    if output == "json":
        for row in rows:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    table = Table("id", "point", "cn", "params", "state", "QnRtn", "ExeRtn", "reply", "requested", "by")
    for row in rows:
        reply = row["reply"] or {}
        shown = reply.get("values") or ({"uploads": reply["uploads"]} if "uploads" in reply else {})
        table.add_row(str(row["id"]), str(row["point_id"]), f'{row["cn"]} {row["name_en"]}',
                      ";".join(f"{k}={v}" for k, v in row["params"].items()), row["state"],
                      "" if row["qn_rtn"] is None else f'{row["qn_rtn"]} {row["qn_rtn_text_en"] or ""}',
                      "" if row["exe_rtn"] is None else f'{row["exe_rtn"]} {row["exe_rtn_text_en"] or ""}',
                      ";".join(f"{k}={v}" for k, v in shown.items()) or row["detail"], row["requested_at"],
                      row["requested_by"])
    console.print(table)


@command_app.command("codes")
def command_codes() -> None:
    """可下发的命令及其字段 / the commands that can be sent and their fields."""
    from ingot.monitoring.commands import catalogue

    table = Table("CN", "命令 / command", "字段 / fields")
    for entry in catalogue():
        fields = "; ".join(f'{p["name"]}{"" if p["required"] else "?"}: {p["description_en"]}' for p in entry["params"])
        table.add_row(entry["cn"], f'{entry["name"]} / {entry["name_en"]}', fields)
    console.print(table)


@command_app.command("queue")
def command_queue(
    point: int = typer.Option(..., help="监测点 ID / point id"),
    cn: str = typer.Option(..., help="命令编码，见 `ingot monitor command codes` / command code"),
    param: list[str] = typer.Option([], "--param", "-p", help="字段 名称=取值，可重复 / field NAME=VALUE, repeatable"),
    user: Optional[str] = typer.Option(None, help="以该用户（及其权限范围）下发 / queue as this user, in that user's scope"),
    wait: bool = typer.Option(False, "--wait", help="等待接收服务执行完毕 / wait until the receiver has finished it"),
    wait_seconds: float = typer.Option(60.0, min=0.1, help="--wait 的最长等待（秒）/ how long --wait waits (s)"),
    output: str = typer.Option("table", "--format", help="table | json"),
) -> None:
    """排队一条设备命令，由接收服务（ingot monitor listen）下发 / queue a command; the receiver process sends it."""
    from ingot.core.db import unit_of_work
    from ingot.monitoring.commands import queue_command

    params = _params(param)
    try:
        with unit_of_work() as session:
            queued = queue_command(session, _acting_as(session, user), point, cn, params)
    except DomainError as error:
        _fail(error)
    if not wait:
        _print_commands([queued], output)
        return
    finished = _wait_for(queued["id"], wait_seconds)
    _print_commands([finished], output)
    if finished["state"] != "executed":
        raise typer.Exit(1)


def _wait_for(command_id: int, seconds: float) -> dict:
    import time

    from ingot.core.db import unit_of_work
    from ingot.monitoring.commands import get_command

    deadline = time.monotonic() + seconds
    while True:
        with unit_of_work() as session:
            current = get_command(session, SYSTEM, command_id)
        if current["state"] in _FINAL or time.monotonic() >= deadline:
            if current["state"] not in _FINAL:
                console.print(f"[yellow]命令 {command_id} 仍为 {current['state']}：接收服务是否在运行？/ command "
                              f"{command_id} is still {current['state']}: is `ingot monitor listen` running?[/yellow]")
            return current
        time.sleep(0.25)


@command_app.command("list")
def command_list(
    point: int = typer.Option(..., help="监测点 ID / point id"),
    state: Optional[str] = typer.Option(None, help="queued | sent | accepted | refused | executed | failed | "
                                                   "timed_out | offline"),
    limit: int = typer.Option(50, min=1, max=500),
    user: Optional[str] = typer.Option(None, help="以该用户的权限范围查看 / as this user, in that user's scope"),
    output: str = typer.Option("table", "--format", help="table | json"),
) -> None:
    """监测点的命令记录（新的在前）/ a point's commands, newest first."""
    from ingot.core.db import unit_of_work
    from ingot.monitoring.commands import list_commands

    try:
        with unit_of_work() as session:
            rows = list_commands(session, _acting_as(session, user), point, state=state, limit=limit)
    except DomainError as error:
        _fail(error)
    _print_commands(rows, output)


@command_app.command("show")
def command_show(
    command_id: int = typer.Argument(..., help="命令 ID / command id"),
    wait: bool = typer.Option(False, "--wait", help="等待执行完毕 / wait until it has finished"),
    wait_seconds: float = typer.Option(60.0, min=0.1),
    output: str = typer.Option("table", "--format", help="table | json"),
) -> None:
    """一条命令及设备的应答 / one command with the device's answers."""
    from ingot.core.db import unit_of_work
    from ingot.monitoring.commands import get_command

    try:
        with unit_of_work() as session:
            row = get_command(session, SYSTEM, command_id)
    except DomainError as error:
        _fail(error)
    if wait:
        row = _wait_for(command_id, wait_seconds)
    _print_commands([row], output)
