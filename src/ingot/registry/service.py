"""Registry use cases. Each takes a Session and the Principal asking; none knows about HTTP.

Scope rules:
- divisions, parks and enterprise groups are reference data every signed-in user may read;
- enterprises are in the scope of the regulator of their division; sites, units and unit facts in the scope of
  the regulator of the site's division; an enterprise user sees only its own enterprise's records;
- a record outside the caller's scope does not exist for them (404, reads and writes alike);
- auditors read everything and write nothing; enterprise users cannot create enterprises, parks or groups.

Every write records an audit entry (before/after, with the record's division and enterprise) and a version row.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from importlib import resources
from typing import Any, Callable

import yaml
from sqlalchemy import String, Select, and_, cast, exists, func, or_, select
from sqlalchemy.orm import Session

from ingot.core.audit import jsonable, record_change
from ingot.core.auth import ADMIN, ENTERPRISE, REGULATOR, Principal, division_prefix
from ingot.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from ingot.core.timeutil import SHANGHAI, as_utc, utcnow
from ingot.registry import vocabulary as vocab
from ingot.registry.models import (
    Division,
    Enterprise,
    EnterpriseGroup,
    Park,
    ProductionUnit,
    RegistryVersion,
    Site,
    UnitCapacity,
    UnitDeclaration,
    UnitParameter,
    UnitStatusEvent,
)
from ingot.registry.uscc import validate_uscc

MAX_PAGE = 1000
# Units whose capacity counts as registered: built or being built, and not retired.
CAPACITY_STATUSES = ("under_construction", "operating", "idle")


def plain(number: Decimal | None) -> str | None:
    """A decimal as written by a person: no exponent, no trailing zeros from the column's scale."""
    if number is None:
        return None
    text = format(number.normalize(), "f")
    return text


def today() -> date:
    return utcnow().astimezone(SHANGHAI).date()


# ---------------------------------------------------------------------------------------------- divisions


@lru_cache(maxsize=1)
def division_rows() -> tuple[tuple[str, str, str, str, str | None], ...]:
    """(code, name_zh, name_en, level, parent_code) for every division in the shipped data file."""
    raw = yaml.safe_load((resources.files("ingot") / "registry" / "divisions.yaml").read_text(encoding="utf-8"))
    rows = []
    for code, (zh, en) in raw["provinces"].items():
        rows.append((str(code), zh, en, "province", None))
    for code, (zh, en) in raw["prefectures"].items():
        rows.append((str(code), zh, en, "prefecture", str(code)[:2] + "0000"))
    for code, (zh, en) in raw["counties"].items():
        rows.append((str(code), zh, en, "county", str(code)[:4] + "00"))
    return tuple(rows)


def load_divisions(session: Session) -> int:
    """Insert the shipped divisions that are missing; returns how many were added. Divisions are read-only after."""
    present = set(session.scalars(select(Division.code)))
    added = 0
    for code, zh, en, level, parent in division_rows():
        if code not in present:
            session.add(Division(code=code, name_zh=zh, name_en=en, level=level, parent_code=parent))
            added += 1
    session.flush()
    return added


def division_view(division: Division) -> dict:
    return {"code": division.code, "name_zh": division.name_zh, "name_en": division.name_en, "level": division.level, "parent_code": division.parent_code}


def get_division(session: Session, principal: Principal, code: str) -> dict:
    division = session.get(Division, code)
    if division is None:
        raise NotFound(f"行政区划不存在：{code}", f"no such division: {code}", field="code")
    return division_view(division)


def _division(session: Session, code: Any, field: str = "division_code") -> Division:
    division = session.get(Division, str(code or ""))
    if division is None:
        raise InvalidInput(f"{field}：未知的行政区划代码“{code}”", f"{field}: unknown GB/T 2260 division code '{code}'", field=field, code="unknown_division")
    return division


# ---------------------------------------------------------------------------------------------- helpers


def _require_writer(principal: Principal, *roles: str) -> None:
    allowed = roles or (ADMIN, REGULATOR, ENTERPRISE)
    if principal.role not in allowed:
        raise Forbidden("当前角色无权修改登记数据", f"role '{principal.role}' may not change this part of the registry")


def _require_division_in_scope(principal: Principal, division_code: str, field: str = "division_code") -> None:
    if principal.role == REGULATOR and not principal.sees_division(division_code):
        raise Forbidden(
            f"{field}：行政区划 {division_code} 不在您的管辖范围内", f"{field}: division {division_code} is outside your jurisdiction", field=field
        )


def _text(values: dict, name: str, *, required: bool = True, max_length: int = 128) -> str:
    value = values.get(name)
    value = "" if value is None else str(value).strip()
    if required and not value:
        raise InvalidInput(f"{name}：不能为空", f"{name}: must not be empty", field=name, code="missing")
    if len(value) > max_length:
        raise InvalidInput(f"{name}：不能超过 {max_length} 个字符", f"{name}: at most {max_length} characters", field=name, code="too_long")
    return value


def _decimal(values: dict, name: str, *, required: bool = True, positive: bool = False) -> Decimal | None:
    value = values.get(name)
    if value is None or value == "":
        if required:
            raise InvalidInput(f"{name}：不能为空", f"{name}: must not be empty", field=name, code="missing")
        return None
    if isinstance(value, float):
        raise InvalidInput(f"{name}：请以字符串或整数给出精确数值", f"{name}: give exact numbers as strings or integers", field=name, code="not_exact")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise InvalidInput(f"{name}：“{value}”不是数值", f"{name}: '{value}' is not a number", field=name, code="not_a_number") from None
    if not number.is_finite() or abs(number) >= Decimal(10) ** 18:
        raise InvalidInput(f"{name}：数值超出范围", f"{name}: number out of range", field=name, code="out_of_range")
    if positive and number < 0:
        raise InvalidInput(f"{name}：不能为负数", f"{name}: must not be negative", field=name, code="negative")
    return number


def _day(values: dict, name: str, *, required: bool = True) -> date | None:
    value = values.get(name)
    if value is None or value == "":
        if required:
            raise InvalidInput(f"{name}：不能为空", f"{name}: must not be empty", field=name, code="missing")
        return None
    if isinstance(value, datetime):
        raise InvalidInput(f"{name}：须为日期（YYYY-MM-DD）", f"{name}: must be a date (YYYY-MM-DD)", field=name, code="not_a_date")
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise InvalidInput(f"{name}：“{value}”不是日期（YYYY-MM-DD）", f"{name}: '{value}' is not a date (YYYY-MM-DD)", field=name, code="not_a_date") from None


