"""REST resources of online monitoring under /api/monitoring; handlers translate HTTP to service calls.

Measured values and limits are sent as decimal strings so no client ever sees a binary float.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from ingot.api.deps import UNIT_OF_WORK, OptionalRecordId, RecordId, current_principal
from ingot.core.auth import Principal
from ingot.monitoring import commands, service
from ingot.monitoring.alarms import alarm_view, change_alarm_state
from ingot.monitoring.models import COMMAND_STATES

router = APIRouter(prefix="/api/monitoring", tags=["monitoring"])

Kind = Literal["rtd", "minute", "hour", "day"]
Aggregation = Literal["none", "hour", "day"]
AlarmState = Literal["open", "acknowledged", "closed"]
AlarmKind = Literal["exceedance", "missing_data", "flag"]
CommandState = Literal[COMMAND_STATES]


def plain(value):
    """Decimals as exact strings, times as ISO 8601 with their zone, recursively."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PointIn(_Strict):
    site_id: int
    name: str = Field(min_length=1, max_length=128)
    mn: str = Field(min_length=1, max_length=24)
    password: str = Field(min_length=1, max_length=9)
    pollutants: list[str] = Field(min_length=1)
    active: bool = True


class PointPatch(_Strict):
    name: str | None = Field(None, min_length=1, max_length=128)
    mn: str | None = Field(None, min_length=1, max_length=24)
    password: str | None = Field(None, min_length=1, max_length=9)
    pollutants: list[str] | None = Field(None, min_length=1)
    active: bool | None = None


class LimitIn(_Strict):
    # A string or an integer: an exact decimal, never a binary float.
    value: str | int
    unit: str = Field(min_length=1, max_length=16)
    source_standard: str = Field(min_length=1, max_length=128)
    clause: str = Field("", max_length=128)
    is_demo: bool = False


class AlarmAction(_Strict):
    note: str = Field("", max_length=2000)


class CommandIn(_Strict):
    # The code and the fields are checked against the command catalogue by the service (422 naming the field).
    cn: str = Field(min_length=1, max_length=8)
    params: dict[Annotated[str, Field(max_length=32)], Annotated[str, Field(max_length=64)] | int] = Field(
        default_factory=dict, max_length=8)


