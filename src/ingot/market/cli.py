"""`ingot market`: the centre's operations from the command line (sessions, end of day, reconciliation, checks)."""
from __future__ import annotations

from datetime import date, datetime

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ingot.core.auth import SYSTEM
from ingot.core.db import unit_of_work
from ingot.core.errors import DomainError

app = typer.Typer(help="交易中心 / trading centre operations", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)
ACTIONS = ("open_auction", "uncross", "continuous", "break", "close")
sessions_app = typer.Typer(help="交易时间表 / the products' session timetable", no_args_is_help=True)
app.add_typer(sessions_app, name="sessions")


def _fail(error: DomainError) -> None:
    err_console.print(f"[red]错误 / error[/red] {escape('[' + error.code + ']')}: {escape(error.message_zh)} / "
                      f"{escape(error.message_en)}")
    raise typer.Exit(code=2)


def _day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        err_console.print(f"[red]错误 / error[/red]: 日期须为 YYYY-MM-DD / a date is YYYY-MM-DD: {value!r}")
        raise typer.Exit(code=2) from None


@app.command("products")
def products_command() -> None:
    """列出交易品种及现行规则 / list products and the rules in force."""
    from ingot.core.timeutil import utcnow
    from ingot.market import products
    from ingot.market.common import trading_day

    with unit_of_work() as session:
        table = Table("代码 code", "名称 name", "每手 lot", "最小变动 tick", "涨跌停 band", "最大手数 max", "版本 version")
        for product in products.list_products(session):
            version = products.version_in_force(session, product, trading_day(utcnow()))
            table.add_row(
                product.code, f"{product.name_zh} / {product.name_en}",
                f"{product.units_per_lot} {product.price_unit}",
                f"{version.tick_fen} 分" if version else "-", f"{version.band_ppm / 10_000:g} %" if version else "-",
                str(version.max_order_lots) if version else "-", str(version.version) if version else "-")
        console.print(table)


def _yaml(path: str) -> dict:
    import yaml
    from pathlib import Path

    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        err_console.print(f"[red]错误 / error[/red]: 无法读取 / cannot read {path}: {error}")
        raise typer.Exit(code=2) from None
    if not isinstance(document, dict):
        err_console.print(f"[red]错误 / error[/red]: {path} 须为 YAML 映射 / must be a YAML mapping")
        raise typer.Exit(code=2)
    return document


@app.command("product-add")
def product_add_command(path: str = typer.Argument(..., help="品种定义 YAML / product definition (fields of POST /api/market/products)")) -> None:
    """挂牌新品种 / list a new product from a YAML definition."""
    from ingot.market import products

    document = _yaml(path)
    rules = document.pop("rules", None) or {}
    effective_on = _day(str(document.pop("effective_on"))) if document.get("effective_on") else None
    try:
        with unit_of_work() as session:
            product = products.create_product(session, SYSTEM, rules=rules, effective_on=effective_on, **document)
            console.print(f"已挂牌 / listed {product.code}")
    except TypeError as error:
        err_console.print(f"[red]错误 / error[/red]: 字段不正确 / wrong fields: {error}")
        raise typer.Exit(code=2) from None
    except DomainError as error:
        _fail(error)


@app.command("version-add")
def version_add_command(
    code: str = typer.Argument(..., help="品种代码 / product code"),
    path: str = typer.Argument(..., help="规则 YAML / rules YAML"),
    effective_on: str = typer.Option(..., help="生效日 YYYY-MM-DD（晚于今天）/ effective date, after today"),
) -> None:
    """公告新规则版本 / notice a new version of a product's rules."""
    from ingot.market import products

    try:
        with unit_of_work() as session:
            version = products.announce_version(session, SYSTEM, code, effective_on=_day(effective_on), rules=_yaml(path))
            console.print(f"{code} v{version.version} 自 {version.effective_on} 起生效 / in force from {version.effective_on}")
    except DomainError as error:
        _fail(error)


