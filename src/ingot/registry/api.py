"""REST resources of the registry under /api/registry. Handlers translate HTTP to service calls and nothing else."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, Depends, File, Path, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from ingot.api.deps import UNIT_OF_WORK, current_principal
from ingot.core.auth import Principal
from ingot.core.errors import InvalidInput
from ingot.core.timeutil import SHANGHAI
from ingot.registry import importexport, service

router = APIRouter(prefix="/api/registry", tags=["registry"])

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
FactKind = Literal["parameters", "capacities", "status", "declarations"]
Format = Literal["xlsx", "csv"]
Importable = Literal["enterprises", "sites", "units"]
Exportable = Literal["divisions", "parks", "groups", "enterprises", "sites", "units"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParkIn(_Strict):
    name: str = Field(min_length=1, max_length=128)
    level: str
    division_code: str = Field(pattern=r"^\d{6}$")
    industries: list[str] = []


class ParkPatch(_Strict):
    name: str | None = Field(None, min_length=1, max_length=128)
    level: str | None = None
    division_code: str | None = Field(None, pattern=r"^\d{6}$")
    industries: list[str] | None = None


class GroupIn(_Strict):
    name: str = Field(min_length=1, max_length=128)


class EnterpriseIn(_Strict):
    name: str = Field(min_length=1, max_length=128)
    uscc: str
    ownership: str
    division_code: str = Field(pattern=r"^\d{6}$")
    park_id: int | None = None
    group_id: int | None = None
    above_designated: bool = False


class EnterprisePatch(_Strict):
    name: str | None = Field(None, min_length=1, max_length=128)
    uscc: str | None = None
    ownership: str | None = None
    division_code: str | None = Field(None, pattern=r"^\d{6}$")
    park_id: int | None = None
    group_id: int | None = None
    above_designated: bool | None = None


class SiteIn(_Strict):
    enterprise_id: int
    name: str = Field(min_length=1, max_length=128)
    division_code: str = Field(pattern=r"^\d{6}$")
    address: str = Field("", max_length=256)


class SitePatch(_Strict):
    name: str | None = Field(None, min_length=1, max_length=128)
    division_code: str | None = Field(None, pattern=r"^\d{6}$")
    address: str | None = Field(None, max_length=256)


class UnitIn(_Strict):
    site_id: int
    name: str = Field(min_length=1, max_length=128)
    process_type: str
    commissioned_on: date | None = None
    approved_on: date | None = None


class UnitPatch(_Strict):
    name: str | None = Field(None, min_length=1, max_length=128)
    process_type: str | None = None
    commissioned_on: date | None = None
    approved_on: date | None = None


class ParameterIn(_Strict):
    code: str
    value: Decimal | None = None
    value_label: str | None = None
    unit: str | None = None
    effective_from: date


class CapacityIn(_Strict):
    product_code: str
    value: Decimal
    unit: str = "t/a"
    effective_from: date


class StatusIn(_Strict):
    status: str
    effective_on: date
    note: str = Field("", max_length=2000)


class DeclarationIn(_Strict):
    year: int = Field(ge=1949, le=2100)
    measure_code: str
    value: Decimal
    unit: str
    source: str = Field("", max_length=256)


class FactPatch(_Strict):
    code: str | None = None
    product_code: str | None = None
    status: str | None = None
    measure_code: str | None = None
    value: Decimal | None = None
    value_label: str | None = None
    unit: str | None = None
    effective_from: date | None = None
    effective_on: date | None = None
    note: str | None = Field(None, max_length=2000)
    year: int | None = Field(None, ge=1949, le=2100)
    source: str | None = Field(None, max_length=256)


FACT_MODELS = {"parameters": ParameterIn, "capacities": CapacityIn, "status": StatusIn, "declarations": DeclarationIn}


class PageOut(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[dict]


def list_query(
    q: str | None = Query(None, max_length=128, description="名称/信用代码搜索 / name or credit-code search"),
    province: str | None = Query(None, description="省级区划代码 / province code, e.g. 530000"),
    prefecture: str | None = Query(None, description="市州区划代码 / prefecture code, e.g. 530100"),
    division: str | None = Query(None, description="任一区划代码（含下级）/ any division code, descendants included"),
    metal: str | None = None,
    process_type: str | None = None,
    status: str | None = None,
    level: str | None = None,
    enterprise_id: int | None = None,
    site_id: int | None = None,
    park_id: int | None = None,
    group_id: int | None = None,
    as_of: date | None = Query(None, description="状态的参照日期 / the date statuses are read on"),
    sort: str | None = Query(None, max_length=64, description="排序字段，前加 - 为降序 / sort field, '-' for descending"),
    limit: int = Query(50, ge=1, le=service.MAX_PAGE),
    offset: int = Query(0, ge=0),
) -> service.ListQuery:
    return service.ListQuery(q=q, province=province, prefecture=prefecture, division=division, metal=metal, process_type=process_type,
                             status=status, level=level, enterprise_id=enterprise_id, site_id=site_id, park_id=park_id, group_id=group_id,
                             as_of=as_of, sort=sort, limit=limit, offset=offset)


def _moment(as_of: datetime) -> datetime:
    """A query's as_of instant; without a zone it is read as Asia/Shanghai local time."""
    return as_of if as_of.tzinfo is not None else as_of.replace(tzinfo=SHANGHAI)