def _integer(values: dict, name: str, *, low: int, high: int) -> int:
    value = values.get(name)
    try:
        number = int(str(value).strip()) if not isinstance(value, int) or isinstance(value, bool) else value
    except (TypeError, ValueError):
        raise InvalidInput(f"{name}：须为整数", f"{name}: must be an integer", field=name, code="not_an_integer") from None
    if not low <= number <= high:
        raise InvalidInput(f"{name}：须在 {low}–{high} 之间", f"{name}: must be between {low} and {high}", field=name, code="out_of_range")
    return number


def _reject_unknown_fields(values: dict, allowed: set[str]) -> None:
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise InvalidInput(f"{unknown[0]}：不允许的字段", f"{unknown[0]}: unknown field", field=unknown[0], code="extra_forbidden")


def _write_version(session: Session, actor: Principal, entity: str, entity_id: Any, data: dict | None) -> RegistryVersion:
    moment = utcnow()
    current = session.scalar(
        select(RegistryVersion).where(
            RegistryVersion.entity == entity, RegistryVersion.entity_id == str(entity_id), RegistryVersion.valid_to.is_(None)
        )
    )
    number = 1
    if current is not None:
        current.valid_to = moment
        number = current.version_no + 1
    version = RegistryVersion(
        entity=entity, entity_id=str(entity_id), version_no=number, valid_from=moment, data=jsonable(data), actor=actor.username
    )
    session.add(version)
    return version


def _record(
    session: Session, actor: Principal, entity: str, entity_id: Any, action: str, before: dict | None, after: dict | None,
    division_code: str | None, enterprise_id: int | None,
) -> None:
    session.flush()
    record_change(session, actor, entity, entity_id, action, before, after, division_code=division_code, enterprise_id=enterprise_id)
    _write_version(session, actor, entity, entity_id, after)
    session.flush()


def record_as_of(session: Session, entity: str, entity_id: Any, moment: datetime) -> dict | None:
    """What the registry said about one record at `moment` (None if it did not exist then, or was deleted)."""
    moment = as_utc(moment)
    version = session.scalar(
        select(RegistryVersion)
        .where(
            RegistryVersion.entity == entity,
            RegistryVersion.entity_id == str(entity_id),
            RegistryVersion.valid_from <= moment,
            or_(RegistryVersion.valid_to.is_(None), RegistryVersion.valid_to > moment),
        )
        .order_by(RegistryVersion.version_no.desc())
        .limit(1)
    )
    return None if version is None else version.data


def version_history(session: Session, principal: Principal, entity: str, entity_id: Any) -> list[dict]:
    """Every version of a record the caller may see, oldest first."""
    _get_scoped_view(session, principal, entity, entity_id, allow_deleted=True)
    versions = session.scalars(
        select(RegistryVersion)
        .where(RegistryVersion.entity == entity, RegistryVersion.entity_id == str(entity_id))
        .order_by(RegistryVersion.version_no)
    )
    return [
        {"version_no": v.version_no, "valid_from": v.valid_from.isoformat(), "valid_to": v.valid_to.isoformat() if v.valid_to else None,
         "actor": v.actor, "data": v.data}
        for v in versions
    ]


def get_as_of(session: Session, principal: Principal, entity: str, entity_id: Any, moment: datetime) -> dict:
    _get_scoped_view(session, principal, entity, entity_id, allow_deleted=True)
    data = record_as_of(session, entity, entity_id, moment)
    if data is None:
        raise NotFound(
            f"{entity} {entity_id} 在 {moment.isoformat()} 时不存在", f"{entity} {entity_id} did not exist at {moment.isoformat()}", field="as_of"
        )
    return data


def _not_found(entity: str, entity_id: Any) -> NotFound:
    return NotFound(f"记录不存在：{entity} {entity_id}", f"no such {entity}: {entity_id}", field="id")


def _sees_record_data(principal: Principal, entity: str, data: dict) -> bool:
    if entity in ("park", "group", "division"):
        return True
    return principal.sees_enterprise(data.get("enterprise_id"), data.get("division_code"))


def _get_scoped_view(session: Session, principal: Principal, entity: str, entity_id: Any, *, allow_deleted: bool = False) -> dict:
    spec = ENTITIES.get(entity)
    if spec is None:
        raise NotFound(f"未知的登记类型：{entity}", f"unknown registry entity: {entity}", field="entity")
    try:
        key = int(entity_id)
    except (TypeError, ValueError):
        raise _not_found(entity, entity_id) from None
    record = session.get(spec.model, key)
    if record is not None:
        data = spec.view(record)
    elif allow_deleted:
        last = session.scalar(
            select(RegistryVersion.data).where(RegistryVersion.entity == entity, RegistryVersion.entity_id == str(key), RegistryVersion.data.is_not(None))
            .order_by(RegistryVersion.version_no.desc()).limit(1)
        )
        if last is None:
            raise _not_found(entity, entity_id)
        data = last
    else:
        raise _not_found(entity, entity_id)
    if not _sees_record_data(principal, entity, data):
        raise _not_found(entity, entity_id)
    return data


# ---------------------------------------------------------------------------------------------- views


def park_view(park: Park) -> dict:
    return {"id": park.id, "name": park.name, "level": park.level, "division_code": park.division_code, "industries": list(park.industries or [])}


def group_view(group: EnterpriseGroup) -> dict:
    return {"id": group.id, "name": group.name}


def enterprise_view(enterprise: Enterprise) -> dict:
    return {
        "id": enterprise.id, "name": enterprise.name, "uscc": enterprise.uscc, "ownership": enterprise.ownership,
        "division_code": enterprise.division_code, "province_code": enterprise.division_code[:2] + "0000",
        "park_id": enterprise.park_id, "group_id": enterprise.group_id, "above_designated": bool(enterprise.above_designated),
        "enterprise_id": enterprise.id,
    }


def site_view(site: Site) -> dict:
    return {
        "id": site.id, "enterprise_id": site.enterprise_id, "enterprise_name": site.enterprise.name, "name": site.name,
        "division_code": site.division_code, "province_code": site.division_code[:2] + "0000", "address": site.address,
    }


