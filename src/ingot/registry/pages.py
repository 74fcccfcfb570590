"""Web pages of the registry: the overview (/), enterprise and unit lists with search and filters, and the detail
pages of enterprises, sites and production units.

Pages call the registry service exactly as the API does, so every list and record is scoped to the caller. Query
strings are taken as the user typed them and parsed here: a malformed value is shown on the page (422) instead of
becoming a JSON validation error, and a record outside the caller's scope renders the error page with 404.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from importlib.resources import files
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

from ingot.api.deps import UNIT_OF_WORK, current_principal, language
from ingot.core.auth import Principal, division_prefix
from ingot.core.errors import DomainError, InvalidInput, NotFound
from ingot.registry import service
from ingot.registry.vocabulary import measures, vocabulary
from ingot.web.charts import stacked_bars
from ingot.web.i18n import translate
from ingot.web.rendering import add_template_dir, available_paths, render

router = APIRouter(include_in_schema=False)
add_template_dir(files("ingot.registry") / "templates")

PAGE_SIZE = 50
# The API's own bounds (api.list_query and api._record_id); the pages accept the same inputs.
MAX_SEARCH_LENGTH = 128
MAX_RECORD_ID = 2**31 - 1

# (sort key understood by service.SORTABLE, message key of its label); the first is the service's default order.
ENTERPRISE_SORTS = (
    ("name", "sort_name"), ("-name", "sort_name_desc"), ("uscc", "sort_uscc"), ("division_code", "sort_division"),
    ("-created_at", "sort_newest"),
)
UNIT_SORTS = (
    ("name", "sort_name"), ("-name", "sort_name_desc"), ("enterprise", "sort_enterprise"), ("process_type", "sort_process"),
    ("division_code", "sort_division"), ("commissioned_on", "sort_commissioned"), ("-commissioned_on", "sort_commissioned_desc"),
)


# -- parsing what the user typed ---------------------------------------------------------------------------------


def parse_day(raw: str, field: str = "as_of") -> date | None:
    text = (raw or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{field}：“{text}”不是日期（YYYY-MM-DD）", f"{field}: '{text}' is not a date (YYYY-MM-DD)",
                           field=field, code="not_a_date") from None


def parse_page_number(raw: str) -> int:
    text = (raw or "").strip()
    if not text:
        return 1
    if not re.fullmatch(r"[0-9]{1,6}", text) or int(text) < 1:
        raise InvalidInput(f"page：“{text}”须为正整数", f"page: '{text}' must be a positive whole number", field="page",
                           code="not_an_integer")
    return int(text)


def parse_record_id(raw: str, entity: str) -> int:
    """A record id from the path; anything that cannot be an id is a record that does not exist (404, like the API)."""
    if re.fullmatch(r"[0-9]{1,10}", raw or "") and 1 <= int(raw) <= MAX_RECORD_ID:
        return int(raw)
    raise NotFound(f"记录不存在：{entity} {raw}", f"no such {entity}: {raw}", field="id")


def _optional_id(raw: str, field: str) -> int | None:
    text = (raw or "").strip()
    if not text:
        return None
    if not re.fullmatch(r"[0-9]{1,10}", text) or not 1 <= int(text) <= MAX_RECORD_ID:
        raise InvalidInput(f"{field}：须为整数编号", f"{field}: must be an integer id", field=field, code="not_an_integer")
    return int(text)


@dataclass(frozen=True)
class ListFilters:
    """A list page's query string as typed, kept verbatim so the form shows it back and pager links carry it on."""

    q: str = ""
    province: str = ""
    prefecture: str = ""
    metal: str = ""
    process_type: str = ""
    status: str = ""
    as_of: str = ""
    enterprise_id: str = ""
    sort: str = ""

    @classmethod
    def of(cls, **raw: str) -> "ListFilters":
        return cls(**{name: (value or "").strip() for name, value in raw.items()})

    def params(self) -> dict[str, str]:
        return {name: value for name, value in asdict(self).items() if value}

    def link(self, base: str, **changes) -> str:
        merged = self.params() | {name: str(value) for name, value in changes.items()}
        return base + ("?" + urlencode(merged) if merged else "")

    def query(self, page: int) -> service.ListQuery:
        """The service query; the vocabulary, division and sort checks stay in the service, raising InvalidInput."""
        if len(self.q) > MAX_SEARCH_LENGTH:
            raise InvalidInput(f"q：搜索词不能超过 {MAX_SEARCH_LENGTH} 个字符", f"q: search text of at most {MAX_SEARCH_LENGTH} characters",
                               field="q", code="too_long")
        return service.ListQuery(
            q=self.q or None, province=self.province or None, prefecture=self.prefecture or None, metal=self.metal or None,
            process_type=self.process_type or None, status=self.status or None, as_of=parse_day(self.as_of),
            enterprise_id=_optional_id(self.enterprise_id, "enterprise_id"), sort=self.sort or None,
            limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE,
        )