def _record(session: Session, principal: Principal, entity: str, record_id: int, as_of: datetime | None) -> dict:
    if as_of is not None:
        return service.get_as_of(session, principal, entity, record_id, _moment(as_of))
    return service.get_record(session, principal, entity, record_id)


def _as_of_moment():
    return Query(None, description="登记在该时刻的记录版本 / the record as the registry held it at this instant (no zone: Asia/Shanghai)")


def _record_id():
    # A fresh parameter object per use: FastAPI binds each one to the parameter name it first serves.
    return Path(ge=1, le=2**31 - 1)


# ---------------------------------------------------------------------------------------------- history


ENTITY_PATHS = {"parks": "park", "groups": "group", "enterprises": "enterprise", "sites": "site", "units": "unit"}


@router.get("/{collection}/{record_id}/versions")
def versions(
    collection: Literal["parks", "groups", "enterprises", "sites", "units"], record_id: int = _record_id(),
    principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK,
):
    return service.version_history(session, principal, ENTITY_PATHS[collection], record_id)


# ---------------------------------------------------------------------------------------------- divisions


@router.get("/divisions", response_model=PageOut)
def divisions(query: service.ListQuery = Depends(list_query), principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return service.list_divisions(session, principal, query).as_dict()


@router.get("/divisions/{code}")
def division(code: str = Path(pattern=r"^\d{6}$"), principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return service.get_division(session, principal, code)


# ---------------------------------------------------------------------------------------------- parks and groups


@router.get("/parks", response_model=PageOut)
def parks(query: service.ListQuery = Depends(list_query), principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return service.list_parks(session, principal, query).as_dict()


@router.post("/parks", status_code=201)
def create_park(body: ParkIn, principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return service.create_park(session, principal, body.model_dump())


@router.get("/parks/{park_id}")
def park(park_id: int = _record_id(), as_of: datetime | None = _as_of_moment(), principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return _record(session, principal, "park", park_id, as_of)


@router.patch("/parks/{park_id}")
def update_park(body: ParkPatch, park_id: int = _record_id(), principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return service.update_park(session, principal, park_id, body.model_dump(exclude_unset=True))


@router.get("/groups", response_model=PageOut)
def groups(query: service.ListQuery = Depends(list_query), principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return service.list_groups(session, principal, query).as_dict()


@router.post("/groups", status_code=201)
def create_group(body: GroupIn, principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return service.create_group(session, principal, body.model_dump())


@router.get("/groups/{group_id}")
def group(group_id: int = _record_id(), as_of: datetime | None = _as_of_moment(), principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return _record(session, principal, "group", group_id, as_of)


@router.patch("/groups/{group_id}")
def update_group(body: GroupIn, group_id: int = _record_id(), principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return service.update_group(session, principal, group_id, body.model_dump(exclude_unset=True))


# ---------------------------------------------------------------------------------------------- enterprises, sites, units


@router.get("/enterprises", response_model=PageOut)
def enterprises(query: service.ListQuery = Depends(list_query), principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return service.list_enterprises(session, principal, query).as_dict()


@router.post("/enterprises", status_code=201)
def create_enterprise(body: EnterpriseIn, principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return service.create_enterprise(session, principal, body.model_dump())


@router.get("/enterprises/{enterprise_id}")
def enterprise(enterprise_id: int = _record_id(), as_of: datetime | None = _as_of_moment(), principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return _record(session, principal, "enterprise", enterprise_id, as_of)


@router.patch("/enterprises/{enterprise_id}")
def update_enterprise(body: EnterprisePatch, enterprise_id: int = _record_id(), principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return service.update_enterprise(session, principal, enterprise_id, body.model_dump(exclude_unset=True))


@router.get("/sites", response_model=PageOut)
def sites(query: service.ListQuery = Depends(list_query), principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return service.list_sites(session, principal, query).as_dict()


@router.post("/sites", status_code=201)
def create_site(body: SiteIn, principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return service.create_site(session, principal, body.model_dump())


@router.get("/sites/{site_id}")
def site(site_id: int = _record_id(), as_of: datetime | None = _as_of_moment(), principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return _record(session, principal, "site", site_id, as_of)


@router.patch("/sites/{site_id}")
def update_site(body: SitePatch, site_id: int = _record_id(), principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return service.update_site(session, principal, site_id, body.model_dump(exclude_unset=True))


@router.get("/units", response_model=PageOut)
def units(query: service.ListQuery = Depends(list_query), principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return service.list_units(session, principal, query).as_dict()


@router.post("/units", status_code=201)
def create_unit(body: UnitIn, principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return service.create_unit(session, principal, body.model_dump())


@router.get("/units/{unit_id}")
def unit(
    unit_id: int = _record_id(),
    on: date | None = Query(None, description="状态、参数、产能与申报的参照日期 / the date the unit's facts are read on"),
    as_of: datetime | None = _as_of_moment(),
    principal: Principal = Depends(current_principal),
    session: Session = UNIT_OF_WORK,
):
    if as_of is not None:
        return service.get_as_of(session, principal, "unit", unit_id, _moment(as_of))
    return service.get_unit_detail(session, principal, unit_id, on)


@router.patch("/units/{unit_id}")
def update_unit(body: UnitPatch, unit_id: int = _record_id(), principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return service.update_unit(session, principal, unit_id, body.model_dump(exclude_unset=True))


@router.get("/units/{unit_id}/{kind}")
def unit_facts(kind: FactKind, unit_id: int = _record_id(), principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return service.list_facts(session, principal, unit_id, kind)


@router.post("/units/{unit_id}/{kind}", status_code=201)
def add_unit_fact(kind: FactKind, body: dict, unit_id: int = _record_id(), principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return service.add_fact(session, principal, unit_id, kind, _validated(FACT_MODELS[kind], body).model_dump(exclude_unset=True))


@router.patch("/units/{unit_id}/{kind}/{fact_id}")
def update_unit_fact(kind: FactKind, body: FactPatch, unit_id: int = _record_id(), fact_id: int = _record_id(), principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return service.update_fact(session, principal, unit_id, kind, fact_id, body.model_dump(exclude_unset=True))


@router.delete("/units/{unit_id}/{kind}/{fact_id}", status_code=204)
def delete_unit_fact(kind: FactKind, unit_id: int = _record_id(), fact_id: int = _record_id(), principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    service.delete_fact(session, principal, unit_id, kind, fact_id)
    return Response(status_code=204)


def _validated(model: type[BaseModel], body: dict) -> BaseModel:
    from pydantic import ValidationError

    try:
        return model.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first.get("loc", ())) or "body"
        raise InvalidInput(f"{field}：取值无效（{first.get('type')}）", f"{field}: {first.get('msg')}", field=field, code=str(first.get("type"))) from None


# ---------------------------------------------------------------------------------------------- overview, import, export


@router.get("/overview/capacity")
def capacity_overview(on: date | None = None, principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return service.capacity_overview(session, principal, on)


@router.get("/templates/{entity}")
def template_description(entity: Importable, principal: Principal = Depends(current_principal)):
    return {"entity": entity, "columns": importexport.describe_template(entity)}


@router.get("/templates/{entity}/download")
def template_download(entity: Importable, format: Format = "xlsx", principal: Principal = Depends(current_principal)):
    return _file(importexport.template_bytes(entity, format), f"ingot-{entity}-template.{format}", format)


@router.post("/import/{entity}")
async def import_file(entity: Importable, file: UploadFile = File(...), principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    content = await file.read(MAX_UPLOAD_BYTES + 1)
    if len(content) > MAX_UPLOAD_BYTES:
        raise InvalidInput("file：文件超过 20 MB", "file: larger than 20 MB", field="file")
    return importexport.import_file(session, principal, entity, file.filename or "", content)


@router.get("/export/{entity}")
def export(entity: Exportable, format: Format = "xlsx", query: service.ListQuery = Depends(list_query),
           principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return _file(importexport.export_bytes(session, principal, entity, format, query), f"ingot-{entity}.{format}", format)


def _file(content: bytes, filename: str, fmt: str) -> Response:
    return Response(content, media_type=importexport.MEDIA_TYPES[fmt], headers={"Content-Disposition": f'attachment; filename="{filename}"'})