def unit_view(unit: ProductionUnit) -> dict:
    return {
        "id": unit.id, "site_id": unit.site_id, "site_name": unit.site.name, "enterprise_id": unit.site.enterprise_id,
        "enterprise_name": unit.site.enterprise.name, "division_code": unit.site.division_code,
        "province_code": unit.site.division_code[:2] + "0000", "name": unit.name, "process_type": unit.process_type,
        "metal": vocab.vocabulary().metal_of(unit.process_type),
        "commissioned_on": unit.commissioned_on.isoformat() if unit.commissioned_on else None,
        "approved_on": unit.approved_on.isoformat() if unit.approved_on else None,
    }


def _fact_scope(unit: ProductionUnit) -> dict:
    return {"unit_id": unit.id, "enterprise_id": unit.site.enterprise_id, "division_code": unit.site.division_code}


def _unit_of(session: Session, fact) -> ProductionUnit:
    return session.get(ProductionUnit, fact.unit_id)


def parameter_view(row: UnitParameter, unit: ProductionUnit) -> dict:
    return {"id": row.id, "code": row.code, "value": plain(row.value), "value_label": row.value_label,
            "unit": row.unit, "effective_from": row.effective_from.isoformat(), **_fact_scope(unit)}


def capacity_view(row: UnitCapacity, unit: ProductionUnit) -> dict:
    return {"id": row.id, "product_code": row.product_code, "value": plain(row.value), "unit": row.unit,
            "effective_from": row.effective_from.isoformat(), **_fact_scope(unit)}


def status_view(row: UnitStatusEvent, unit: ProductionUnit) -> dict:
    return {"id": row.id, "status": row.status, "effective_on": row.effective_on.isoformat(), "note": row.note, **_fact_scope(unit)}


def declaration_view(row: UnitDeclaration, unit: ProductionUnit) -> dict:
    return {"id": row.id, "year": row.year, "measure_code": row.measure_code, "value": plain(row.value), "unit": row.unit,
            "source": row.source, **_fact_scope(unit)}


@dataclass(frozen=True)
class EntitySpec:
    model: type
    view: Callable[[Any], dict]


def _fact_view(view):
    def render(row):
        from sqlalchemy.orm import object_session

        return view(row, object_session(row).get(ProductionUnit, row.unit_id))

    return render


ENTITIES: dict[str, EntitySpec] = {
    "park": EntitySpec(Park, park_view),
    "group": EntitySpec(EnterpriseGroup, group_view),
    "enterprise": EntitySpec(Enterprise, enterprise_view),
    "site": EntitySpec(Site, site_view),
    "unit": EntitySpec(ProductionUnit, unit_view),
    "parameter": EntitySpec(UnitParameter, _fact_view(parameter_view)),
    "capacity": EntitySpec(UnitCapacity, _fact_view(capacity_view)),
    "status": EntitySpec(UnitStatusEvent, _fact_view(status_view)),
    "declaration": EntitySpec(UnitDeclaration, _fact_view(declaration_view)),
}


def get_record(session: Session, principal: Principal, entity: str, entity_id: Any) -> dict:
    return _get_scoped_view(session, principal, entity, entity_id)


# ---------------------------------------------------------------------------------------------- parks and groups

PARK_FIELDS = {"name", "level", "division_code", "industries"}


def _clean_park(session: Session, principal: Principal, values: dict) -> dict:
    _reject_unknown_fields(values, PARK_FIELDS)
    division = _division(session, values.get("division_code"))
    _require_division_in_scope(principal, division.code)
    industries = values.get("industries") or []
    if isinstance(industries, str):
        industries = [part.strip() for part in industries.replace("，", ",").split(",") if part.strip()]
    if not isinstance(industries, list):
        raise InvalidInput("industries：须为金属代码列表", "industries: must be a list of metal codes", field="industries")
    return {
        "name": _text(values, "name"),
        "level": vocab.check_park_level(values.get("level")),
        "division_code": division.code,
        "industries": sorted({vocab.check_metal(code, "industries") for code in industries}),
    }


def _unique(session: Session, model, column, value, field: str, own_id: int | None = None) -> None:
    query = select(model.id).where(column == value)
    if own_id is not None:
        query = query.where(model.id != own_id)
    if session.scalar(query) is not None:
        raise Conflict(f"{field}：“{value}”已存在", f"{field}: '{value}' already exists", field=field, code="duplicate")


def create_park(session: Session, principal: Principal, values: dict) -> dict:
    _require_writer(principal, ADMIN, REGULATOR)
    clean = _clean_park(session, principal, values)
    _unique(session, Park, Park.name, clean["name"], "name")
    park = Park(**clean)
    session.add(park)
    session.flush()
    after = park_view(park)
    _record(session, principal, "park", park.id, "create", None, after, park.division_code, None)
    return after


def update_park(session: Session, principal: Principal, park_id: int, changes: dict) -> dict:
    before = _get_scoped_view(session, principal, "park", park_id)
    _require_writer(principal, ADMIN, REGULATOR)
    _require_division_in_scope(principal, before["division_code"])
    merged = {key: before[key] for key in PARK_FIELDS} | changes
    clean = _clean_park(session, principal, merged)
    _unique(session, Park, Park.name, clean["name"], "name", own_id=park_id)
    park = session.get(Park, park_id)
    for key, value in clean.items():
        setattr(park, key, value)
    after = park_view(park)
    _record(session, principal, "park", park.id, "update", before, after, park.division_code, None)
    return after


def create_group(session: Session, principal: Principal, values: dict) -> dict:
    _require_writer(principal, ADMIN, REGULATOR)
    _reject_unknown_fields(values, {"name"})
    name = _text(values, "name")
    _unique(session, EnterpriseGroup, EnterpriseGroup.name, name, "name")
    group = EnterpriseGroup(name=name)
    session.add(group)
    session.flush()
    after = group_view(group)
    _record(session, principal, "group", group.id, "create", None, after, None, None)
    return after


def update_group(session: Session, principal: Principal, group_id: int, changes: dict) -> dict:
    before = _get_scoped_view(session, principal, "group", group_id)
    _require_writer(principal, ADMIN, REGULATOR)
    _reject_unknown_fields(changes, {"name"})
    name = _text({**before, **changes}, "name")
    _unique(session, EnterpriseGroup, EnterpriseGroup.name, name, "name", own_id=group_id)
    group = session.get(EnterpriseGroup, group_id)
    group.name = name
    after = group_view(group)
    _record(session, principal, "group", group.id, "update", before, after, None, None)
    return after


