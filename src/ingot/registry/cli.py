"""Registry commands: `ingot import FILE --entity …` and `ingot export ENTITY --format … -o FILE`.

`import_command` and `export_command` are plain Typer command functions; the `ingot` CLI mounts them as top-level
commands, and `app` offers the same two under a `registry` sub-app.
"""
from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from ingot.core.auth import SYSTEM
from ingot.core.errors import DomainError, ImportRejected

app = typer.Typer(help="产业登记 / industry registry: import and export", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


def _print_report(error: ImportRejected) -> None:
    err_console.print(f"[red]{error.message_zh}[/red] / {error.message_en}")
    table = Table("行 row", "列 column", "原因", "reason", title="错误报告 / error report")
    for item in error.errors:
        table.add_row(str(item["row"]), str(item.get("column") or ""), item["msg"], item["msg_en"])
    err_console.print(table)


def import_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="要导入的 .xlsx 或 .csv 文件 / the .xlsx or .csv file"),
    entity: str = typer.Option(..., "--entity", "-e", help="enterprises | sites | units"),
) -> None:
    """从 .xlsx/CSV 导入登记数据（全部成功或全部不写入）/ import registry rows from .xlsx or CSV, all or nothing."""
    from ingot.core.db import unit_of_work
    from ingot.registry import importexport

    try:
        rows = importexport.read_rows(file.name, file.read_bytes())
        with unit_of_work() as session, Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console) as progress:
            task = progress.add_task(f"导入 / importing {entity}", total=len(rows))
            counts = importexport.import_rows(session, SYSTEM, entity, rows, progress=lambda n: progress.advance(task, n))
    except ImportRejected as rejected:
        _print_report(rejected)
        raise typer.Exit(code=1) from None
    except DomainError as error:
        err_console.print(f"[red]错误 / error[/red]: {error.message_zh} / {error.message_en}")
        raise typer.Exit(code=2) from None
    console.print(f"完成 / done: {counts['rows']} 行 rows, 新建 created {counts['created']}, 更新 updated {counts['updated']}")


def export_command(
    entity: str = typer.Argument(..., help="divisions | parks | groups | enterprises | sites | units"),
    format: str = typer.Option("xlsx", "--format", "-f", help="xlsx | csv"),
    output: Path = typer.Option(..., "--output", "-o", dir_okay=False, help="输出文件 / output file"),
) -> None:
    """把登记列表导出为 .xlsx 或 CSV / export a registry list to .xlsx or CSV."""
    from ingot.core.db import unit_of_work
    from ingot.registry import importexport

    try:
        with unit_of_work() as session:
            content = importexport.export_bytes(session, SYSTEM, entity, format)
    except DomainError as error:
        err_console.print(f"[red]错误 / error[/red]: {error.message_zh} / {error.message_en}")
        raise typer.Exit(code=2) from None
    output.write_bytes(content)
    console.print(f"已导出 / exported {entity} → {output}")


def template_command(
    entity: str = typer.Argument(..., help="enterprises | sites | units"),
    format: str = typer.Option("xlsx", "--format", "-f", help="xlsx | csv"),
    output: Path = typer.Option(..., "--output", "-o", dir_okay=False),
) -> None:
    """下载导入模板 / write the import template of an entity."""
    from ingot.registry import importexport

    try:
        output.write_bytes(importexport.template_bytes(entity, format))
    except DomainError as error:
        err_console.print(f"[red]错误 / error[/red]: {error.message_zh} / {error.message_en}")
        raise typer.Exit(code=2) from None
    console.print(f"模板 / template → {output}")


app.command("import")(import_command)
app.command("export")(export_command)
app.command("template")(template_command)