# -- labels ------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _division_names() -> dict[str, tuple[str, str]]:
    return {code: (zh, en) for code, zh, en, _level, _parent in service.division_rows()}


def division_name(code: str | None, lang: str) -> str:
    names = _division_names().get(code or "")
    if names is None:
        return code or "—"
    return names[1] if lang == "en" else names[0]


def division_path(code: str | None, lang: str) -> str:
    """Province · prefecture · county of a GB/T 2260 code, each level named once."""
    if not code:
        return "—"
    levels = []
    for candidate in (code[:2] + "0000", code[:4] + "00", code):
        if candidate in _division_names() and candidate not in levels:
            levels.append(candidate)
    return " · ".join(division_name(level, lang) for level in levels) or code


def _helpers(lang: str) -> dict:
    words = vocabulary()
    declared = measures() or {}

    def vocabulary_label(section: str, code: str | None) -> str:
        return words.label(section, code, lang) if code else "—"

    def measure_label(code: str) -> str:
        entry = declared.get(code) or {}
        return entry.get("en" if lang == "en" else "zh", code)

    def parameter_label(code: str) -> str:
        return vocabulary_label("parameters", code)

    def parameter_unit(code: str) -> str:
        return (words.parameters.get(code) or {}).get("unit") or ""

    def measure_unit(code: str) -> str:
        return (declared.get(code) or {}).get("unit") or ""

    return {
        "vl": vocabulary_label, "measure_label": measure_label, "parameter_label": parameter_label,
        "parameter_unit": parameter_unit, "measure_unit": measure_unit, "words": words,
        "division_name": lambda code: division_name(code, lang), "division_path": lambda code: division_path(code, lang),
    }


def _render_page(request: Request, template: str, principal: Principal, lang: str, status_code: int = 200, **context):
    return render(request, template, principal, lang, status_code=status_code, **_helpers(lang), **context)


def _refusal(request: Request, principal: Principal, lang: str, problem: DomainError):
    """The shared error page; a missing or out-of-scope record gets the generic wording so its existence does not leak."""
    message = translate("not_found", lang) if isinstance(problem, NotFound) else problem.message(lang)
    return render(request, "error.html", principal, lang, status_code=problem.status_code, status=problem.status_code, message=message)


# -- filter choices ----------------------------------------------------------------------------------------------


def _offered(principal: Principal, code: str) -> bool:
    """A division worth offering as a filter: one the caller sees, or one containing the caller's own jurisdiction."""
    if principal.sees_division(code):
        return True
    return bool(principal.division_code) and principal.division_code.startswith(division_prefix(code))


def _filter_choices(principal: Principal, lang: str) -> dict:
    words = vocabulary()
    provinces = [(code, words.label("provinces", code, lang)) for code in words.provinces if _offered(principal, code)]
    prefectures = []
    for province_code, province_label in provinces:
        inside = [(code, division_name(code, lang)) for code, _zh, _en, level, parent in service.division_rows()
                  if level == "prefecture" and parent == province_code and _offered(principal, code)]
        if inside:
            prefectures.append((province_label, inside))
    process_types = [(code, words.label("process_types", code, lang), words.label("metals", spec.get("metal"), lang))
                     for code, spec in words.process_types.items()]
    return {
        "provinces": provinces, "prefectures": prefectures,
        "metals": [(code, words.label("metals", code, lang)) for code in words.metals],
        "process_types": process_types,
        "statuses": [(code, words.label("unit_statuses", code, lang)) for code in words.unit_statuses],
    }