# ---------------------------------------------------------------------------------------------- enterprises

ENTERPRISE_FIELDS = {"name", "uscc", "ownership", "division_code", "park_id", "group_id", "above_designated"}


def _optional_reference(session: Session, model, values: dict, field: str) -> int | None:
    value = values.get(field)
    if value in (None, ""):
        return None
    try:
        key = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{field}：须为整数编号", f"{field}: must be an integer id", field=field) from None
    if session.get(model, key) is None:
        raise InvalidInput(f"{field}：编号 {key} 不存在", f"{field}: no record with id {key}", field=field, code="unknown_reference")
    return key


def _boolean(values: dict, name: str) -> bool:
    value = values.get(name, False)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "y", "是"):
        return True
    if text in ("0", "false", "no", "n", "否", "", "none"):
        return False
    raise InvalidInput(f"{name}：须为 是/否", f"{name}: must be true or false", field=name, code="not_a_boolean")


def _clean_enterprise(session: Session, principal: Principal, values: dict) -> dict:
    _reject_unknown_fields(values, ENTERPRISE_FIELDS)
    division = _division(session, values.get("division_code"))
    _require_division_in_scope(principal, division.code)
    return {
        "name": _text(values, "name"),
        "uscc": validate_uscc(values.get("uscc")),
        "ownership": vocab.check_ownership(values.get("ownership")),
        "division_code": division.code,
        "park_id": _optional_reference(session, Park, values, "park_id"),
        "group_id": _optional_reference(session, EnterpriseGroup, values, "group_id"),
        "above_designated": _boolean(values, "above_designated"),
    }


def create_enterprise(session: Session, principal: Principal, values: dict) -> dict:
    _require_writer(principal, ADMIN, REGULATOR)
    clean = _clean_enterprise(session, principal, values)
    _unique(session, Enterprise, Enterprise.uscc, clean["uscc"], "uscc")
    enterprise = Enterprise(**clean, created_at=utcnow())
    session.add(enterprise)
    session.flush()
    after = enterprise_view(enterprise)
    _record(session, principal, "enterprise", enterprise.id, "create", None, after, enterprise.division_code, enterprise.id)
    return after


def update_enterprise(session: Session, principal: Principal, enterprise_id: int, changes: dict) -> dict:
    before = _get_scoped_view(session, principal, "enterprise", enterprise_id)
    _require_writer(principal)
    merged = {key: before[key] for key in ENTERPRISE_FIELDS} | changes
    clean = _clean_enterprise(session, principal, merged)
    if principal.role == ENTERPRISE and (clean["uscc"] != before["uscc"] or clean["division_code"] != before["division_code"]):
        raise Forbidden("企业用户不能修改统一社会信用代码或所在行政区划", "an enterprise user may not change its credit code or division", field="uscc")
    _unique(session, Enterprise, Enterprise.uscc, clean["uscc"], "uscc", own_id=enterprise_id)
    enterprise = session.get(Enterprise, enterprise_id)
    for key, value in clean.items():
        setattr(enterprise, key, value)
    after = enterprise_view(enterprise)
    _record(session, principal, "enterprise", enterprise.id, "update", before, after, enterprise.division_code, enterprise.id)
    return after


def find_enterprise_by_uscc(session: Session, principal: Principal, uscc: str, field: str = "enterprise_uscc") -> dict:
    enterprise = session.scalar(select(Enterprise).where(Enterprise.uscc == str(uscc or "").strip().upper()))
    if enterprise is None or not principal.sees_enterprise(enterprise.id, enterprise.division_code):
        raise InvalidInput(f"{field}：找不到信用代码为“{uscc}”的企业", f"{field}: no enterprise with credit code '{uscc}'", field=field, code="unknown_reference")
    return enterprise_view(enterprise)


# ---------------------------------------------------------------------------------------------- sites

SITE_FIELDS = {"enterprise_id", "name", "division_code", "address"}


def _visible_enterprise(session: Session, principal: Principal, enterprise_id: Any) -> Enterprise:
    try:
        enterprise = session.get(Enterprise, int(enterprise_id))
    except (TypeError, ValueError):
        enterprise = None
    if enterprise is None or not principal.sees_enterprise(enterprise.id, enterprise.division_code):
        raise NotFound(f"enterprise_id：企业不存在：{enterprise_id}", f"enterprise_id: no such enterprise: {enterprise_id}", field="enterprise_id")
    return enterprise


def _clean_site(session: Session, principal: Principal, values: dict) -> dict:
    _reject_unknown_fields(values, SITE_FIELDS)
    enterprise = _visible_enterprise(session, principal, values.get("enterprise_id"))
    division = _division(session, values.get("division_code"))
    _require_division_in_scope(principal, division.code)
    return {
        "enterprise_id": enterprise.id, "name": _text(values, "name"), "division_code": division.code,
        "address": _text(values, "address", required=False, max_length=256),
    }


def _site_name_unique(session: Session, enterprise_id: int, name: str, own_id: int | None = None) -> None:
    query = select(Site.id).where(Site.enterprise_id == enterprise_id, Site.name == name)
    if own_id is not None:
        query = query.where(Site.id != own_id)
    if session.scalar(query) is not None:
        raise Conflict(f"name：该企业已有名为“{name}”的厂区", f"name: the enterprise already has a site named '{name}'", field="name", code="duplicate")


def create_site(session: Session, principal: Principal, values: dict) -> dict:
    _require_writer(principal)
    clean = _clean_site(session, principal, values)
    _site_name_unique(session, clean["enterprise_id"], clean["name"])
    site = Site(**clean)
    session.add(site)
    session.flush()
    after = site_view(site)
    _record(session, principal, "site", site.id, "create", None, after, site.division_code, site.enterprise_id)
    return after


def update_site(session: Session, principal: Principal, site_id: int, changes: dict) -> dict:
    before = _get_scoped_view(session, principal, "site", site_id)
    _require_writer(principal)
    merged = {key: before[key] for key in SITE_FIELDS} | changes
    clean = _clean_site(session, principal, merged)
    _site_name_unique(session, clean["enterprise_id"], clean["name"], own_id=site_id)
    site = session.get(Site, site_id)
    for key, value in clean.items():
        setattr(site, key, value)
    session.flush()
    session.refresh(site)
    after = site_view(site)
    _record(session, principal, "site", site.id, "update", before, after, site.division_code, site.enterprise_id)
    return after


