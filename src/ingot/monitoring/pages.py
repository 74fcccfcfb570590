"""Monitoring pages: overview at /monitoring, a point's charts, and the alarm inbox. All behind login, all scoped."""
from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path

import yaml
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from ingot.api.deps import UNIT_OF_WORK, RecordId, current_principal, language
from ingot.core.auth import Principal
from ingot.core.errors import DomainError
from ingot.core.timeutil import utcnow
from ingot.monitoring import commands, service
from ingot.monitoring.alarms import change_alarm_state
from ingot.monitoring.charts import line_chart
from ingot.web.rendering import add_template_dir, render

router = APIRouter(include_in_schema=False)
add_template_dir(Path(__file__).with_name("templates"))


@lru_cache(maxsize=1)
def _ui() -> dict:
    return yaml.safe_load(Path(__file__).with_name("ui.yaml").read_text(encoding="utf-8"))


def _helpers(lang: str) -> dict:
    ui = _ui()

    def tm(key: str) -> str:
        entry = ui["strings"].get(key)
        return key if entry is None else entry["en" if lang == "en" else "zh"]

    def pollutant_name(code: str) -> str:
        entry = ui["pollutants"].get(code)
        return code if entry is None else f'{entry["en" if lang == "en" else "zh"]} ({code})'

    return {"tm": tm, "pollutant_name": pollutant_name}


def _enterprise_names(session: Session, ids: set[int]) -> dict[int, str]:
    from ingot.registry.models import Enterprise

    if not ids:
        return {}
    return dict(session.execute(select(Enterprise.id, Enterprise.name).where(Enterprise.id.in_(ids))).all())


def _province_names(session: Session, codes: set[str], lang: str) -> dict[str, str]:
    from ingot.registry.models import Division

    if not codes:
        return {}
    rows = session.execute(select(Division.code, Division.name_zh, Division.name_en).where(Division.code.in_(codes)))
    return {code: (name_en if lang == "en" else name_zh) for code, name_zh, name_en in rows}


@router.get("/monitoring")
def overview_page(request: Request, province: str = "", enterprise_id: str = "", pollutant: str = "",
                  principal: Principal = Depends(current_principal), lang: str = Depends(language),
                  session: Session = UNIT_OF_WORK):
    everything = service.list_points(session, principal)
    enterprise_filter = int(enterprise_id) if enterprise_id.isdigit() else None
    try:
        rows = service.overview(session, principal, province=province or None, enterprise_id=enterprise_filter,
                                pollutant=pollutant or None)
        error = None
    except DomainError as failure:
        rows, error = [], failure.message(lang)
    provinces = _province_names(session, {point.division_code[:2] + "0000" for point in everything}, lang)
    enterprises = _enterprise_names(session, {point.enterprise_id for point in everything})
    pollutants = sorted({code for point in everything for code in point.pollutants or []})
    counts = {status: sum(1 for row in rows if row["status"] == status)
              for status in ("normal", "exceedance", "missing_data", "alarm", "inactive")}
    return render(request, "monitoring_overview.html", principal, lang, rows=rows, provinces=provinces,
                  enterprises=enterprises, pollutants=pollutants, counts=counts, error=error,
                  chosen={"province": province, "enterprise_id": enterprise_id, "pollutant": pollutant},
                  **_helpers(lang))


@router.get("/monitoring/points/{point_id}")
def point_page(request: Request, point_id: RecordId, principal: Principal = Depends(current_principal),
               lang: str = Depends(language), session: Session = UNIT_OF_WORK):
    return _point_page(request, point_id, principal, lang, session)


# The point page's command form posts every field it has; those a command does not take arrive empty and are dropped.
_COMMAND_FORM_FIELDS = ("SystemTime", "RtdInterval", "MinInterval", "BeginTime", "EndTime")


def _form_time(value: str) -> str:
    """A datetime-local field (Beijing time, as the page shows times) as the zoned ISO time the service takes."""
    value = value.strip()
    return f"{value}+08:00" if value and "T" in value and "+" not in value and not value.endswith("Z") else value


