"""The `ingot` command line. Commands call services; each context contributes its own sub-app."""
from __future__ import annotations

import importlib
import os
import sys

import typer
from rich.console import Console
from rich.table import Table

from ingot.core.errors import DomainError

app = typer.Typer(help="Ingot：有色及战略金属产业政策平台 / policy platform for strategic and non-ferrous metals", no_args_is_help=True)
db_app = typer.Typer(help="数据库 / database schema", no_args_is_help=True)
users_app = typer.Typer(help="用户管理 / users", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
console = Console()
err_console = Console(stderr=True)

# (module, attribute, command name): each context's Typer sub-app.
SUB_APPS = (
    ("ingot.monitoring.hj212.cli", "app", "hj212"),
    ("ingot.monitoring.cli", "app", "monitor"),
    ("ingot.policy.cli", "app", "policy"),
    ("ingot.market.cli", "app", "market"),
)
# (module, function, command name): single commands contributed by contexts.
COMMANDS = (
    ("ingot.registry.cli", "import_command", "import"),
    ("ingot.registry.cli", "export_command", "export"),
    ("ingot.policy.cli", "check_command", "check"),
)


def fail(error: DomainError) -> None:
    err_console.print(f"[red]错误 / error[/red]: {error.message_zh} / {error.message_en}")
    raise typer.Exit(code=2)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("heads", help="目标版本 / target revision")) -> None:
    """把数据库迁移到最新结构 / migrate the database schema (Alembic)."""
    from ingot.core.config import get_settings
    from ingot.core.migrate import upgrade

    upgrade(revision=revision)
    console.print(f"数据库已迁移至 {revision} / database upgraded: {get_settings().database_url}")


@users_app.command("create")
def users_create(
    username: str,
    role: str = typer.Option(..., help="admin | regulator | enterprise | auditor"),
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
    display_name: str = typer.Option("", help="显示名 / display name"),
    division: str = typer.Option(None, help="监管人员的行政区划代码 / regulator's GB/T 2260 division code"),
    enterprise_id: int = typer.Option(None, help="企业用户所属企业 ID / enterprise user's enterprise id"),
) -> None:
    """创建用户 / create a user."""
    from ingot.core.auth import create_user
    from ingot.core.db import unit_of_work

    try:
        with unit_of_work() as session:
            user = create_user(
                session, username=username, password=password, role=role, display_name=display_name,
                division_code=division, enterprise_id=enterprise_id,
            )
            console.print(f"已创建用户 / created user {user.username} ({user.role})")
    except DomainError as error:
        fail(error)


@users_app.command("list")
def users_list() -> None:
    """列出用户 / list users."""
    from ingot.core.auth import list_users
    from ingot.core.db import unit_of_work

    table = Table("用户名 username", "角色 role", "范围 scope", "状态 state")
    with unit_of_work() as session:
        for user in list_users(session):
            scope = user.division_code or (f"enterprise {user.enterprise_id}" if user.enterprise_id else "*")
            table.add_row(user.username, user.role, scope, "停用 disabled" if user.disabled else "启用 active")
    console.print(table)


@users_app.command("disable")
def users_disable(username: str) -> None:
    """停用用户 / disable a user."""
    from ingot.core.auth import set_disabled
    from ingot.core.db import unit_of_work

    try:
        with unit_of_work() as session:
            set_disabled(session, username, True)
        console.print(f"已停用 / disabled {username}")
    except DomainError as error:
        fail(error)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="监听地址 / bind address"),
    port: int = typer.Option(8000, help="端口 / port"),
    workers: int = typer.Option(1, min=1, max=64, help="服务进程数（每个进程用一个 CPU 核）/ server processes, one CPU "
                                                       "core each"),
    market_sessions: bool = typer.Option(
        True, "--market-sessions/--no-market-sessions",
        help="按交易时间表自动开闭市（间隔 INGOT_MARKET_SESSION_SECONDS，0 为关闭）/ run the market's session timetable "
             "(every INGOT_MARKET_SESSION_SECONDS seconds, 0 disables)"),
) -> None:
    """启动 Web 界面与 API / serve the web UI and the API.

    --workers N 启动 N 个服务进程 / runs N server processes on the port (uvicorn's workers): one Python process serves
    on one core only. They share nothing but the database: each keeps its own copy of the matching core, brought
    level with the committed journal before every command (docs/market-engine.md), and the live stream polls the
    database, so every process sees every other's trades. The session timetable runs once, in this process."""
    import uvicorn

    from ingot.api.app import create_app
    from ingot.core.config import get_settings

    scheduler = None
    interval = get_settings().market_session_seconds
    if market_sessions and interval > 0:
        from ingot.market.timetable import SessionScheduler

        scheduler = SessionScheduler(interval).start()
        console.print(f"交易时间表每 {interval:g} 秒执行 / market session timetable runs every {interval:g} s")
    try:
        if workers > 1:
            uvicorn.run("ingot.api.app:create_app", factory=True, workers=workers, host=host, port=port,
                        log_level="info")
        else:
            uvicorn.run(create_app(), host=host, port=port, log_level="info")
    finally:
        if scheduler is not None:
            scheduler.stop()