def find_site(session: Session, principal: Principal, enterprise_id: int, name: str) -> dict:
    site = session.scalar(select(Site).where(Site.enterprise_id == enterprise_id, Site.name == str(name or "").strip()))
    if site is None or not principal.sees_enterprise(site.enterprise_id, site.division_code):
        raise InvalidInput(f"site_name：该企业没有名为“{name}”的厂区", f"site_name: the enterprise has no site named '{name}'", field="site_name", code="unknown_reference")
    return site_view(site)


# ---------------------------------------------------------------------------------------------- units

UNIT_FIELDS = {"site_id", "name", "process_type", "commissioned_on", "approved_on"}


def _visible_site(session: Session, principal: Principal, site_id: Any) -> Site:
    try:
        site = session.get(Site, int(site_id))
    except (TypeError, ValueError):
        site = None
    if site is None or not principal.sees_enterprise(site.enterprise_id, site.division_code):
        raise NotFound(f"site_id：厂区不存在：{site_id}", f"site_id: no such site: {site_id}", field="site_id")
    return site


def _clean_unit(session: Session, principal: Principal, values: dict) -> dict:
    _reject_unknown_fields(values, UNIT_FIELDS)
    site = _visible_site(session, principal, values.get("site_id"))
    _require_division_in_scope(principal, site.division_code, "site_id")
    clean = {
        "site_id": site.id, "name": _text(values, "name"), "process_type": vocab.check_process_type(values.get("process_type")),
        "commissioned_on": _day(values, "commissioned_on", required=False), "approved_on": _day(values, "approved_on", required=False),
    }
    if clean["commissioned_on"] and clean["approved_on"] and clean["approved_on"] > clean["commissioned_on"]:
        raise InvalidInput("approved_on：核准日期不能晚于投产日期", "approved_on: approval cannot come after commissioning", field="approved_on", code="inconsistent_dates")
    return clean


def _unit_name_unique(session: Session, site_id: int, name: str, own_id: int | None = None) -> None:
    query = select(ProductionUnit.id).where(ProductionUnit.site_id == site_id, ProductionUnit.name == name)
    if own_id is not None:
        query = query.where(ProductionUnit.id != own_id)
    if session.scalar(query) is not None:
        raise Conflict(f"name：该厂区已有名为“{name}”的生产装置", f"name: the site already has a unit named '{name}'", field="name", code="duplicate")


def create_unit(session: Session, principal: Principal, values: dict) -> dict:
    _require_writer(principal)
    clean = _clean_unit(session, principal, values)
    _unit_name_unique(session, clean["site_id"], clean["name"])
    unit = ProductionUnit(**clean)
    session.add(unit)
    session.flush()
    session.refresh(unit)
    after = unit_view(unit)
    _record(session, principal, "unit", unit.id, "create", None, after, unit.site.division_code, unit.site.enterprise_id)
    return after


def update_unit(session: Session, principal: Principal, unit_id: int, changes: dict) -> dict:
    before = _get_scoped_view(session, principal, "unit", unit_id)
    _require_writer(principal)
    merged = {key: before[key] for key in UNIT_FIELDS} | changes
    clean = _clean_unit(session, principal, merged)
    unit = session.get(ProductionUnit, unit_id)
    if clean["process_type"] != unit.process_type and session.scalar(select(func.count()).where(UnitParameter.unit_id == unit_id)):
        raise Conflict(
            "process_type：装置已登记技术参数，不能改变工艺类型", "process_type: the unit has parameters recorded; its process type cannot change",
            field="process_type",
        )
    _unit_name_unique(session, clean["site_id"], clean["name"], own_id=unit_id)
    for key, value in clean.items():
        setattr(unit, key, value)
    session.flush()
    session.refresh(unit)
    after = unit_view(unit)
    _record(session, principal, "unit", unit.id, "update", before, after, unit.site.division_code, unit.site.enterprise_id)
    return after


# ---------------------------------------------------------------------------------------------- unit facts

FACT_KINDS = {
    "parameters": ("parameter", UnitParameter, parameter_view, {"code", "value", "value_label", "unit", "effective_from"}),
    "capacities": ("capacity", UnitCapacity, capacity_view, {"product_code", "value", "unit", "effective_from"}),
    "status": ("status", UnitStatusEvent, status_view, {"status", "effective_on", "note"}),
    "declarations": ("declaration", UnitDeclaration, declaration_view, {"year", "measure_code", "value", "unit", "source"}),
}


def _visible_unit(session: Session, principal: Principal, unit_id: Any) -> ProductionUnit:
    try:
        unit = session.get(ProductionUnit, int(unit_id))
    except (TypeError, ValueError):
        unit = None
    if unit is None or not principal.sees_enterprise(unit.site.enterprise_id, unit.site.division_code):
        raise NotFound(f"生产装置不存在：{unit_id}", f"no such production unit: {unit_id}", field="unit_id")
    return unit


def _clean_fact(kind: str, unit: ProductionUnit, values: dict) -> tuple[dict, Any]:
    """Validated column values and the natural key that must be unique per unit."""
    _reject_unknown_fields(values, FACT_KINDS[kind][3])
    if kind == "parameters":
        code = _text(values, "code", max_length=64)
        unit_string = values.get("unit") or None
        expected_unit = vocab.check_parameter(unit.process_type, code, unit_string)
        enumerated = vocab.vocabulary().parameters[code].get("enum")
        if enumerated:
            label = _text(values, "value_label", max_length=64)
            vocab.check_enum_parameter(code, label)
            value = None
        else:
            label = None
            value = _decimal(values, "value", positive=True)
        clean = {"code": code, "value": value, "value_label": label, "unit": expected_unit, "effective_from": _day(values, "effective_from")}
        return clean, (UnitParameter.code == code, UnitParameter.effective_from == clean["effective_from"])
    if kind == "capacities":
        product = vocab.check_product(values.get("product_code"))
        clean = {"product_code": product, "value": _decimal(values, "value", positive=True), "unit": vocab.check_capacity_unit(values.get("unit") or "t/a"),
                 "effective_from": _day(values, "effective_from")}
        return clean, (UnitCapacity.product_code == product, UnitCapacity.effective_from == clean["effective_from"])
    if kind == "status":
        clean = {"status": vocab.check_status(values.get("status")), "effective_on": _day(values, "effective_on"),
                 "note": _text(values, "note", required=False, max_length=2000)}
        return clean, (UnitStatusEvent.effective_on == clean["effective_on"],)
    measure = _text(values, "measure_code", max_length=64)
    unit_string = _text(values, "unit", max_length=16)
    vocab.check_measure(measure, unit_string)
    clean = {"year": _integer(values, "year", low=1949, high=2100), "measure_code": measure, "value": _decimal(values, "value"),
             "unit": unit_string, "source": _text(values, "source", required=False, max_length=256)}
    return clean, (UnitDeclaration.year == clean["year"], UnitDeclaration.measure_code == measure)


