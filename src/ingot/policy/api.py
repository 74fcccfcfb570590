"""REST resources of the policy catalogue and the compliance engine under /api/policy.

Handlers translate HTTP to service calls (``ingot.policy.runs``) and nothing else. Every endpoint needs a login;
verdicts are filtered by the caller's scope in the service.
"""
from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from ingot.api.deps import UNIT_OF_WORK, OptionalRecordId, RecordId, current_principal
from ingot.core.auth import Principal
from ingot.policy import export, runs
from ingot.policy.engine import VERDICTS
from ingot.registry.service import today

router = APIRouter(prefix="/api/policy", tags=["policy"])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunIn(_Strict):
    as_of: date
    overrides: list[str] = Field(default_factory=list, description="RULE.PARAM=VALUE")
    label: str = Field("", max_length=200)


class WhatIfIn(_Strict):
    as_of: date
    overrides: list[str] = Field(min_length=1, description="RULE.PARAM=VALUE")


class AdmissionIn(_Strict):
    as_of: date | None = None
    unit: dict = Field(description="proposed unit: province, process_type, status, params, capacities, declarations, …")
    overrides: list[str] = Field(default_factory=list)


def _xlsx(content: bytes, name: str) -> Response:
    return Response(content, media_type=export.XLSX_MEDIA_TYPE, headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _day(as_of: date | None) -> date:
    return as_of or today()


# -- catalogue ---------------------------------------------------------------------------------------------------


@router.get("/provisions")
def list_provisions(
    seed: str | None = None,
    kind: str | None = None,
    checkable: bool | None = None,
    metal: str | None = None,
    _principal: Principal = Depends(current_principal),
) -> list[dict]:
    return [runs.provision_summary(p) for p in runs.select_provisions(runs.catalogue(), seed=seed, kind=kind, checkable=checkable, metal=metal)]


@router.get("/provisions/{rule_id}")
def get_provision(rule_id: str, _principal: Principal = Depends(current_principal)) -> dict:
    return runs.provision_detail(runs.provision_by_id(rule_id))


@router.get("/coverage")
def get_coverage(_principal: Principal = Depends(current_principal)) -> dict:
    from ingot.policy.coverage import coverage, coverage_summary

    rows = coverage(runs.catalogue())
    return {"catalogue_hash": runs.catalogue().content_hash, "provisions": [row.__dict__ for row in rows], "summary": coverage_summary(rows)}


# -- stored runs -------------------------------------------------------------------------------------------------


@router.post("/runs", status_code=201)
def create_run(body: RunIn, principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK) -> dict:
    return runs.create_run(session, principal, body.as_of, runs.parse_overrides(body.overrides), body.label)


@router.get("/runs")
def list_runs(
    limit: int = 50, offset: int = 0, principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK
) -> list[dict]:
    return runs.list_runs(session, principal, limit=limit, offset=offset)


@router.get("/runs/{run_id}")
def get_run(run_id: RecordId, principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK) -> dict:
    return runs.get_run(session, principal, run_id)


@router.get("/runs/{run_id}/verdicts")
def run_verdicts(
    run_id: RecordId,
    verdict: str | None = None,
    rule_id: str | None = None,
    unit_id: OptionalRecordId = None,
    province: str | None = None,
    metal: str | None = None,
    limit: int = Query(1000, ge=1, le=runs.MAX_VERDICT_PAGE),
    offset: int = Query(0, ge=0),
    principal: Principal = Depends(current_principal),
    session: Session = UNIT_OF_WORK,
) -> list[dict]:
    return runs.run_verdicts(session, principal, run_id, verdict=verdict, rule_id=rule_id, unit_id=unit_id, province=province,
                             metal=metal, limit=limit, offset=offset)


@router.get("/runs/{run_id}/verdicts.xlsx")
def export_run(run_id: RecordId, principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK) -> Response:
    summary, verdicts = runs.run_result(session, principal, run_id)
    return _xlsx(export.verdicts_workbook(summary, verdicts), f"compliance-run-{run_id}.xlsx")


@router.get("/runs/{run_id}/compare/{other_id}")
def compare_runs(run_id: RecordId, other_id: RecordId, principal: Principal = Depends(current_principal),
                 session: Session = UNIT_OF_WORK) -> dict:
    return runs.compare_runs(session, principal, run_id, other_id)


@router.post("/runs/{run_id}/reproduce")
def reproduce_run(run_id: RecordId, principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK) -> dict:
    return runs.reproduce_run(session, principal, run_id)


# -- live views --------------------------------------------------------------------------------------------------


@router.get("/units/{unit_id}/verdicts")
def unit_verdicts(unit_id: RecordId, as_of: date | None = None, principal: Principal = Depends(current_principal),
                  session: Session = UNIT_OF_WORK) -> dict:
    day = _day(as_of)
    return {"as_of": day.isoformat(), "unit_id": unit_id, "verdicts": runs.unit_verdicts(session, principal, unit_id, day)}


@router.get("/elimination")
def elimination(
    as_of: date | None = None, set: list[str] = Query(default_factory=list, description="RULE.PARAM=VALUE"),
    principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK,
) -> dict:
    day = _day(as_of)
    entries = runs.elimination(session, principal, day, runs.parse_overrides(set))
    return {"as_of": day.isoformat(), "entries": [runs.elimination_view(entry) for entry in entries]}


@router.get("/elimination.xlsx")
def elimination_xlsx(
    as_of: date | None = None, set: list[str] = Query(default_factory=list),
    principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK,
) -> Response:
    day = _day(as_of)
    entries = runs.elimination(session, principal, day, runs.parse_overrides(set))
    return _xlsx(export.elimination_workbook(entries, day), f"elimination-{day.isoformat()}.xlsx")


@router.get("/headroom")
def headroom(
    as_of: date | None = None, set: list[str] = Query(default_factory=list),
    principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK,
) -> dict:
    day = _day(as_of)
    rows = runs.headroom(session, principal, day, runs.parse_overrides(set))
    return {"as_of": day.isoformat(), "rows": [runs.headroom_view(row) for row in rows]}


@router.get("/headroom.xlsx")
def headroom_xlsx(
    as_of: date | None = None, set: list[str] = Query(default_factory=list),
    principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK,
) -> Response:
    day = _day(as_of)
    rows = runs.headroom(session, principal, day, runs.parse_overrides(set))
    return _xlsx(export.headroom_workbook(rows, day), f"cap-headroom-{day.isoformat()}.xlsx")


@router.get("/noncompliance")
def noncompliance(
    as_of: date | None = None, set: list[str] = Query(default_factory=list),
    principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK,
) -> dict:
    day = _day(as_of)
    return {"as_of": day.isoformat(), "counts": runs.noncompliance(session, principal, day, runs.parse_overrides(set))}


@router.get("/noncompliance.xlsx")
def noncompliance_xlsx(
    as_of: date | None = None, set: list[str] = Query(default_factory=list),
    principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK,
) -> Response:
    day = _day(as_of)
    counts = runs.noncompliance(session, principal, day, runs.parse_overrides(set))
    return _xlsx(export.noncompliance_workbook(counts, day, VERDICTS), f"noncompliance-{day.isoformat()}.xlsx")


@router.post("/admission")
def admission(body: AdmissionIn, principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK) -> dict:
    day = _day(body.as_of)
    report = runs.admission(session, principal, body.unit, day, runs.parse_overrides(body.overrides))
    return {"as_of": day.isoformat(), **runs.admission_view(report, principal)}


@router.post("/what-if")
def what_if(body: WhatIfIn, principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK) -> dict:
    return runs.what_if_view(runs.what_if(session, principal, body.as_of, runs.parse_overrides(body.overrides)))


@router.get("/what-if.xlsx")
def what_if_xlsx(
    as_of: date, set: list[str] = Query(default_factory=list),
    principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK,
) -> Response:
    overrides = runs.parse_overrides(set)
    diff = runs.what_if(session, principal, as_of, overrides)
    return _xlsx(export.what_if_workbook(diff, [str(o) for o in overrides]), f"what-if-{as_of.isoformat()}.xlsx")