@router.get("/points")
def list_points(province: str | None = Query(None, pattern=r"^\d{6}$"), enterprise_id: OptionalRecordId = None,
                pollutant: str | None = Query(None, pattern=r"^[a-z][0-9]{5}$"),
                principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    points = service.list_points(session, principal, province=province, enterprise_id=enterprise_id, pollutant=pollutant)
    return plain([service.point_view(point) for point in points])


@router.post("/points", status_code=201)
def create_point(body: PointIn, principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return plain(service.create_point(session, principal, body.model_dump()))


@router.get("/points/{point_id}")
def get_point(point_id: RecordId, principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return plain(service.get_point(session, principal, point_id))


@router.patch("/points/{point_id}")
def update_point(point_id: RecordId, body: PointPatch, principal: Principal = Depends(current_principal),
                 session: Session = UNIT_OF_WORK):
    return plain(service.update_point(session, principal, point_id, body.model_dump(exclude_unset=True)))


@router.delete("/points/{point_id}", status_code=204)
def delete_point(point_id: RecordId, principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    service.delete_point(session, principal, point_id)
    return Response(status_code=204)


@router.get("/points/{point_id}/limits")
def list_limits(point_id: RecordId, principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return plain(service.list_limits(session, principal, point_id))


@router.put("/points/{point_id}/limits/{pollutant}")
def set_limit(body: LimitIn, point_id: RecordId, pollutant: str = Path(pattern=r"^[a-z][0-9]{5}$"),
              principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return plain(service.set_limit(session, principal, point_id, pollutant, body.model_dump()))


@router.delete("/points/{point_id}/limits/{pollutant}", status_code=204)
def delete_limit(point_id: RecordId, pollutant: str = Path(pattern=r"^[a-z][0-9]{5}$"),
                 principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    service.delete_limit(session, principal, point_id, pollutant)
    return Response(status_code=204)


@router.get("/points/{point_id}/measurements")
def measurements(point_id: RecordId, start: datetime | None = None, end: datetime | None = None, kind: Kind = "minute",
                 aggregation: Aggregation = "none",
                 pollutant: str | None = Query(None, pattern=r"^[a-z][0-9]{5}$"),
                 principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    """Stored values of one kind, or hourly (from minute values) / daily (from hourly values) aggregates computed
    with the validity rules of HJ 212-2017 appendix D; times are ISO 8601 with a zone."""
    query = service.SeriesQuery(point_id, pollutant, kind, start, end, aggregation)
    return plain(service.query_measurements(session, principal, query))


@router.get("/points/{point_id}/packets")
def packets(point_id: RecordId, start: datetime | None = None, end: datetime | None = None, accepted: bool | None = None,
            limit: int = Query(100, ge=1, le=1000), principal: Principal = Depends(current_principal),
            session: Session = UNIT_OF_WORK):
    return plain(service.list_packets(session, principal, point_id, start=start, end=end, accepted=accepted, limit=limit))


@router.get("/overview")
def overview(province: str | None = Query(None, pattern=r"^\d{6}$"), enterprise_id: OptionalRecordId = None,
             pollutant: str | None = Query(None, pattern=r"^[a-z][0-9]{5}$"),
             principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    rows = service.overview(session, principal, province=province, enterprise_id=enterprise_id, pollutant=pollutant)
    for row in rows:
        for value in row["values"]:
            limit = value.pop("limit")
            value["limit"] = None if limit is None else {"value": limit.value, "unit": limit.unit, "is_demo": limit.is_demo}
    return plain(rows)


@router.get("/alarms")
def alarms(state: AlarmState | None = None, kind: AlarmKind | None = None, point_id: OptionalRecordId = None,
           limit: int = Query(200, ge=1, le=1000), offset: int = Query(0, ge=0),
           principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    found = service.list_alarms(session, principal, state=state, kind=kind, point_id=point_id, limit=limit, offset=offset)
    return plain([alarm_view(alarm) for alarm in found])


@router.post("/alarms/{alarm_id}/acknowledge")
def acknowledge(alarm_id: RecordId, body: AlarmAction | None = None, principal: Principal = Depends(current_principal),
                session: Session = UNIT_OF_WORK):
    return plain(alarm_view(change_alarm_state(session, principal, alarm_id, "acknowledge", (body or AlarmAction()).note)))


@router.post("/alarms/{alarm_id}/close")
def close(alarm_id: RecordId, body: AlarmAction | None = None, principal: Principal = Depends(current_principal),
          session: Session = UNIT_OF_WORK):
    return plain(alarm_view(change_alarm_state(session, principal, alarm_id, "close", (body or AlarmAction()).note)))


@router.get("/command-codes")
def command_codes(principal: Principal = Depends(current_principal)):
    """The commands the platform can send to devices, with their fields (HJ 212-2017 tables 4 and 9)."""
    return commands.catalogue()


@router.post("/points/{point_id}/commands", status_code=201)
def queue_command(point_id: RecordId, body: CommandIn, principal: Principal = Depends(current_principal),
                  session: Session = UNIT_OF_WORK):
    """Queue a command for the point's device (regulators in scope and administrators); the receiver process sends
    it and records the device's 9011/9012 answers; poll the command to follow it."""
    return plain(commands.queue_command(session, principal, point_id, body.cn, body.params))


@router.get("/points/{point_id}/commands")
def list_commands(point_id: RecordId, state: CommandState | None = None, limit: int = Query(50, ge=1, le=500),
                  principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    return plain(commands.list_commands(session, principal, point_id, state=state, limit=limit))


@router.get("/commands/{command_id}")
def get_command(command_id: RecordId, principal: Principal = Depends(current_principal),
                session: Session = UNIT_OF_WORK):
    return plain(commands.get_command(session, principal, command_id))