@app.command()
def demo(
    serve_after: bool = typer.Option(True, "--serve/--no-serve", help="加载后启动服务 / serve after loading"),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    live: bool = typer.Option(True, "--live/--no-live", help="同时启动 HJ 212 接收端和模拟设备 / also run the HJ 212 receiver and a simulated fleet"),
    monitor_port: int = typer.Option(9212, help="HJ 212 接收端口 / HJ 212 receiver port"),
    devices: int = typer.Option(0, min=0, help="模拟设备数，0 为每个演示监测点一台 / simulated CEMS devices, 0 for one per demo point"),
    market_sessions: bool = typer.Option(True, "--market-sessions/--no-market-sessions",
                                         help="按交易时间表自动开闭市 / run the market's session timetable"),
) -> None:
    """迁移数据库、加载演示区域（登记、在线监测、交易中心）并启动 / migrate, load the demo region and serve.

    The demo region is the registry's fictional industry, a stack monitoring point with demo limits at every smelter
    site, and the trading centre with its members, warehouses, receipts and a first day of trades. Every loader is
    idempotent, so running the command again only serves what is there.
    """
    from ingot.core.db import unit_of_work
    from ingot.core.migrate import upgrade
    from ingot.market.demo import load_market_demo
    from ingot.monitoring.demo import load_monitoring_demo
    from ingot.registry.demo import load_demo

    upgrade()
    with unit_of_work() as session:
        logins = load_demo(session)
        points = load_monitoring_demo(session)
        logins += load_market_demo(session)
    table = Table("用户名 username", "密码 password", "角色 role", "范围 scope", title="演示账号 / demo logins")
    for login in logins:
        table.add_row(*(str(part) for part in login))
    console.print(table)
    console.print(f"在线监测点 / monitoring points: {len(points)}")
    if not serve_after:
        return
    monitoring = None
    if live:
        from ingot.monitoring.demo import start_live_monitoring

        fleet = min(devices, len(points)) if devices else len(points)
        try:
            monitoring = start_live_monitoring(host, monitor_port, fleet)
        except (OSError, RuntimeError) as problem:
            err_console.print(f"[red]错误 / error[/red]: HJ 212 接收端无法在 {host}:{monitor_port} 启动 / the HJ 212 receiver "
                              f"cannot start on {host}:{monitor_port} ({problem}); 请用 --monitor-port 换端口或 --no-live / "
                              "choose another --monitor-port or pass --no-live")
            raise typer.Exit(code=2) from None
        console.print(f"HJ 212 接收端 / receiver: {host}:{monitor_port}，模拟设备 / simulated devices: {fleet}")
    console.print(f"Web 界面 / web UI: http://{host}:{port}/   API: http://{host}:{port}/docs")
    try:
        serve(host=host, port=port, workers=1, market_sessions=market_sessions)
    finally:
        if monitoring is not None:
            monitoring.stop()


def _mount_contexts() -> None:
    for module_name, attribute, name in SUB_APPS:
        app.add_typer(getattr(importlib.import_module(module_name), attribute), name=name)
    for module_name, attribute, name in COMMANDS:
        app.command(name)(getattr(importlib.import_module(module_name), attribute))


_mount_contexts()


def main() -> None:
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    try:
        app()
    except DomainError as error:
        err_console.print(f"错误 / error: {error.message_zh} / {error.message_en}")
        sys.exit(2)


if __name__ == "__main__":
    main()
