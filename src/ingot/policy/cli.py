"""`ingot policy list|show|coverage` and `ingot check`: the catalogue and the compliance engine from a terminal.

The command line is the operator's tool: it evaluates the whole registry (no login, no scope), like the database
commands beside it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ingot.core.errors import DomainError, InvalidInput
from ingot.policy import runs

app = typer.Typer(help="政策目录与合规检查 / policy catalogue and compliance", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

FORMATS = ("table", "json", "xlsx")


def _fail(error: DomainError) -> None:
    err_console.print(f"[red]错误 / error[/red] {escape(f'[{error.code}]')}: {escape(error.message_zh)} / {escape(error.message_en)}",
                      highlight=False)
    raise typer.Exit(code=2)


def _catalogue():
    return runs.catalogue()


@app.command("list")
def list_command(
    seed: Optional[str] = typer.Option(None, help="种子文件（如 003 或 003_af69fe513fa759e2.txt）/ seed document"),
    kind: Optional[str] = typer.Option(None, help="条款类别 / provision kind, e.g. access_standard"),
    checkable: Optional[bool] = typer.Option(None, "--checkable/--qualitative", help="仅可检查 / 仅定性条款"),
    as_json: bool = typer.Option(False, "--json", help="输出 JSON / print JSON"),
) -> None:
    """列出政策条款 / list the catalogue's provisions."""
    try:
        cat = _catalogue()
        provisions = runs.select_provisions(cat, seed=seed, kind=kind, checkable=checkable)
    except DomainError as error:
        _fail(error)
    if as_json:
        typer.echo(json.dumps([runs.provision_summary(p) for p in provisions], ensure_ascii=False, indent=2))
        return
    table = Table("编号 id", "类别 kind", "可检查 checkable", "条文 section", "名称 title", title=f"{len(provisions)} 条 / provisions")
    for provision in provisions:
        table.add_row(provision.id, provision.kind, "✓" if provision.checkable else "—", provision.citation.section,
                      f"{provision.title.zh}\n{provision.title.en}")
    console.print(table)


@app.command("show")
def show_command(rule_id: str = typer.Argument(..., help="条款编号 / provision id"),
                 as_json: bool = typer.Option(False, "--json", help="输出 JSON / print JSON")) -> None:
    """显示条款及其原文出处与分期参数 / show a provision with its quoted citation and dated parameters."""
    try:
        provision = _catalogue().provision(rule_id)
    except DomainError as error:
        _fail(error)
    if as_json:
        typer.echo(json.dumps(runs.provision_detail(provision), ensure_ascii=False, indent=2))
        return
    console.print(f"[bold]{provision.id}[/bold] · {provision.kind} · {'可检查 checkable' if provision.checkable else '定性 qualitative'}")
    console.print(f"{provision.title.zh} / {provision.title.en}")
    console.print(f"出处 source: {provision.citation.seed} {provision.citation.section}", highlight=False)
    console.print(f"原文 quote: 「{provision.citation.quote}」", highlight=False)
    effective = provision.effective
    console.print(f"有效期 effective: {effective.from_ or '—'} – {effective.until or '—'}", highlight=False)
    scope = provision.scope.model_dump(exclude_none=True)
    console.print(f"适用范围 scope: {json.dumps(scope, ensure_ascii=False)}", highlight=False)
    if provision.parameters:
        table = Table("参数 parameter", "单位 unit", "自 from", "值 value", "说明 description", title="参数 / parameters")
        for name, spec in provision.parameters.items():
            for dated in spec.values:
                table.add_row(name, spec.unit, dated.from_.isoformat(), str(dated.value), f"{spec.description.zh} / {spec.description.en}")
        console.print(table)
    if provision.check:
        console.print(f"检查 check: {json.dumps(provision.check.model_dump(exclude_none=True), ensure_ascii=False)}", highlight=False)
    if provision.note:
        console.print(f"说明 note: {provision.note}", highlight=False)


@app.command("coverage")
def coverage_command(as_json: bool = typer.Option(False, "--json", help="输出 JSON / print JSON")) -> None:
    """五份文件每一条款的编码状态 / every provision of the five documents with its state."""
    from ingot.policy.coverage import coverage, coverage_summary

    try:
        rows = coverage(_catalogue())
    except DomainError as error:
        _fail(error)
    if as_json:
        typer.echo(json.dumps({"provisions": [row.__dict__ for row in rows], "summary": coverage_summary(rows)}, ensure_ascii=False, indent=2))
        return
    table = Table("种子 seed", "条文 section", "编号 id", "类别 kind", "状态 state", "用例 cases", "名称 title")
    for row in rows:
        table.add_row(row.seed, row.section, row.rule_id, row.kind, row.state, str(row.cases), row.title_zh)
    console.print(table)
    summary = Table("种子 seed", "已编码并测试 encoded & tested", "已编码未测试 untested", "定性 qualitative", title="汇总 / summary")
    for seed, states in sorted(coverage_summary(rows).items()):
        summary.add_row(seed, str(states["encoded_and_tested"]), str(states["encoded_untested"]), str(states["qualitative"]))
    console.print(summary)