@router.post("/monitoring/points/{point_id}/commands")
async def queue_command_form(request: Request, point_id: RecordId, principal: Principal = Depends(current_principal),
                             lang: str = Depends(language), session: Session = UNIT_OF_WORK):
    form = await request.form()
    params = {name: _form_time(str(form.get(name, ""))) if name.endswith("Time") else str(form.get(name, "")).strip()
              for name in _COMMAND_FORM_FIELDS if str(form.get(name, "")).strip()}
    try:
        commands.queue_command(session, principal, point_id, str(form.get("cn", "")), params)
    except DomainError as failure:
        if failure.status_code == 404:
            raise
        return _point_page(request, point_id, principal, lang, session, command_error=failure.message(lang),
                           status_code=failure.status_code)
    return RedirectResponse(f"/monitoring/points/{point_id}#commands", status_code=303)


def _point_page(request: Request, point_id: int, principal: Principal, lang: str, session: Session, *,
                command_error: str | None = None, status_code: int = 200):
    helpers = _helpers(lang)
    point = service.get_point(session, principal, point_id)
    now = utcnow()
    limits = {limit["pollutant"]: limit for limit in point["limits"]}
    minute_rows = service.query_measurements(session, principal, service.SeriesQuery(
        point_id, None, "minute", now - timedelta(hours=3), now))
    hourly_rows = service.query_measurements(session, principal, service.SeriesQuery(
        point_id, None, "hour", now - timedelta(hours=48), now))
    charts = []
    for code in point["pollutants"]:
        limit = limits.get(code)
        limit_lines = [(helpers["tm"]("limit"), limit["value"])] if limit else []
        unit = limit["unit"] if limit else _ui()["pollutants"].get(code, {}).get("unit", "")
        minute_series = [(row["data_time"], row["avg"]) for row in minute_rows
                         if row["pollutant"] == code and row["avg"] is not None]
        hourly_series = [(row["data_time"], row["zs_avg"] if row["zs_avg"] is not None else row["avg"]) for row in hourly_rows
                         if row["pollutant"] == code and (row["zs_avg"] is not None or row["avg"] is not None)]
        charts.append({
            "pollutant": code,
            "limit": limit,
            "minute": line_chart([(helpers["pollutant_name"](code), minute_series)], limits=limit_lines, unit=unit,
                                 empty_text=helpers["tm"]("no_data")),
            "hourly": line_chart([(helpers["pollutant_name"](code), hourly_series)], limits=limit_lines, unit=unit,
                                 empty_text=helpers["tm"]("no_data")),
        })
    packets = service.list_packets(session, principal, point_id, limit=20)
    alarms = service.list_alarms(session, principal, point_id=point_id, limit=20)
    enterprise = _enterprise_names(session, {point["enterprise_id"]}).get(point["enterprise_id"], "")
    return render(request, "monitoring_point.html", principal, lang, status_code, point=point, enterprise=enterprise,
                  charts=charts, packets=packets, alarms=alarms,
                  commands=commands.list_commands(session, principal, point_id, limit=20),
                  command_codes=commands.catalogue(), can_command=commands.may_send_commands(principal),
                  command_error=command_error, **helpers)


@router.get("/monitoring/alarms")
def alarm_inbox(request: Request, state: str = "open", kind: str = "", principal: Principal = Depends(current_principal),
                lang: str = Depends(language), session: Session = UNIT_OF_WORK):
    state_filter = state if state in ("open", "acknowledged", "closed") else None
    kind_filter = kind if kind in ("exceedance", "missing_data", "flag") else None
    alarms = service.list_alarms(session, principal, state=state_filter, kind=kind_filter, limit=300)
    points = {point.id: point for point in service.list_points(session, principal)}
    enterprises = _enterprise_names(session, {alarm.enterprise_id for alarm in alarms})
    return render(request, "monitoring_alarms.html", principal, lang, alarms=alarms, points=points,
                  enterprises=enterprises, state=state if state_filter else "all", kind=kind_filter or "",
                  can_act=principal.role != "auditor", **_helpers(lang))


@router.post("/monitoring/alarms/{alarm_id}/{action}")
def alarm_action(request: Request, alarm_id: RecordId, action: str, note: str = Form(""),
                 principal: Principal = Depends(current_principal), session: Session = UNIT_OF_WORK):
    change_alarm_state(session, principal, alarm_id, action, note)
    back = request.headers.get("referer", "")
    # Only back to a local alarm page; anything else goes to the inbox.
    target = "/monitoring/alarms"
    if back:
        from urllib.parse import urlsplit

        parts = urlsplit(back)
        if parts.path.startswith("/monitoring") and parts.netloc in ("", request.url.netloc):
            target = parts.path + (f"?{parts.query}" if parts.query else "")
    return RedirectResponse(target, status_code=303)