def _pager(filters: ListFilters, base: str, page: int, found: service.Page) -> dict:
    pages = max(1, -(-found.total // PAGE_SIZE))
    return {
        "page": page, "pages": pages, "total": found.total,
        "previous": filters.link(base, page=page - 1) if page > 1 else None,
        "next": filters.link(base, page=page + 1) if page * PAGE_SIZE < found.total else None,
    }


def _export_links(filters: ListFilters, entity: str, **extra: str) -> dict[str, str]:
    """The API export of the same filtered list, every page of it (so no page parameter)."""
    params = filters.params() | extra
    return {fmt: f"/api/registry/export/{entity}?" + urlencode(params | {"format": fmt}) for fmt in ("xlsx", "csv")}


# -- version history ---------------------------------------------------------------------------------------------


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def version_rows(history: list[dict]) -> list[dict]:
    """Each version with what it changed from the one before (every field for the first; none for a deletion)."""
    rows, previous = [], {}
    for version in history:
        data = version["data"]
        changes = []
        if data is not None:
            changes = [(field, previous.get(field), value) for field, value in data.items()
                       if field != "id" and (field not in previous or previous[field] != value)]
        rows.append({"version_no": version["version_no"], "valid_from": _moment(version["valid_from"]),
                     "valid_to": _moment(version["valid_to"]), "actor": version["actor"], "deleted": data is None,
                     "first": not previous and data is not None, "changes": changes})
        previous = data or {}
    return rows


# -- overview ----------------------------------------------------------------------------------------------------


def capacity_chart(rows: list[dict], lang: str) -> str:
    """One bar per province, one segment per metal, from service.capacity_overview rows (sorted by province)."""
    suffix = "_en" if lang == "en" else "_zh"
    by_province: dict[str, tuple[str, list]] = {}
    for row in rows:
        label, segments = by_province.setdefault(row["province_code"], (row["province" + suffix], []))
        segments.append((row["metal" + suffix], Decimal(row["capacity"])))
    return stacked_bars(list(by_province.values()), unit=translate("tonnes_per_year", lang)) if by_province else ""


@router.get("/")
def overview_page(
    request: Request,
    as_of: str = "",
    principal: Principal = Depends(current_principal),
    lang: str = Depends(language),
    session: Session = UNIT_OF_WORK,
):
    error = None
    try:
        day = parse_day(as_of) or service.today()
    except InvalidInput as problem:
        day, error = service.today(), problem.message(lang)
    counted = service.ListQuery(limit=1)
    counts = {
        "enterprises": service.list_enterprises(session, principal, counted).total,
        "sites": service.list_sites(session, principal, counted).total,
        "units": service.list_units(session, principal, counted).total,
    }
    capacity = service.capacity_overview(session, principal, day)
    own_enterprise = None
    if principal.enterprise_id is not None:
        own_enterprise = service.get_record(session, principal, "enterprise", principal.enterprise_id)
    return _render_page(
        request, "registry_overview.html", principal, lang, status_code=422 if error else 200, error=error,
        as_of=day, as_of_text=as_of if error else day.isoformat(), counts=counts, capacity_rows=capacity["rows"],
        chart=capacity_chart(capacity["rows"], lang), own_enterprise=own_enterprise,
    )


# -- enterprises -------------------------------------------------------------------------------------------------


@router.get("/registry/enterprises")
def enterprises_page(
    request: Request,
    q: str = "",
    province: str = "",
    prefecture: str = "",
    metal: str = "",
    process_type: str = "",
    status: str = "",
    sort: str = "",
    page: str = "",
    principal: Principal = Depends(current_principal),
    lang: str = Depends(language),
    session: Session = UNIT_OF_WORK,
):
    filters = ListFilters.of(q=q, province=province, prefecture=prefecture, metal=metal, process_type=process_type,
                             status=status, sort=sort)
    base = "/registry/enterprises"
    try:
        number = parse_page_number(page)
        found = service.list_enterprises(session, principal, filters.query(number))
        error = None
    except InvalidInput as problem:
        number, found, error = 1, service.Page(total=0, items=[], limit=PAGE_SIZE, offset=0), problem.message(lang)
    return _render_page(
        request, "registry_enterprises.html", principal, lang, status_code=422 if error else 200, error=error,
        filters=filters, enterprises=found.items, pager=_pager(filters, base, number, found), sorts=ENTERPRISE_SORTS,
        exports=_export_links(filters, "enterprises"), **_filter_choices(principal, lang),
    )


@router.get("/registry/enterprises/{enterprise_id}")
def enterprise_page(
    enterprise_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    lang: str = Depends(language),
    session: Session = UNIT_OF_WORK,
):
    try:
        key = parse_record_id(enterprise_id, "enterprise")
        enterprise = service.get_record(session, principal, "enterprise", key)
    except DomainError as problem:
        return _refusal(request, principal, lang, problem)
    # Parks and groups are reference data every signed-in user may read.
    park = service.get_record(session, principal, "park", enterprise["park_id"]) if enterprise["park_id"] else None
    group = service.get_record(session, principal, "group", enterprise["group_id"]) if enterprise["group_id"] else None
    everything = service.ListQuery(enterprise_id=key, limit=service.MAX_PAGE)
    sites = service.list_sites(session, principal, everything)
    units = service.list_units(session, principal, everything)
    return _render_page(
        request, "registry_enterprise.html", principal, lang, enterprise=enterprise, park=park, group=group,
        sites=sites.items, units=units.items, units_total=units.total, today=service.today(),
        versions=version_rows(service.version_history(session, principal, "enterprise", key)),
    )


# -- sites -------------------------------------------------------------------------------------------------------


@router.get("/registry/sites/{site_id}")
def site_page(
    site_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    lang: str = Depends(language),
    session: Session = UNIT_OF_WORK,
):
    try:
        key = parse_record_id(site_id, "site")
        site = service.get_record(session, principal, "site", key)
    except DomainError as problem:
        return _refusal(request, principal, lang, problem)
    units = service.list_units(session, principal, service.ListQuery(site_id=key, limit=service.MAX_PAGE))
    return _render_page(
        request, "registry_site.html", principal, lang, site=site, units=units.items, units_total=units.total,
        monitoring_points=_monitoring_points(request, session, principal, site["enterprise_id"], key), today=service.today(),
        versions=version_rows(service.version_history(session, principal, "site", key)),
    )


# -- units -------------------------------------------------------------------------------------------------------


@router.get("/registry/units")
def units_page(
    request: Request,
    q: str = "",
    province: str = "",
    prefecture: str = "",
    metal: str = "",
    process_type: str = "",
    status: str = "",
    as_of: str = "",
    enterprise_id: str = "",
    sort: str = "",
    page: str = "",
    principal: Principal = Depends(current_principal),
    lang: str = Depends(language),
    session: Session = UNIT_OF_WORK,
):
    filters = ListFilters.of(q=q, province=province, prefecture=prefecture, metal=metal, process_type=process_type,
                             status=status, as_of=as_of, enterprise_id=enterprise_id, sort=sort)
    base = "/registry/units"
    enterprise, status_day = None, service.today()
    try:
        number = parse_page_number(page)
        query = filters.query(number)
        status_day = query.as_of or status_day
        if query.enterprise_id is not None:
            enterprise = service.get_record(session, principal, "enterprise", query.enterprise_id)
        found = service.list_units(session, principal, query)
        error, status_code = None, 200
    except DomainError as problem:
        number, found = 1, service.Page(total=0, items=[], limit=PAGE_SIZE, offset=0)
        error = translate("not_found", lang) if isinstance(problem, NotFound) else problem.message(lang)
        status_code = problem.status_code
    return _render_page(
        request, "registry_units.html", principal, lang, status_code=status_code, error=error, filters=filters,
        units=found.items, pager=_pager(filters, base, number, found), sorts=UNIT_SORTS, enterprise=enterprise,
        status_day=status_day,
        exports=_export_links(filters, "units"), **_filter_choices(principal, lang),
    )


def _monitoring_points(request: Request, session: Session, principal: Principal, enterprise_id: int, site_id: int) -> list:
    """The monitoring points of a site, when this build serves monitoring pages at all (the context is optional)."""
    if "/monitoring/points/{point_id}" not in available_paths(request):
        return []
    from ingot.monitoring import service as monitoring

    return [point for point in monitoring.list_points(session, principal, enterprise_id=enterprise_id) if point.site_id == site_id]


def _compliance_section(request: Request, session: Session, principal: Principal, unit_id: int, day: date, lang: str):
    """The policy context's verdicts of this unit, when this build has it (policy depends on registry, so lazily)."""
    if "/compliance/units/{unit_id}" not in available_paths(request):
        return None
    from ingot.policy.pages import unit_verdicts_fragment

    return unit_verdicts_fragment(session, principal, unit_id, day, lang)


@router.get("/registry/units/{unit_id}")
def unit_page(
    unit_id: str,
    request: Request,
    as_of: str = "",
    principal: Principal = Depends(current_principal),
    lang: str = Depends(language),
    session: Session = UNIT_OF_WORK,
):
    error = None
    try:
        day = parse_day(as_of)
    except InvalidInput as problem:
        # The page still shows the unit (as of today) so the reader can correct the date in the form above it.
        day, error = None, problem.message(lang)
    day = day or service.today()
    try:
        key = parse_record_id(unit_id, "unit")
        unit = service.get_unit_detail(session, principal, key, day)
    except DomainError as problem:
        return _refusal(request, principal, lang, problem)
    in_force_parameters = [(code, value) for code, value in unit["params"].items()]
    in_force_parameters += [(code, label) for code, label in unit["param_labels"].items()]
    return _render_page(
        request, "registry_unit.html", principal, lang, status_code=422 if error else 200, error=error,
        unit=unit, as_of=day, as_of_text=as_of if error else day.isoformat(),
        in_force_parameters=sorted(in_force_parameters),
        parameter_history=service.list_facts(session, principal, key, "parameters"),
        capacity_history=service.list_facts(session, principal, key, "capacities"),
        declaration_history=service.list_facts(session, principal, key, "declarations"),
        versions=version_rows(service.version_history(session, principal, "unit", key)),
        compliance=_compliance_section(request, session, principal, key, day, lang),
        compliance_link="/compliance/units/{unit_id}" in available_paths(request),
        monitoring_points=_monitoring_points(request, session, principal, unit["enterprise_id"], unit["site_id"]),
    )