@app.command("session")
def session_command(
    action: str = typer.Argument(..., help="open_auction | uncross | continuous | break | close"),
    product: str = typer.Option(None, help="品种代码，缺省为全部 / product code, default all"),
) -> None:
    """开闭市与集合竞价 / open and close sessions, run the opening call auction."""
    from ingot.market import trading

    if action not in ACTIONS:
        err_console.print(f"[red]错误 / error[/red]: 阶段指令须为 {' | '.join(ACTIONS)} / action must be one of {', '.join(ACTIONS)}")
        raise typer.Exit(code=2)
    try:
        with unit_of_work() as session:
            for row in trading.session_control(session, SYSTEM, action, product):
                console.print(f"{row['product']}: {action} · 成交 trades {len(row['trades'])}")
    except DomainError as error:
        _fail(error)


def _moment(value: str | None) -> datetime | None:
    """An ISO date-time; without a zone it is Beijing time."""
    from ingot.core.timeutil import SHANGHAI

    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        err_console.print(f"[red]错误 / error[/red]: 时间须为 ISO 格式，如 2026-11-23T09:00 或 2026-11-23T01:00+00:00 / "
                          f"a time is ISO 8601, e.g. 2026-11-23T09:00 (Beijing) or 2026-11-23T01:00+00:00: {value!r}")
        raise typer.Exit(code=2) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=SHANGHAI)


def _local(iso: str | None) -> str:
    from ingot.core.timeutil import shown

    return shown(datetime.fromisoformat(iso)) if iso else "-"


@sessions_app.command("run")
def sessions_run_command(at: str = typer.Option(None, help="按此时刻运行（ISO，无时区为北京时间），缺省为现在 / run as of this time "
                                                           "(ISO; Beijing time without a zone), default now")) -> None:
    """按交易时间表切换各品种的交易阶段 / bring every product's phase in line with its timetable."""
    from ingot.market import timetable

    try:
        with unit_of_work() as session:
            rows = timetable.run_schedule(session, timetable.SCHEDULER, _moment(at))
    except DomainError as error:
        _fail(error)
    for row in rows:
        actions = ", ".join(row["actions"]) or "无指令 no command"
        note = f" · {row['note']}" if row["note"] else ""
        console.print(f"{row['product']}: {row['phase_before']} → {row['phase']} ({actions}) · 应处 scheduled "
                      f"{row['scheduled'] or '-'} 自 since {_local(row['since'])}{note}", soft_wrap=True)


@sessions_app.command("show")
def sessions_show_command(at: str = typer.Option(None, help="按此时刻（ISO）/ as of this time (ISO)")) -> None:
    """各品种交易时间表、当前阶段与下次开市时间 / each product's timetable, phase and next opening."""
    from ingot.market import timetable

    with unit_of_work() as session:
        rows = timetable.timetable(session, timetable.SCHEDULER, _moment(at))
    table = Table("品种 product", "阶段 phase", "应处阶段 scheduled", "集合竞价 auction", "交易时段 sessions", "下次开市 next opening")
    for row in rows:
        table.add_row(row["product"], row["phase"] + (" (暂停 suspended)" if row["suspended"] else ""),
                      row["scheduled"] or "-", row["opening_auction"] or "-", ", ".join(row["sessions"]),
                      _local(row["next_opening"]))
    console.print(table)


@app.command("days")
def days_command(limit: int = typer.Option(30, min=1, max=1000, help="显示条数 / how many")) -> None:
    """历史交易日：状态、日终时间与执行人、结算价、资金对账 / past trading days: state, end of day, prices, reconciliation."""
    from ingot.market import trading_days

    with unit_of_work() as session:
        rows = [trading_days.trading_day_view(row) for row in trading_days.list_trading_days(session, SYSTEM, limit=limit)]
    table = Table("交易日 day", "状态 state", "日终 ended", "执行人 by", "结算价 prices", "结算单 statements", "资金对账 reconciliation")
    for row in rows:
        reconciliation = row["reconciliation"]
        table.add_row(row["day"], row["state"], _local(row["ended_at"]), row["ended_by"] or "-",
                      str(len(row["settlement_prices"])), str(row["statements"]),
                      f"ok {reconciliation.get('ok', 0)} · break {reconciliation.get('break', 0)} · "
                      f"missing {reconciliation.get('missing', 0)}" if reconciliation else "-")
    console.print(table)