def _fact_unique(session: Session, model, unit_id: int, key_clauses, own_id: int | None = None) -> None:
    query = select(model.id).where(model.unit_id == unit_id, *key_clauses)
    if own_id is not None:
        query = query.where(model.id != own_id)
    if session.scalar(query) is not None:
        raise Conflict("该装置已有同一日期（年度）的同项记录", "the unit already has this fact for the same date (year)", code="duplicate")


def add_fact(session: Session, principal: Principal, unit_id: Any, kind: str, values: dict) -> dict:
    entity, model, view, _fields = FACT_KINDS[kind]
    unit = _visible_unit(session, principal, unit_id)
    _require_writer(principal)
    clean, key = _clean_fact(kind, unit, values)
    _fact_unique(session, model, unit.id, key)
    row = model(unit_id=unit.id, **clean)
    session.add(row)
    session.flush()
    after = view(row, unit)
    _record(session, principal, entity, row.id, "create", None, after, unit.site.division_code, unit.site.enterprise_id)
    return after


def _visible_fact(session: Session, principal: Principal, unit_id: Any, kind: str, fact_id: Any):
    entity, model, _view, _fields = FACT_KINDS[kind]
    unit = _visible_unit(session, principal, unit_id)
    try:
        row = session.get(model, int(fact_id))
    except (TypeError, ValueError):
        row = None
    if row is None or row.unit_id != unit.id:
        raise _not_found(entity, fact_id)
    return unit, row


def update_fact(session: Session, principal: Principal, unit_id: Any, kind: str, fact_id: Any, changes: dict) -> dict:
    entity, model, view, fields = FACT_KINDS[kind]
    unit, row = _visible_fact(session, principal, unit_id, kind, fact_id)
    _require_writer(principal)
    before = view(row, unit)
    merged = {key: before.get(key) for key in fields} | changes
    clean, key = _clean_fact(kind, unit, merged)
    _fact_unique(session, model, unit.id, key, own_id=row.id)
    for name, value in clean.items():
        setattr(row, name, value)
    session.flush()
    after = view(row, unit)
    _record(session, principal, entity, row.id, "update", before, after, unit.site.division_code, unit.site.enterprise_id)
    return after


def delete_fact(session: Session, principal: Principal, unit_id: Any, kind: str, fact_id: Any) -> None:
    entity, _model, view, _fields = FACT_KINDS[kind]
    unit, row = _visible_fact(session, principal, unit_id, kind, fact_id)
    _require_writer(principal)
    before = view(row, unit)
    session.delete(row)
    _record(session, principal, entity, before["id"], "delete", before, None, unit.site.division_code, unit.site.enterprise_id)


def list_facts(session: Session, principal: Principal, unit_id: Any, kind: str) -> list[dict]:
    _entity, model, view, _fields = FACT_KINDS[kind]
    unit = _visible_unit(session, principal, unit_id)
    order = {"parameters": (UnitParameter.code, UnitParameter.effective_from), "capacities": (UnitCapacity.product_code, UnitCapacity.effective_from),
             "status": (UnitStatusEvent.effective_on,), "declarations": (UnitDeclaration.year, UnitDeclaration.measure_code)}[kind]
    return [view(row, unit) for row in session.scalars(select(model).where(model.unit_id == unit.id).order_by(*order))]


# ---------------------------------------------------------------------------------------------- lists


@dataclass
class Page:
    total: int
    items: list[dict]
    limit: int
    offset: int

    def as_dict(self) -> dict:
        return {"total": self.total, "limit": self.limit, "offset": self.offset, "items": self.items}


SORTABLE: dict[str, dict[str, Any]] = {
    "division": {"code": Division.code, "name": Division.name_zh, "level": Division.level},
    "park": {"id": Park.id, "name": Park.name, "level": Park.level, "division_code": Park.division_code},
    "group": {"id": EnterpriseGroup.id, "name": EnterpriseGroup.name},
    "enterprise": {"id": Enterprise.id, "name": Enterprise.name, "uscc": Enterprise.uscc, "division_code": Enterprise.division_code,
                   "created_at": Enterprise.created_at},
    "site": {"id": Site.id, "name": Site.name, "division_code": Site.division_code, "enterprise": Enterprise.name},
    "unit": {"id": ProductionUnit.id, "name": ProductionUnit.name, "process_type": ProductionUnit.process_type,
             "commissioned_on": ProductionUnit.commissioned_on, "approved_on": ProductionUnit.approved_on, "enterprise": Enterprise.name,
             "division_code": Site.division_code},
}


@dataclass
class ListQuery:
    """Filters common to the registry lists; each list uses the ones that apply to it."""

    q: str | None = None
    province: str | None = None
    prefecture: str | None = None
    division: str | None = None
    metal: str | None = None
    process_type: str | None = None
    status: str | None = None
    level: str | None = None
    enterprise_id: int | None = None
    site_id: int | None = None
    park_id: int | None = None
    group_id: int | None = None
    as_of: date | None = None
    sort: str | None = None
    limit: int = 50
    offset: int = 0


def _division_filter(column, query: ListQuery):
    clauses = []
    for name, value, length in (("province", query.province, 2), ("prefecture", query.prefecture, 4), ("division", query.division, None)):
        if value:
            if not (len(value) == 6 and value.isdigit()):
                raise InvalidInput(f"{name}：须为 6 位行政区划代码", f"{name}: must be a 6-digit division code", field=name)
            clauses.append(column.startswith(value[:length] if length else division_prefix(value)))
    return clauses


def _status_on(day: date):
    return (
        select(UnitStatusEvent.status)
        .where(UnitStatusEvent.unit_id == ProductionUnit.id, UnitStatusEvent.effective_on <= day)
        .order_by(UnitStatusEvent.effective_on.desc())
        .limit(1)
        .correlate(ProductionUnit)
        .scalar_subquery()
    )