def check_command(
    as_of: str = typer.Option(..., "--as-of", help="评估日期 YYYY-MM-DD / evaluation date"),
    output_format: str = typer.Option("table", "--format", help="table | json | xlsx"),
    overrides: list[str] = typer.Option([], "--set", help="参数覆盖（假设分析）/ what-if override RULE.PARAM=VALUE"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="输出文件 / output file"),
    store: bool = typer.Option(False, "--store", help="保存为合规运行记录 / store as a compliance run"),
    only: Optional[str] = typer.Option(None, "--only", help="仅显示某一结论 / show one verdict only: fail, missing_data, ..."),
) -> None:
    """按日期评估登记的全部生产单元 / evaluate every registered unit against the catalogue as of a date."""
    from ingot.core.auth import SYSTEM
    from ingot.core.db import unit_of_work
    from ingot.policy import export
    from ingot.policy.engine import VERDICTS, diff_results, evaluate

    try:
        if output_format not in FORMATS:
            raise InvalidInput(f"未知的输出格式：{output_format}（可选 {', '.join(FORMATS)}）",
                               f"unknown format {output_format!r}; one of {', '.join(FORMATS)}", field="format", code="unknown_format")
        if output_format == "xlsx" and output is None:
            raise InvalidInput("xlsx 格式须用 -o 指定输出文件", "the xlsx format needs an output file (-o FILE)", field="output", code="output_required")
        if only is not None and only not in VERDICTS:
            raise InvalidInput(f"未知的结论：{only}（可选 {', '.join(VERDICTS)}）", f"unknown verdict {only!r}; one of {', '.join(VERDICTS)}",
                               field="only", code="unknown_verdict")
        day = runs.parse_as_of(as_of, field="as-of")
        parsed = runs.parse_overrides(overrides)
        with unit_of_work() as session:
            units = runs.adapter.registry_units(session, day)
            result = evaluate(runs.catalogue(), units, day, parsed)
            diff = diff_results(evaluate(runs.catalogue(), units, day), result) if parsed else None
            stored = runs.create_run(session, SYSTEM, day, parsed, label="ingot check") if store else None
    except DomainError as error:
        _fail(error)
    views = [runs.verdict_view(verdict, result.units) for verdict in result.verdicts if only is None or verdict.verdict == only]
    summary = {
        "as_of": day.isoformat(), "catalogue_hash": result.catalogue_hash, "overrides": [str(o) for o in parsed],
        "unit_count": len(result.units), "counts": dict(sorted(result.counts().items())), "id": stored["id"] if stored else None,
    }
    if output_format == "xlsx":
        output.write_bytes(export.verdicts_workbook(summary, views))
        if diff is not None:
            what_if_path = output.with_name(output.stem + ".what-if.xlsx")
            what_if_path.write_bytes(export.what_if_workbook(diff, summary["overrides"]))
            err_console.print(f"假设分析 / what-if: {what_if_path}", highlight=False)
        err_console.print(f"已写入 / written: {output} ({len(views)} 条结论 / verdicts)", highlight=False)
        return
    if output_format == "json":
        document = {**summary, "verdicts": views}
        if diff is not None:
            document["what_if"] = runs.what_if_view(diff)
        text = json.dumps(document, ensure_ascii=False, indent=2)
        if output is not None:
            output.write_text(text + "\n", encoding="utf-8")
            err_console.print(f"已写入 / written: {output}", highlight=False)
        else:
            typer.echo(text)
        return
    target = Console(file=output.open("w", encoding="utf-8"), width=200) if output is not None else console
    _print_table(target, summary, views, diff)


def _shown(values: dict) -> str:
    return ", ".join(f"{name}={'—' if value is None else value}" for name, value in values.items())


def _print_table(target: Console, summary: dict, views: list[dict], diff) -> None:
    counts = " · ".join(f"{verdict} {count}" for verdict, count in summary["counts"].items())
    target.print(f"评估日期 as of {summary['as_of']} · 目录 catalogue {summary['catalogue_hash'][:12]} · "
                 f"{summary['unit_count']} 个单元 units · {counts}", highlight=False)
    if summary["overrides"]:
        target.print(f"参数覆盖 overrides: {', '.join(summary['overrides'])}", highlight=False)
    if summary["id"]:
        target.print(f"已保存运行 stored run #{summary['id']}", highlight=False)
    table = Table("条款 rule", "对象 subject", "结论 verdict", "实测 measured", "限值 threshold", "期限 due", "出处 source")
    for view in views:
        subject = view["subject"] if not view["unit_name"] else f"{view['subject']} {view['enterprise_name']} {view['unit_name']}"
        verdict = view["verdict"] if not view.get("excluded") else f"{view['verdict']}\n{runs.exclusion_text(view['excluded'])}"
        table.add_row(view["rule_id"], subject, verdict, _shown(view["measured"]), _shown(view["thresholds"]), view["due"] or "",
                      f"{view['citation']['seed'][:3]} {view['citation']['section']}")
    target.print(table)
    if diff is not None:
        changes = Table("条款 rule", "对象 subject", "基线 before", "假设 after", title="假设分析 / what-if")
        for item in diff.newly_failing + diff.newly_passing + diff.other_changes:
            changes.add_row(item.rule_id, item.subject, item.before, item.after)
        target.print(changes)
        affected = ", ".join(f"{product} {amount} t/a" for product, amount in sorted(diff.capacity_affected.items())) or "—"
        target.print(f"新增不合规 newly failing {len(diff.newly_failing)} · 新增合规 newly passing {len(diff.newly_passing)} · "
                     f"受影响产能 capacity affected: {affected}", highlight=False)