@app.command("eod")
def end_of_day_command(day: str = typer.Option(None, help="交易日 YYYY-MM-DD，缺省为今天（北京时间）/ trading day")) -> None:
    """日终：收市、结算价、结算单、不变量检查、快照 / end of day: close, settlement prices, statements, checks, snapshot."""
    from ingot.market import trading

    try:
        with unit_of_work() as session:
            result = trading.end_of_day(session, SYSTEM, _day(day))
    except DomainError as error:
        _fail(error)
    table = Table("品种 product", "结算价（分）settlement (fen)", "方法 method")
    for code, price in result["settlement_prices"].items():
        table.add_row(code, str(price["price_fen"]), price["method"])
    console.print(table)
    console.print(f"交易日 day {result['day']} · 结算单 statements {result['statements']} · 台账平衡 ledger balanced")
    reconciliation = result["reconciliation"]
    console.print(f"资金对账 cash reconciliation: 相符 ok {reconciliation['ok']} · 不符 break {reconciliation['break']} · "
                  f"缺银行余额 missing {reconciliation['missing']}")
    if reconciliation["breaks"]:
        err_console.print(f"[red]资金对账不符 / cash break[/red]: {escape(', '.join(reconciliation['breaks']))}")
        raise typer.Exit(code=1)


@app.command("reconcile")
def reconcile_command(day: str = typer.Argument(..., help="YYYY-MM-DD")) -> None:
    """资金对账（台账 vs 托管银行）/ cash reconciliation, ledger against the custodian bank."""
    from ingot.market import accounts
    from ingot.market.models import TradingAccount

    try:
        with unit_of_work() as session:
            rows = accounts.reconcile_cash(session, SYSTEM, _day(day))
            table = Table("账户 account", "台账 ledger", "银行 bank", "未匹配 unmatched", "状态 status")
            for row in rows:
                table.add_row(session.get(TradingAccount, row.account_id).engine_id, str(row.ledger_fen),
                              "-" if row.bank_fen is None else str(row.bank_fen), str(row.unmatched_lines), row.status)
    except DomainError as error:
        _fail(error)
    console.print(table)
    if any(row.status == "break" for row in rows):
        raise typer.Exit(code=1)


@app.command("check")
def check_command() -> None:
    """检查台账与撮合核心的不变量 / assert the ledger's and the matching core's invariants."""
    from ingot.market import gateway, ledger

    with unit_of_work() as session:
        try:
            ledger.check_invariants(session)
            gateway.read_core(session, lambda core: core.check_invariants())
        except AssertionError as broken:
            err_console.print(f"[red]不变量被破坏 / invariant broken[/red]: {broken}")
            raise typer.Exit(code=1) from None
    console.print("台账平衡，撮合核心一致 / ledger balanced, matching core consistent")


@app.command("snapshot")
def snapshot_command() -> None:
    """保存撮合核心快照 / store a snapshot of the matching core."""
    from ingot.market import gateway

    with unit_of_work() as session:
        row = gateway.snapshot(session)
        console.print(f"快照 snapshot @ {row.sequence} · {row.state_hash}")


@app.command("demo")
def demo_command() -> None:
    """载入交易中心演示数据 / load the trading centre's demo data."""
    from ingot.market.demo import load_market_demo

    with unit_of_work() as session:
        users = load_market_demo(session)
    table = Table("用户 user", "密码 password", "角色 role", "范围 scope")
    for username, password, role, scope in users:
        table.add_row(username, password, role, scope)
    console.print(table)
