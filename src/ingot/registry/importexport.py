"""Registry import from .xlsx / CSV and export of any registry list to .xlsx / CSV.

Import is all-or-nothing: every row runs through the same service use cases as the API, each in its own
savepoint inside one enclosing savepoint; when any row fails, the enclosing savepoint is rolled back and the
caller gets an ImportRejected carrying every row's errors (row, column, reason in zh-CN and English).
Rows whose natural key already exists (enterprise by credit code, site by enterprise + name, unit by site + name)
update that record, so an export re-imported into the same registry changes nothing.

The template columns of each entity are defined in TEMPLATES; the downloadable .xlsx template describes them on
its 说明 guide sheet, and describe_template() serves the same description as data.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime
from typing import Callable, Iterable

from openpyxl import Workbook, load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from ingot.core.auth import Principal
from ingot.core.errors import DomainError, ImportRejected, InvalidInput
from ingot.registry import service
from ingot.registry import vocabulary as vocab
from ingot.registry.models import (
    Enterprise,
    EnterpriseGroup,
    Park,
    ProductionUnit,
    Site,
    UnitCapacity,
    UnitParameter,
    UnitStatusEvent,
)


@dataclass(frozen=True)
class Column:
    name: str
    required: bool
    zh: str
    en: str
    example: str


TEMPLATES: dict[str, tuple[Column, ...]] = {
    "enterprises": (
        Column("name", True, "企业名称", "enterprise name", "滇南示例冶炼有限公司"),
        Column("uscc", True, "统一社会信用代码（18 位，GB 32100-2015）", "unified social credit code (18 characters, GB 32100-2015)", "91350100M000100Y43"),
        Column("ownership", True, "所有制类型：" + "、".join(vocab.vocabulary().ownership_types), "ownership type: " + ", ".join(vocab.vocabulary().ownership_types), "private"),
        Column("division_code", True, "所在行政区划代码（GB/T 2260）", "GB/T 2260 division code of the registered address", "530100"),
        Column("park_name", False, "所在园区名称（须已登记）", "name of the industrial park (must already be registered)", ""),
        Column("group_name", False, "所属企业集团名称（须已登记）", "name of the enterprise group (must already be registered)", ""),
        Column("above_designated", False, "是否规模以上（是/否）", "above designated size (true/false)", "是"),
    ),
    "sites": (
        Column("enterprise_uscc", True, "所属企业的统一社会信用代码", "credit code of the owning enterprise", "91350100M000100Y43"),
        Column("name", True, "厂区名称", "site name", "一厂区"),
        Column("division_code", True, "厂区所在行政区划代码", "GB/T 2260 division code of the site", "530181"),
        Column("address", False, "详细地址", "street address", "工业园区示例路 1 号"),
    ),
    "units": (
        Column("enterprise_uscc", True, "所属企业的统一社会信用代码", "credit code of the owning enterprise", "91350100M000100Y43"),
        Column("site_name", True, "厂区名称（须已登记）", "site name (must already be registered)", "一厂区"),
        Column("name", True, "生产装置名称", "production unit name", "一系列电解槽"),
        Column("process_type", True, "工艺类型代码（见 vocabulary.yaml）", "process type code (see vocabulary.yaml)", "al_prebake_electrolysis"),
        Column("commissioned_on", False, "投产日期 YYYY-MM-DD", "commissioning date YYYY-MM-DD", "2012-05-01"),
        Column("approved_on", False, "核准（备案）日期 YYYY-MM-DD", "approval date YYYY-MM-DD", "2010-03-01"),
        Column("status", False, "状态：" + "、".join(vocab.vocabulary().unit_statuses), "status: " + ", ".join(vocab.vocabulary().unit_statuses), "operating"),
        Column("status_effective_on", False, "状态生效日期（填写状态时必填）", "date the status took effect (required with status)", "2012-05-01"),
        Column(
            "parameters", False, "技术参数：代码=数值，分号分隔，单位取词表规定；可加 @日期", "technical parameters: code=value separated by ';', in the vocabulary's unit; optional @date",
            "cell_current=400; cell_count=288",
        ),
        Column("capacities", False, "额定产能（t/a）：产品代码=数值，分号分隔；可加 @日期", "rated capacity in t/a: product=value separated by ';'; optional @date", "primary_aluminium=400000"),
        Column("facts_effective_from", False, "参数与产能的生效日期（缺省取投产日期）", "date parameters and capacities take effect (default: commissioning date)", "2012-05-01"),
    ),
}
IMPORTABLE = tuple(TEMPLATES)
EXPORTABLE = ("divisions", "parks", "groups", "enterprises", "sites", "units")
FORMATS = ("xlsx", "csv")
GUIDE_SHEET = "说明 guide"
DATA_SHEET = "data"


def _check_entity(entity: str, allowed: Iterable[str]) -> None:
    if entity not in allowed:
        raise InvalidInput(f"entity：不支持“{entity}”（可用：{', '.join(allowed)}）", f"entity: '{entity}' is not supported (choose from {', '.join(allowed)})", field="entity")


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise InvalidInput(f"format：须为 xlsx 或 csv，收到“{fmt}”", f"format: must be xlsx or csv, got '{fmt}'", field="format")


def describe_template(entity: str) -> list[dict]:
    _check_entity(entity, IMPORTABLE)
    return [{"column": c.name, "required": c.required, "zh": c.zh, "en": c.en, "example": c.example} for c in TEMPLATES[entity]]


# ---------------------------------------------------------------------------------------------- file formats


def table_bytes(columns: list[str], rows: list[list], fmt: str, guide: list[dict] | None = None) -> bytes:
    _check_format(fmt)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        writer.writerows([["" if value is None else value for value in row] for row in rows])
        # A byte-order mark lets spreadsheet programs open the UTF-8 Chinese text correctly.
        return ("\ufeff" + buffer.getvalue()).encode("utf-8")
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = DATA_SHEET
    sheet.append(columns)
    for row in rows:
        sheet.append(["" if value is None else value for value in row])
    if guide is not None:
        notes = workbook.create_sheet(GUIDE_SHEET)
        notes.append(["列 column", "必填 required", "说明", "description", "示例 example"])
        for item in guide:
            notes.append([item["column"], "是 yes" if item["required"] else "否 no", item["zh"], item["en"], item["example"]])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def template_bytes(entity: str, fmt: str) -> bytes:
    guide = describe_template(entity)
    return table_bytes([c["column"] for c in guide], [], fmt, guide=guide)


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        # Spreadsheet programs store typed numbers as binary floats; repr gives the shortest exact spelling.
        return repr(value).removesuffix(".0") if value.is_integer() else repr(value)
    return str(value).strip()


def read_rows(filename: str, content: bytes) -> list[tuple[int, dict[str, str]]]:
    """(spreadsheet row number, {column: text}) for every non-empty data row; the header is row 1."""
    lowered = (filename or "").lower()
    if lowered.endswith(".csv"):
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput("file：CSV 须为 UTF-8 编码", "file: the CSV must be UTF-8 encoded", field="file") from None
        table = list(csv.reader(io.StringIO(text)))
    elif lowered.endswith(".xlsx"):
        try:
            workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        except Exception:  # noqa: BLE001 - openpyxl raises many kinds for a damaged or foreign file
            raise InvalidInput("file：无法读取该 .xlsx 文件", "file: this is not a readable .xlsx workbook", field="file") from None
        sheet = workbook[DATA_SHEET] if DATA_SHEET in workbook.sheetnames else workbook.worksheets[0]
        table = [[_cell_text(value) for value in row] for row in sheet.iter_rows(values_only=True)]
        workbook.close()
    else:
        raise InvalidInput("file：仅支持 .xlsx 与 .csv 文件", "file: only .xlsx and .csv files are accepted", field="file")
    if not table:
        raise InvalidInput("file：文件为空", "file: the file is empty", field="file")
    header = [str(name).strip() for name in table[0]]
    rows = []
    for number, raw in enumerate(table[1:], start=2):
        cells = [str(value).strip() for value in raw]
        if not any(cells):
            continue
        rows.append((number, {name: (cells[i] if i < len(cells) else "") for i, name in enumerate(header) if name}))
    return rows


def _check_header(entity: str, rows: list[tuple[int, dict]], filename_header: list[str] | None = None) -> None:
    if not rows:
        return
    expected = {c.name for c in TEMPLATES[entity]}
    present = set(rows[0][1])
    missing = [c.name for c in TEMPLATES[entity] if c.required and c.name not in present]
    unknown = sorted(present - expected)
    errors = [_error(1, name, "模板缺少必填列", "the template's required column is missing") for name in missing]
    errors += [_error(1, name, "不认识的列（请使用下载的模板）", "unknown column (use the downloadable template)") for name in unknown]
    if errors:
        raise ImportRejected(errors)


def _error(row: int, column: str | None, zh: str, en: str, code: str = "invalid") -> dict:
    return {"row": row, "column": column, "code": code, "msg": zh, "msg_en": en}


# ---------------------------------------------------------------------------------------------- import


class _RowError(Exception):
    def __init__(self, column: str | None, error: DomainError):
        self.column = column
        self.error = error


def _mapped(column_of: dict[str, str], default: str | None):
    """Run a service call and label its error with the template column the offending field came from."""

    def run(call: Callable):
        try:
            return call()
        except DomainError as error:
            raise _RowError(column_of.get(error.field or "") or default or error.field, error) from None

    return run


def _by_name(session: Session, model, name: str, column: str):
    if not name:
        return None
    found = session.scalar(select(model.id).where(model.name == name))
    if found is None:
        raise _RowError(column, InvalidInput(f"{column}：未登记“{name}”", f"{column}: '{name}' is not registered", field=column, code="unknown_reference"))
    return found


def _import_enterprise(session: Session, principal: Principal, row: dict) -> str:
    values = {
        "name": row.get("name"), "uscc": row.get("uscc"), "ownership": row.get("ownership"), "division_code": row.get("division_code"),
        "park_id": _by_name(session, Park, row.get("park_name", ""), "park_name"),
        "group_id": _by_name(session, EnterpriseGroup, row.get("group_name", ""), "group_name"),
        "above_designated": row.get("above_designated", ""),
    }
    run = _mapped({"park_id": "park_name", "group_id": "group_name"}, None)
    existing = session.scalar(select(Enterprise).where(Enterprise.uscc == str(row.get("uscc") or "").strip().upper()))
    if existing is not None:
        run(lambda: service.update_enterprise(session, principal, existing.id, values))
        return "updated"
    run(lambda: service.create_enterprise(session, principal, values))
    return "created"


def _enterprise_of(session: Session, principal: Principal, row: dict) -> dict:
    return _mapped({}, "enterprise_uscc")(lambda: service.find_enterprise_by_uscc(session, principal, row.get("enterprise_uscc", "")))


def _import_site(session: Session, principal: Principal, row: dict) -> str:
    enterprise = _enterprise_of(session, principal, row)
    values = {"enterprise_id": enterprise["id"], "name": row.get("name"), "division_code": row.get("division_code"), "address": row.get("address", "")}
    run = _mapped({"enterprise_id": "enterprise_uscc"}, None)
    existing = session.scalar(select(Site.id).where(Site.enterprise_id == enterprise["id"], Site.name == str(row.get("name") or "").strip()))
    if existing is not None:
        run(lambda: service.update_site(session, principal, existing, values))
        return "updated"
    run(lambda: service.create_site(session, principal, values))
    return "created"


def _pairs(text: str, column: str, default_day: date | None) -> list[tuple[str, str, date | None]]:
    """'code=value; code=value@2020-01-01' → [(code, value, day)]."""
    pairs = []
    for part in (text or "").replace("；", ";").split(";"):
        part = part.strip()
        if not part:
            continue
        code, sep, rest = part.partition("=")
        if not sep or not code.strip() or not rest.strip():
            raise _RowError(column, InvalidInput(f"{column}：“{part}”应写作 代码=数值", f"{column}: '{part}' should read code=value", field=column, code="bad_pair"))
        value, _, day_text = rest.partition("@")
        day = default_day
        if day_text.strip():
            try:
                day = date.fromisoformat(day_text.strip())
            except ValueError:
                raise _RowError(column, InvalidInput(f"{column}：“{day_text}”不是日期", f"{column}: '{day_text}' is not a date", field=column, code="not_a_date")) from None
        pairs.append((code.strip(), value.strip(), day))
    return pairs


def _upsert_fact(session, principal, unit_id, kind, key_clauses, model, values, column) -> None:
    run = _mapped({}, column)
    existing = session.scalar(select(model.id).where(model.unit_id == unit_id, *key_clauses))
    if existing is None:
        run(lambda: service.add_fact(session, principal, unit_id, kind, values))
        return
    current = service.get_record(session, principal, service.FACT_KINDS[kind][0], existing)
    if any(str(current.get(name) or "") != str(value or "") for name, value in values.items()):
        run(lambda: service.update_fact(session, principal, unit_id, kind, existing, values))


def _import_unit(session: Session, principal: Principal, row: dict) -> str:
    enterprise = _enterprise_of(session, principal, row)
    site = _mapped({}, "site_name")(lambda: service.find_site(session, principal, enterprise["id"], row.get("site_name", "")))
    values = {
        "site_id": site["id"], "name": row.get("name"), "process_type": row.get("process_type"),
        "commissioned_on": row.get("commissioned_on") or None, "approved_on": row.get("approved_on") or None,
    }
    run = _mapped({"site_id": "site_name"}, None)
    existing = session.scalar(select(ProductionUnit.id).where(ProductionUnit.site_id == site["id"], ProductionUnit.name == str(row.get("name") or "").strip()))
    if existing is not None:
        unit = run(lambda: service.update_unit(session, principal, existing, values))
        outcome = "updated"
    else:
        unit = run(lambda: service.create_unit(session, principal, values))
        outcome = "created"
    if row.get("status"):
        effective = row.get("status_effective_on") or row.get("commissioned_on")
        if not effective:
            raise _RowError("status_effective_on", InvalidInput("status_effective_on：填写状态时须给出生效日期", "status_effective_on: a status needs the date it took effect", field="status_effective_on"))
        status_values = {"status": row["status"], "effective_on": effective}
        day = _mapped({}, "status_effective_on")(lambda: service._day(status_values, "effective_on"))
        _upsert_fact(session, principal, unit["id"], "status", (UnitStatusEvent.effective_on == day,), UnitStatusEvent, status_values,
                     "status" if day else "status_effective_on")
    default_text = row.get("facts_effective_from") or row.get("commissioned_on") or ""
    default_day = _mapped({}, "facts_effective_from")(lambda: service._day({"d": default_text}, "d", required=False))
    parameter_units = vocab.vocabulary().parameters
    for code, value, day in _pairs(row.get("parameters", ""), "parameters", default_day):
        if day is None:
            raise _RowError("facts_effective_from", InvalidInput("facts_effective_from：参数须有生效日期", "facts_effective_from: parameters need a date they take effect", field="facts_effective_from"))
        spec = parameter_units.get(code) or {}
        fact = {"code": code, "unit": spec.get("unit"), "effective_from": day}
        fact |= {"value_label": value} if spec.get("enum") else {"value": value}
        _upsert_fact(session, principal, unit["id"], "parameters", (UnitParameter.code == code, UnitParameter.effective_from == day), UnitParameter, fact, "parameters")
    for product, value, day in _pairs(row.get("capacities", ""), "capacities", default_day):
        if day is None:
            raise _RowError("facts_effective_from", InvalidInput("facts_effective_from：产能须有生效日期", "facts_effective_from: capacities need a date they take effect", field="facts_effective_from"))
        fact = {"product_code": product, "value": value, "unit": "t/a", "effective_from": day}
        _upsert_fact(session, principal, unit["id"], "capacities", (UnitCapacity.product_code == product, UnitCapacity.effective_from == day), UnitCapacity, fact, "capacities")
    return outcome


_IMPORTERS = {"enterprises": _import_enterprise, "sites": _import_site, "units": _import_unit}


def import_rows(
    session: Session, principal: Principal, entity: str, rows: list[tuple[int, dict]], progress: Callable[[int], None] | None = None
) -> dict:
    """Apply every row or none. Returns counts; raises ImportRejected with all row errors otherwise."""
    _check_entity(entity, IMPORTABLE)
    _check_header(entity, rows)
    importer = _IMPORTERS[entity]
    errors: list[dict] = []
    counts = {"created": 0, "updated": 0, "rows": len(rows)}
    enclosing = session.begin_nested()
    for number, row in rows:
        attempt = session.begin_nested()
        try:
            counts[importer(session, principal, row)] += 1
            attempt.commit()
        except _RowError as failure:
            attempt.rollback()
            errors.append(_error(number, failure.column, failure.error.message_zh, failure.error.message_en, failure.error.code))
        except DomainError as failure:
            attempt.rollback()
            errors.append(_error(number, failure.field, failure.message_zh, failure.message_en, failure.code))
        if progress is not None:
            progress(1)
    if errors:
        enclosing.rollback()
        raise ImportRejected(errors)
    enclosing.commit()
    return counts


def import_file(session: Session, principal: Principal, entity: str, filename: str, content: bytes, progress=None) -> dict:
    return import_rows(session, principal, entity, read_rows(filename, content), progress)


# ---------------------------------------------------------------------------------------------- export


def _all_pages(lister, session, principal, query: service.ListQuery) -> list[dict]:
    items, offset = [], 0
    while True:
        page = lister(session, principal, service.ListQuery(**{**query.__dict__, "limit": service.MAX_PAGE, "offset": offset}))
        items += page.items
        offset += service.MAX_PAGE
        if offset >= page.total:
            return items


def _facts_text(values: dict[str, tuple[str, date]]) -> str:
    return "; ".join(f"{code}={value}@{day.isoformat()}" for code, (value, day) in sorted(values.items()))


def export_table(session: Session, principal: Principal, entity: str, query: service.ListQuery | None = None) -> tuple[list[str], list[list]]:
    _check_entity(entity, EXPORTABLE)
    query = query or service.ListQuery()
    listers = {"divisions": service.list_divisions, "parks": service.list_parks, "groups": service.list_groups,
               "enterprises": service.list_enterprises, "sites": service.list_sites, "units": service.list_units}
    items = _all_pages(listers[entity], session, principal, query)
    if entity not in TEMPLATES:
        columns = list(items[0]) if items else _VIEW_COLUMNS[entity]
        return columns, [[", ".join(v) if isinstance(v, list) else v for v in (item.get(c) for c in columns)] for item in items]
    columns = [c.name for c in TEMPLATES[entity]]
    if entity == "enterprises":
        parks = dict(session.execute(select(Park.id, Park.name)).all())
        groups = dict(session.execute(select(EnterpriseGroup.id, EnterpriseGroup.name)).all())
        rows = [[i["name"], i["uscc"], i["ownership"], i["division_code"], parks.get(i["park_id"], ""), groups.get(i["group_id"], ""),
                 "是" if i["above_designated"] else "否"] for i in items]
        return columns, rows
    usccs = dict(session.execute(select(Enterprise.id, Enterprise.uscc)).all())
    if entity == "sites":
        return columns, [[usccs[i["enterprise_id"]], i["name"], i["division_code"], i["address"]] for i in items]
    return columns, _unit_rows(session, items, usccs, query.as_of or service.today())


def _unit_rows(session: Session, items: list[dict], usccs: dict, day: date) -> list[list]:
    ids = [item["id"] for item in items]
    latest_status: dict[int, tuple[str, date]] = {}
    params: dict[int, dict] = {}
    capacities: dict[int, dict] = {}
    for chunk_start in range(0, len(ids), 500):
        chunk = ids[chunk_start:chunk_start + 500]
        for row in session.scalars(select(UnitStatusEvent).where(UnitStatusEvent.unit_id.in_(chunk), UnitStatusEvent.effective_on <= day).order_by(UnitStatusEvent.effective_on)):
            latest_status[row.unit_id] = (row.status, row.effective_on)
        for row in session.scalars(select(UnitParameter).where(UnitParameter.unit_id.in_(chunk), UnitParameter.effective_from <= day).order_by(UnitParameter.effective_from)):
            params.setdefault(row.unit_id, {})[row.code] = (row.value_label if row.value is None else service.plain(row.value), row.effective_from)
        for row in session.scalars(select(UnitCapacity).where(UnitCapacity.unit_id.in_(chunk), UnitCapacity.effective_from <= day).order_by(UnitCapacity.effective_from)):
            capacities.setdefault(row.unit_id, {})[row.product_code] = (service.plain(row.value), row.effective_from)
    rows = []
    for item in items:
        status, since = latest_status.get(item["id"], ("", None))
        rows.append([
            usccs[item["enterprise_id"]], item["site_name"], item["name"], item["process_type"], item["commissioned_on"] or "", item["approved_on"] or "",
            status, since.isoformat() if since else "", _facts_text(params.get(item["id"], {})), _facts_text(capacities.get(item["id"], {})), "",
        ])
    return rows


_VIEW_COLUMNS = {
    "divisions": ["code", "name_zh", "name_en", "level", "parent_code"],
    "parks": ["id", "name", "level", "division_code", "industries"],
    "groups": ["id", "name"],
}


def export_bytes(session: Session, principal: Principal, entity: str, fmt: str, query: service.ListQuery | None = None) -> bytes:
    _check_format(fmt)
    columns, rows = export_table(session, principal, entity, query)
    return table_bytes(columns, rows, fmt)


MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