def _process_types_for(query: ListQuery) -> list[str] | None:
    if query.process_type:
        vocab.check_process_type(query.process_type)
        chosen = [query.process_type]
        if query.metal:
            vocab.check_metal(query.metal)
            chosen = [p for p in chosen if vocab.vocabulary().metal_of(p) == query.metal]
        return chosen
    if query.metal:
        vocab.check_metal(query.metal)
        return vocab.vocabulary().process_types_of_metal(query.metal)
    return None


def _scope_clause(principal: Principal, enterprise_column, division_column):
    if principal.sees_everything:
        return None
    if principal.role == ENTERPRISE:
        return enterprise_column == (principal.enterprise_id if principal.enterprise_id is not None else -1)
    if principal.role == REGULATOR and principal.division_code:
        return division_column.startswith(division_prefix(principal.division_code))
    return enterprise_column == -1


def _apply_sort(statement: Select, entity: str, sort: str | None, default: str) -> Select:
    key = sort or default
    descending = key.startswith("-")
    name = key.lstrip("-")
    column = SORTABLE[entity].get(name)
    if column is None:
        allowed = ", ".join(sorted(SORTABLE[entity]))
        raise InvalidInput(f"sort：不能按“{name}”排序（可用：{allowed}）", f"sort: cannot sort by '{name}' (allowed: {allowed})", field="sort", code="bad_sort")
    primary = SORTABLE[entity].get("id", SORTABLE[entity].get("code"))
    return statement.order_by(column.desc() if descending else column.asc(), primary)


def _page(session: Session, statement: Select, entity: str, query: ListQuery, default_sort: str, render) -> Page:
    if not 1 <= query.limit <= MAX_PAGE:
        raise InvalidInput(f"limit：须在 1–{MAX_PAGE} 之间", f"limit: must be between 1 and {MAX_PAGE}", field="limit")
    if query.offset < 0:
        raise InvalidInput("offset：不能为负数", "offset: must not be negative", field="offset")
    total = session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    rows = session.execute(_apply_sort(statement, entity, query.sort, default_sort).limit(query.limit).offset(query.offset)).all()
    return Page(total=total or 0, items=[render(row) for row in rows], limit=query.limit, offset=query.offset)


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def list_divisions(session: Session, principal: Principal, query: ListQuery) -> Page:
    statement = select(Division)
    statement = statement.where(*_division_filter(Division.code, query))
    if query.level:
        statement = statement.where(Division.level == query.level)
    if query.q:
        statement = statement.where(or_(Division.name_zh.like(_like(query.q), escape="\\"), Division.name_en.ilike(_like(query.q), escape="\\")))
    return _page(session, statement, "division", query, "code", lambda row: division_view(row[0]))


def list_parks(session: Session, principal: Principal, query: ListQuery) -> Page:
    statement = select(Park).where(*_division_filter(Park.division_code, query))
    if query.level:
        statement = statement.where(Park.level == vocab.check_park_level(query.level))
    if query.metal:
        statement = statement.where(cast(Park.industries, String).like(_like(f'"{vocab.check_metal(query.metal)}"'), escape="\\"))
    if query.q:
        statement = statement.where(Park.name.ilike(_like(query.q), escape="\\"))
    return _page(session, statement, "park", query, "name", lambda row: park_view(row[0]))


def list_groups(session: Session, principal: Principal, query: ListQuery) -> Page:
    statement = select(EnterpriseGroup)
    if query.q:
        statement = statement.where(EnterpriseGroup.name.ilike(_like(query.q), escape="\\"))
    return _page(session, statement, "group", query, "name", lambda row: group_view(row[0]))


def list_enterprises(session: Session, principal: Principal, query: ListQuery) -> Page:
    statement = select(Enterprise)
    scope = _scope_clause(principal, Enterprise.id, Enterprise.division_code)
    if scope is not None:
        statement = statement.where(scope)
    statement = statement.where(*_division_filter(Enterprise.division_code, query))
    for column, value in ((Enterprise.park_id, query.park_id), (Enterprise.group_id, query.group_id), (Enterprise.id, query.enterprise_id)):
        if value is not None:
            statement = statement.where(column == value)
    if query.q:
        pattern = _like(query.q)
        statement = statement.where(or_(Enterprise.name.ilike(pattern, escape="\\"), Enterprise.uscc.ilike(pattern, escape="\\")))
    process_types = _process_types_for(query)
    if process_types is not None or query.status:
        unit_clauses = [Site.enterprise_id == Enterprise.id]
        if process_types is not None:
            unit_clauses.append(ProductionUnit.process_type.in_(process_types))
        if query.status:
            unit_clauses.append(_status_on(query.as_of or today()) == vocab.check_status(query.status))
        statement = statement.where(exists(select(ProductionUnit.id).join(Site, Site.id == ProductionUnit.site_id).where(*unit_clauses)))
    return _page(session, statement, "enterprise", query, "name", lambda row: enterprise_view(row[0]))


def list_sites(session: Session, principal: Principal, query: ListQuery) -> Page:
    statement = select(Site).join(Enterprise, Enterprise.id == Site.enterprise_id)
    scope = _scope_clause(principal, Site.enterprise_id, Site.division_code)
    if scope is not None:
        statement = statement.where(scope)
    statement = statement.where(*_division_filter(Site.division_code, query))
    if query.enterprise_id is not None:
        statement = statement.where(Site.enterprise_id == query.enterprise_id)
    if query.q:
        pattern = _like(query.q)
        statement = statement.where(or_(Site.name.ilike(pattern, escape="\\"), Enterprise.name.ilike(pattern, escape="\\")))
    return _page(session, statement, "site", query, "name", lambda row: site_view(row[0]))


