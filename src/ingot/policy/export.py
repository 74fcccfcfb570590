"""Excel exports of compliance results: verdicts of a run, the elimination list, cap headroom, a what-if diff.

Headers carry both languages so one file serves every reader; numbers stay exact (Decimal cells, never floats).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from io import BytesIO

from openpyxl import Workbook
from openpyxl.styles import Font

from ingot.policy.engine import EliminationEntry, HeadroomRow, WhatIfDiff, exclusion_text

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class Sheet:
    title: str
    headers: Sequence[str]
    rows: Iterable[Sequence]


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, (int, Decimal, date, str)):
        return value
    if isinstance(value, dict):
        return "; ".join(f"{key}={'' if item is None else item}" for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return "; ".join(str(item) for item in value)
    return str(value)


def _number(text: str | None):
    """Stored numbers come back as exact strings; the sheet gets them as Decimal cells."""
    if text in (None, ""):
        return None
    try:
        return Decimal(text)
    except ArithmeticError:
        return text


def workbook(sheets: Sequence[Sheet]) -> bytes:
    book = Workbook()
    book.remove(book.active)
    for sheet in sheets:
        page = book.create_sheet(sheet.title[:31])
        page.append(list(sheet.headers))
        for cell in page[1]:
            cell.font = Font(bold=True)
        for row in sheet.rows:
            page.append([_cell(value) for value in row])
        page.freeze_panes = "A2"
        for column, header in zip(page.columns, sheet.headers):
            page.column_dimensions[column[0].column_letter].width = max(12, min(48, len(header) + 4))
    buffer = BytesIO()
    book.save(buffer)
    return buffer.getvalue()


VERDICT_HEADERS = (
    "条款 rule", "条款名称 title", "结论 verdict", "原因 reason", "对象 subject", "企业 enterprise", "生产单元 unit",
    "省份 province", "市州 prefecture", "金属 metal", "工艺 process", "实测 measured", "限值 threshold", "单位 unit",
    "期限 due", "余量 headroom", "适用原因 why", "缺少数据 missing", "不适用原因 excluded by", "出处 seed", "条文 section",
    "原文 quote",
)


def _verdict_row(view: dict, lang: str) -> list:
    title = (view.get("title") or {}).get("en" if lang == "en" else "zh", "")
    return [
        view["rule_id"], title, view["verdict"], view["reason"], view.get("subject"), view.get("enterprise_name"), view.get("unit_name"),
        view.get("province"), view.get("prefecture"), view.get("metal"), view.get("process_type"), view.get("measured"),
        view.get("thresholds"), view.get("units"), view.get("due"), _number(view.get("headroom")), view.get("matched"),
        view.get("missing"), exclusion_text(view.get("excluded")), view["citation"]["seed"], view["citation"]["section"], view["citation"]["quote"],
    ]


def verdicts_workbook(summary: dict, verdicts: Sequence[dict], lang: str = "zh-CN") -> bytes:
    """A run (stored or live): a summary sheet and one row per verdict with its citation."""
    counts = summary.get("counts") or {}
    head = Sheet(
        "运行 run",
        ("项目 item", "值 value"),
        [
            ("评估日期 as of", summary.get("as_of")),
            ("目录哈希 catalogue hash", summary.get("catalogue_hash")),
            ("参数覆盖 overrides", summary.get("overrides") or []),
            ("运行编号 run id", summary.get("id")),
            ("生产单元数 units", summary.get("unit_count")),
            *[(f"结论 {verdict}", count) for verdict, count in sorted(counts.items())],
        ],
    )
    return workbook([head, Sheet("结论 verdicts", VERDICT_HEADERS, (_verdict_row(view, lang) for view in verdicts))])


def elimination_workbook(entries: Sequence[EliminationEntry], as_of: date) -> bytes:
    headers = ("期限 due", "已逾期 overdue", "企业 enterprise", "生产单元 unit", "省份 province", "市州 prefecture", "工艺 process",
               "产能 capacity (t/a)", "条款 rule", "条文 section", "原文 quote")
    rows = (
        (entry.due, "是 yes" if entry.overdue else "否 no", entry.enterprise_name, entry.unit_name, entry.province, entry.prefecture,
         entry.process_type, {product: str(amount) for product, amount in entry.capacities.items()}, entry.rule_id,
         entry.citation.section, entry.citation.quote)
        for entry in entries
    )
    return workbook([Sheet(f"淘汰清单 {as_of.isoformat()}", headers, rows)])


def headroom_workbook(rows: Sequence[HeadroomRow], as_of: date) -> bytes:
    headers = ("条款 rule", "类型 type", "分组 group", "指标 measure", "登记合计 total", "限值 limit", "单位 unit", "余量 headroom",
               "结论 verdict", "期限 due", "条文 section", "原文 quote")
    body = (
        (row.rule_id, row.check_type, row.group, row.measure, row.total, row.limit, row.unit, row.headroom, row.verdict, row.due,
         row.citation.section, row.citation.quote)
        for row in rows
    )
    return workbook([Sheet(f"产能余量 {as_of.isoformat()}", headers, body)])


def what_if_workbook(diff: WhatIfDiff, overrides: Sequence[str]) -> bytes:
    headers = ("条款 rule", "对象 subject", "基线 before", "假设 after", "原因 reason", "实测 measured", "限值 threshold", "条文 section")

    def rows(changes):
        return (
            (change.rule_id, change.subject, change.before, change.after, change.verdict.reason,
             {k: (None if v is None else str(v)) for k, v in change.verdict.measured.items()},
             {k: str(v) for k, v in change.verdict.thresholds.items()}, change.verdict.citation.section)
            for change in changes
        )

    summary = Sheet(
        "假设 scenario",
        ("项目 item", "值 value"),
        [("评估日期 as of", diff.scenario.as_of), ("参数覆盖 overrides", list(overrides)),
         ("新增不合规 newly failing", len(diff.newly_failing)), ("新增合规 newly passing", len(diff.newly_passing)),
         *[(f"受影响产能 capacity affected · {product} (t/a)", amount) for product, amount in sorted(diff.capacity_affected.items())],
         *[(f"解除产能 capacity relieved · {product} (t/a)", amount) for product, amount in sorted(diff.capacity_relieved.items())]],
    )
    return workbook([
        summary,
        Sheet("新增不合规 failing", headers, rows(diff.newly_failing)),
        Sheet("新增合规 passing", headers, rows(diff.newly_passing)),
        Sheet("其他变化 other", headers, rows(diff.other_changes)),
    ])


def noncompliance_workbook(counts: dict[str, dict[str, dict[str, int]]], as_of: date, verdicts: Sequence[str]) -> bytes:
    """One sheet per dimension (province, prefecture, metal, process type): verdict counts per value."""
    names = {"province": "省份 province", "prefecture": "市州 prefecture", "metal": "金属 metal", "process_type": "工艺 process"}
    sheets = [
        Sheet(names.get(dimension, dimension), (names.get(dimension, dimension), *verdicts),
              [(value or "—", *(row.get(verdict, 0) for verdict in verdicts)) for value, row in values.items()])
        for dimension, values in counts.items()
    ]
    return workbook([Sheet("评估 evaluation", ("项目 item", "值 value"), [("评估日期 as of", as_of)]), *sheets])