def list_units(session: Session, principal: Principal, query: ListQuery) -> Page:
    day = query.as_of or today()
    status = _status_on(day).label("status")
    statement = (
        select(ProductionUnit, status)
        .join(Site, Site.id == ProductionUnit.site_id)
        .join(Enterprise, Enterprise.id == Site.enterprise_id)
    )
    scope = _scope_clause(principal, Site.enterprise_id, Site.division_code)
    if scope is not None:
        statement = statement.where(scope)
    statement = statement.where(*_division_filter(Site.division_code, query))
    for column, value in ((Site.enterprise_id, query.enterprise_id), (ProductionUnit.site_id, query.site_id)):
        if value is not None:
            statement = statement.where(column == value)
    process_types = _process_types_for(query)
    if process_types is not None:
        statement = statement.where(ProductionUnit.process_type.in_(process_types))
    if query.status:
        statement = statement.where(_status_on(day) == vocab.check_status(query.status))
    if query.q:
        pattern = _like(query.q)
        statement = statement.where(or_(ProductionUnit.name.ilike(pattern, escape="\\"), Enterprise.name.ilike(pattern, escape="\\")))

    def render(row) -> dict:
        return unit_view(row[0]) | {"status": row[1], "status_on": day.isoformat()}

    return _page(session, statement, "unit", query, "name", render)


def get_unit_detail(session: Session, principal: Principal, unit_id: Any, on: date | None = None) -> dict:
    """A unit with its dated facts as of `on` (today by default) and its full status history."""
    unit = _visible_unit(session, principal, unit_id)
    day = on or today()
    facts = _facts_for_units(session, [unit.id], day)
    history = list_facts(session, principal, unit.id, "status")
    known = facts.get(unit.id, {"status": None, "params": {}, "param_labels": {}, "capacities": {}, "declarations": {}})
    rendered = {key: ({code: plain(value) for code, value in known[key].items()} if isinstance(known[key], dict) and key != "param_labels" else known[key])
                for key in known}
    return unit_view(unit) | rendered | {"status_history": history, "as_of": day.isoformat()}


# ---------------------------------------------------------------------------------------------- as-of facts


def _facts_for_units(session: Session, unit_ids: list[int] | None, on: date, scope_clause=None) -> dict[int, dict]:
    """Per unit: status, parameters and capacities in force on `on`, and each measure's latest declaration up to on.year."""

    def scoped(statement, model):
        statement = statement.join(ProductionUnit, ProductionUnit.id == model.unit_id).join(Site, Site.id == ProductionUnit.site_id)
        if unit_ids is not None:
            statement = statement.where(model.unit_id.in_(unit_ids))
        if scope_clause is not None:
            statement = statement.where(scope_clause)
        return statement

    result: dict[int, dict] = {}

    def entry(unit_id: int) -> dict:
        return result.setdefault(unit_id, {"status": None, "params": {}, "param_labels": {}, "capacities": {}, "declarations": {}})

    for row in session.scalars(scoped(select(UnitStatusEvent), UnitStatusEvent).where(UnitStatusEvent.effective_on <= on).order_by(UnitStatusEvent.effective_on)):
        entry(row.unit_id)["status"] = row.status
    for row in session.scalars(scoped(select(UnitParameter), UnitParameter).where(UnitParameter.effective_from <= on).order_by(UnitParameter.effective_from)):
        if row.value is not None:
            entry(row.unit_id)["params"][row.code] = row.value
        else:
            entry(row.unit_id)["param_labels"][row.code] = row.value_label
    for row in session.scalars(scoped(select(UnitCapacity), UnitCapacity).where(UnitCapacity.effective_from <= on).order_by(UnitCapacity.effective_from)):
        entry(row.unit_id)["capacities"][row.product_code] = row.value
    for row in session.scalars(scoped(select(UnitDeclaration), UnitDeclaration).where(UnitDeclaration.year <= on.year).order_by(UnitDeclaration.year)):
        entry(row.unit_id)["declarations"][row.measure_code] = row.value
    return result


def unit_facts_as_of(session: Session, on: date, scope: Principal):
    """The policy engine's input: every unit in scope that has a status on `on`, with its facts as of that day.

    Returns ingot.policy.facts.UnitFacts; units not yet registered with any status on that date are left out.
    """
    from ingot.policy.facts import UnitFacts

    clause = _scope_clause(scope, Site.enterprise_id, Site.division_code)
    facts = _facts_for_units(session, None, on, clause)
    statement = select(ProductionUnit, Enterprise).join(Site, Site.id == ProductionUnit.site_id).join(Enterprise, Enterprise.id == Site.enterprise_id)
    if clause is not None:
        statement = statement.where(clause)
    result = []
    for unit, enterprise in session.execute(statement.order_by(ProductionUnit.id)):
        known = facts.get(unit.id)
        if not known or known["status"] is None:
            continue
        division = unit.site.division_code
        result.append(
            UnitFacts(
                unit_id=str(unit.id), province=division[:2] + "0000", prefecture=division[:4] + "00", status=known["status"],
                metal=vocab.vocabulary().metal_of(unit.process_type), process_type=unit.process_type, enterprise_id=str(enterprise.id),
                enterprise_name=enterprise.name, unit_name=unit.name, commissioned_on=unit.commissioned_on, approved_on=unit.approved_on,
                above_designated=bool(enterprise.above_designated), in_park=enterprise.park_id is not None,
                params=dict(known["params"]), capacities=dict(known["capacities"]), declarations=dict(known["declarations"]),
            )
        )
    return result


def capacity_overview(session: Session, principal: Principal, on: date | None = None) -> dict:
    """Registered capacity (t/a) by province and metal on a date, over units under construction, operating or idle."""
    day = on or today()
    clause = _scope_clause(principal, Site.enterprise_id, Site.division_code)
    facts = _facts_for_units(session, None, day, clause)
    provinces = {unit_id: code for unit_id, code in session.execute(select(ProductionUnit.id, Site.division_code).join(Site, Site.id == ProductionUnit.site_id))}
    totals: dict[tuple[str, str], Decimal] = {}
    products = vocab.vocabulary().products
    for unit_id, known in facts.items():
        if known["status"] not in CAPACITY_STATUSES:
            continue
        for product, value in known["capacities"].items():
            metal = (products.get(product) or {}).get("metal")
            if metal is None:
                continue
            key = (provinces[unit_id][:2] + "0000", metal)
            totals[key] = totals.get(key, Decimal(0)) + value
    v = vocab.vocabulary()
    rows = [
        {"province_code": province, "province_zh": v.label("provinces", province), "province_en": v.label("provinces", province, "en"),
         "metal": metal, "metal_zh": v.label("metals", metal), "metal_en": v.label("metals", metal, "en"), "capacity": plain(total), "unit": "t/a"}
        for (province, metal), total in sorted(totals.items())
    ]
    return {"as_of": day.isoformat(), "rows": rows}
