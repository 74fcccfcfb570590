"""Commands the platform sends to devices: the catalogue of supported requests (HJ 212-2017 table 9 with the fields
of table 4), the durable queue users fill through the API, CLI and point page, and the steps the receiver process
records while it executes them (ingot.monitoring.jobs).

The web API and the receiver are separate processes, so a command is a row: queued by a regulator or an
administrator, picked up by the receiver that holds the device's connection, and written back with the device's
9011 (QnRtn, table 7), 9012 (ExeRtn, table 6) and whatever the device uploaded in reply.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ingot.core.audit import record_change
from ingot.core.auth import ADMIN, REGULATOR, SYSTEM, Principal
from ingot.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from ingot.core.timeutil import SHANGHAI, utcnow
from ingot.monitoring.hj212.codes import EXECUTION_RESULTS, REQUEST_ANSWERS
from ingot.monitoring.models import COMMAND_STATES, FINAL_COMMAND_STATES, MonitoringPoint, PlatformCommand

# --- the catalogue --------------------------------------------------------------------------------------------

TIME_FIELD = re.compile(r"^\d{14}$")  # table 4: YYYYMMDDhhmmss, Beijing time
# Table 4: MinInterval takes only these values (minutes).
MINUTE_INTERVALS = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)


@dataclass(frozen=True)
class ParamSpec:
    name: str
    kind: str                  # "time" (table 4 N14) | "integer" | "choice"
    required: bool = True
    low: int | None = None
    high: int | None = None
    choices: tuple[int, ...] = ()
    zh: str = ""
    en: str = ""


@dataclass(frozen=True)
class CommandSpec:
    cn: str
    zh: str
    en: str
    params: tuple[ParamSpec, ...] = ()
    # History requests: the longest span one request may cover, so a reply stays a bounded number of packets.
    max_span: timedelta | None = None

    @property
    def is_history(self) -> bool:
        return self.max_span is not None


_HISTORY_PARAMS = (ParamSpec("BeginTime", "time", zh="开始时间", en="begin time"),
                   ParamSpec("EndTime", "time", zh="截止时间", en="end time"))

COMMANDS: dict[str, CommandSpec] = {spec.cn: spec for spec in (
    CommandSpec("1011", "提取现场机时间", "read the device time"),
    # Without SystemTime the receiver sends its own clock at the moment of sending: time calibration.
    CommandSpec("1012", "设置现场机时间（校时）", "set the device time (time calibration)",
                (ParamSpec("SystemTime", "time", required=False, zh="系统时间（缺省为发送时的平台时间）",
                           en="system time (default: the platform's time when sent)"),)),
    CommandSpec("1061", "提取实时数据间隔", "read the real-time data interval"),
    CommandSpec("1062", "设置实时数据间隔", "set the real-time data interval",
                (ParamSpec("RtdInterval", "integer", low=30, high=3600, zh="实时数据间隔（秒，30–3600）",
                           en="real-time data interval (seconds, 30-3600)"),)),
    CommandSpec("1063", "提取分钟数据间隔", "read the minute data interval"),
    CommandSpec("1064", "设置分钟数据间隔", "set the minute data interval",
                (ParamSpec("MinInterval", "choice", choices=MINUTE_INTERVALS,
                           zh="分钟数据间隔（分钟：1、2、3、4、5、6、10、12、15、20、30）",
                           en="minute data interval (minutes: 1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)"),)),
    CommandSpec("2051", "提取污染物分钟历史数据", "retrieve historical minute data", _HISTORY_PARAMS, timedelta(days=1)),
    CommandSpec("2061", "提取污染物小时历史数据", "retrieve historical hourly data", _HISTORY_PARAMS, timedelta(days=31)),
    CommandSpec("2031", "提取污染物日历史数据", "retrieve historical daily data", _HISTORY_PARAMS, timedelta(days=366)),
)}

# Tables 6 and 7 in English; the Chinese names are the codec's (ingot.monitoring.hj212.codes).
_EXECUTION_EN = {1: "executed", 2: "failed, reason unknown", 3: "request conditions wrong", 4: "communication time-out",
                 5: "system busy", 6: "system fault", 100: "no data"}
_REQUEST_EN = {1: "ready to execute", 2: "request refused", 3: "PW wrong", 4: "MN wrong", 5: "ST wrong",
               6: "Flag wrong", 7: "QN wrong", 8: "CN wrong", 9: "CRC wrong", 100: "unknown error"}

MAX_REPLY_TIMES = 1440  # data times listed in a history command's reply (a day of minutes)


def catalogue() -> list[dict]:
    return [{"cn": spec.cn, "name": spec.zh, "name_en": spec.en,
             "params": [{"name": p.name, "kind": p.kind, "required": p.required, "description": p.zh,
                         "description_en": p.en, **({"low": p.low, "high": p.high} if p.kind == "integer" else {}),
                         **({"choices": list(p.choices)} if p.choices else {})} for p in spec.params],
             **({"max_span_days": spec.max_span.days} if spec.max_span else {})}
            for spec in COMMANDS.values()]


def _device_time(value: Any, name: str) -> str:
    """A table 4 time: YYYYMMDDhhmmss as given (Beijing time), or an ISO 8601 time with its zone."""
    text = str(value).strip()
    if TIME_FIELD.match(text):
        try:
            datetime.strptime(text, "%Y%m%d%H%M%S")
        except ValueError:
            pass
        else:
            return text
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment.astimezone(SHANGHAI).strftime("%Y%m%d%H%M%S")
        if moment is not None:
            raise InvalidInput(f"params.{name}：时间须带时区（如 2026-11-01T08:00:00+08:00）或为 YYYYMMDDhhmmss",
                               f"params.{name}: the time needs a zone (e.g. 2026-11-01T08:00:00+08:00) or must be "
                               "YYYYMMDDhhmmss", field=f"params.{name}", code="naive_time")
    raise InvalidInput(f"params.{name}：须为 YYYYMMDDhhmmss（北京时间）或带时区的 ISO 8601 时间：{text!r}",
                       f"params.{name}: must be YYYYMMDDhhmmss (Beijing time) or an ISO 8601 time with a zone: {text!r}",
                       field=f"params.{name}", code="time_invalid")


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or isinstance(value, float):
        raise InvalidInput(f"params.{name}：须为整数", f"params.{name}: must be an integer", field=f"params.{name}",
                           code="not_an_integer")
    text = str(value).strip()
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        raise InvalidInput(f"params.{name}：须为整数：{text!r}", f"params.{name}: must be an integer: {text!r}",
                           field=f"params.{name}", code="not_an_integer")
    return int(text)


def validate_command(cn: Any, params: Any) -> tuple[str, dict[str, str]]:
    """(CN, the CP fields to send) for a supported command with valid fields, else InvalidInput naming the field."""
    spec = COMMANDS.get(str(cn).strip()) if isinstance(cn, (str, int)) and not isinstance(cn, bool) else None
    if spec is None:
        codes = ", ".join(COMMANDS)
        raise InvalidInput(f"cn：不支持的命令编码 {cn!r}，可用：{codes}", f"cn: unsupported command code {cn!r}; supported: {codes}",
                           field="cn", code="command_unsupported")
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise InvalidInput("params：须为字段名到取值的对象", "params: must be an object of field name to value",
                           field="params", code="params_invalid")
    allowed = {p.name: p for p in spec.params}
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        expected = ", ".join(allowed) or "无 / none"
        raise InvalidInput(f"params.{unknown[0]}：命令 {spec.cn} 没有此字段（可用：{expected}）",
                           f"params.{unknown[0]}: command {spec.cn} has no such field (expected: {expected})",
                           field=f"params.{unknown[0]}", code="unknown_field")
    cleaned: dict[str, str] = {}
    for param in spec.params:
        value = params.get(param.name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if param.required:
                raise InvalidInput(f"params.{param.name}：命令 {spec.cn} 需要{param.zh}",
                                   f"params.{param.name}: command {spec.cn} needs the {param.en}",
                                   field=f"params.{param.name}", code="missing")
            continue
        if param.kind == "time":
            cleaned[param.name] = _device_time(value, param.name)
        else:
            number = _integer(value, param.name)
            if param.kind == "integer" and not param.low <= number <= param.high:
                raise InvalidInput(f"params.{param.name}：须在 {param.low} 到 {param.high} 之间（HJ 212-2017 表 4）",
                                   f"params.{param.name}: must be between {param.low} and {param.high} (HJ 212-2017 table 4)",
                                   field=f"params.{param.name}", code="out_of_range")
            if param.kind == "choice" and number not in param.choices:
                values = "、".join(str(c) for c in param.choices)
                raise InvalidInput(f"params.{param.name}：须为 {values} 之一（HJ 212-2017 表 4）",
                                   f"params.{param.name}: must be one of {', '.join(str(c) for c in param.choices)} "
                                   "(HJ 212-2017 table 4)", field=f"params.{param.name}", code="not_allowed")
            cleaned[param.name] = str(number)
    if spec.is_history:
        begin, end = (datetime.strptime(cleaned[name], "%Y%m%d%H%M%S") for name in ("BeginTime", "EndTime"))
        if begin > end:
            raise InvalidInput("params.BeginTime：开始时间须不晚于截止时间", "params.BeginTime: must not be after EndTime",
                               field="params.BeginTime", code="empty_time_range")
        if end - begin > spec.max_span:
            raise InvalidInput(f"params.EndTime：一次最多提取 {spec.max_span.days} 天",
                               f"params.EndTime: one request covers at most {spec.max_span.days} day(s)",
                               field="params.EndTime", code="time_range_too_long")
    return spec.cn, cleaned


# --- views ----------------------------------------------------------------------------------------------------


def command_view(command: PlatformCommand) -> dict:
    spec = COMMANDS.get(command.cn)
    return {
        "id": command.id, "point_id": command.point_id, "enterprise_id": command.enterprise_id,
        "division_code": command.division_code, "mn": command.mn, "cn": command.cn,
        "name": spec.zh if spec else command.cn, "name_en": spec.en if spec else command.cn,
        "params": dict(command.params or {}), "requested_by": command.requested_by,
        "requested_at": command.requested_at, "state": command.state, "qn": command.qn,
        "sent_at": command.sent_at, "accepted_at": command.accepted_at, "finished_at": command.finished_at,
        "qn_rtn": command.qn_rtn, "qn_rtn_text": REQUEST_ANSWERS.get(command.qn_rtn),
        "qn_rtn_text_en": _REQUEST_EN.get(command.qn_rtn),
        "exe_rtn": command.exe_rtn, "exe_rtn_text": EXECUTION_RESULTS.get(command.exe_rtn),
        "exe_rtn_text_en": _EXECUTION_EN.get(command.exe_rtn),
        "reply": command.reply, "detail": command.detail,
    }


# --- what users do --------------------------------------------------------------------------------------------


def may_send_commands(principal: Principal) -> bool:
    return principal.role in (ADMIN, REGULATOR)


def queue_command(session: Session, principal: Principal, point_id: Any, cn: Any, params: Any = None) -> dict:
    """Queue a command for a point's device; the receiver process sends it (regulators in scope, administrators)."""
    from ingot.monitoring.service import visible_point

    if not may_send_commands(principal):
        raise Forbidden("仅监管人员和管理员可向设备下发命令", "only regulators and administrators may send commands to devices",
                        code="command_forbidden")
    point = visible_point(session, principal, point_id)
    code, cleaned = validate_command(cn, params)
    if not point.active:
        raise Conflict("该监测点已停用，不能下发命令", "the point is inactive; no command can be sent to it",
                       field="point_id", code="point_inactive")
    command = PlatformCommand(point_id=point.id, enterprise_id=point.enterprise_id, division_code=point.division_code,
                              mn=point.mn, cn=code, params=cleaned, requested_by=principal.username,
                              requested_by_id=principal.user_id, requested_at=utcnow(), state="queued", detail="")
    session.add(command)
    session.flush()
    view = command_view(command)
    record_change(session, principal, "monitoring_command", command.id, "create", None, view,
                  division_code=point.division_code, enterprise_id=point.enterprise_id)
    return view


def _scoped_commands(principal: Principal):
    from ingot.monitoring.service import _scoped

    return _scoped(select(PlatformCommand), principal, PlatformCommand)


def list_commands(session: Session, principal: Principal, point_id: Any, *, state: str | None = None,
                  limit: int = 50) -> list[dict]:
    """A point's commands, newest first; the owning enterprise, regulators in scope, administrators and auditors."""
    from ingot.monitoring.service import visible_point

    point = visible_point(session, principal, point_id)
    if state is not None and state not in COMMAND_STATES:
        raise InvalidInput(f"state：须为 {', '.join(COMMAND_STATES)} 之一", f"state: must be one of {', '.join(COMMAND_STATES)}",
                           field="state", code="state_invalid")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 500:
        raise InvalidInput("limit：须在 1 到 500 之间", "limit: must be between 1 and 500", field="limit",
                           code="limit_out_of_range")
    query = (select(PlatformCommand).where(PlatformCommand.point_id == point.id)
             .order_by(PlatformCommand.requested_at.desc(), PlatformCommand.id.desc()).limit(limit))
    if state:
        query = query.where(PlatformCommand.state == state)
    return [command_view(command) for command in session.scalars(query)]


def get_command(session: Session, principal: Principal, command_id: Any) -> dict:
    try:
        wanted = int(command_id)
    except (TypeError, ValueError):
        wanted = None
    command = session.scalar(_scoped_commands(principal).where(PlatformCommand.id == wanted)) if wanted is not None else None
    if command is None:
        raise NotFound(f"命令不存在：{command_id}", f"no such command: {command_id}", field="command_id",
                       code="command_not_found")
    return command_view(command)


# --- what the receiver process records ------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingCommand:
    id: int
    mn: str
    cn: str
    params: dict[str, str]
    requested_at: datetime | None = None


def queued_commands(session: Session, limit: int = 100) -> list[PendingCommand]:
    rows = session.scalars(select(PlatformCommand).where(PlatformCommand.state == "queued")
                           .order_by(PlatformCommand.id).limit(limit))
    return [PendingCommand(row.id, row.mn, row.cn, dict(row.params or {}), row.requested_at) for row in rows]


def device_busy(session: Session, mn: str) -> bool:
    """Whether a command to this device is under way (sent or accepted), in whichever receiver process sends it."""
    return session.scalar(select(PlatformCommand.id).where(PlatformCommand.mn == mn,
                                                           PlatformCommand.state.in_(("sent", "accepted"))).limit(1)) is not None


def _transition(session: Session, command_id: int, from_states: tuple[str, ...], changes: dict,
                actor: Principal) -> bool:
    """Move a command on if it is still in one of `from_states` (a conditional UPDATE, so two receivers can never
    both take the same command), audited; False when it had moved on already."""
    command = session.get(PlatformCommand, command_id)
    if command is None or command.state not in from_states:
        return False
    before = command_view(command)
    claimed = session.execute(update(PlatformCommand)
                              .where(PlatformCommand.id == command_id, PlatformCommand.state.in_(from_states))
                              .values(**changes)).rowcount
    if not claimed:
        return False
    session.refresh(command)
    record_change(session, actor, "monitoring_command", command_id, "update", before, command_view(command),
                  division_code=command.division_code, enterprise_id=command.enterprise_id)
    return True


def claim_command(session: Session, command_id: int, params: dict[str, str], *, now: datetime | None = None,
                  actor: Principal = SYSTEM) -> bool:
    """queued → sent, with the fields actually sent (time calibration fills in the platform's time)."""
    return _transition(session, command_id, ("queued",), {"state": "sent", "params": params, "sent_at": now or utcnow()},
                       actor)


def record_sent(session: Session, command_id: int, qn: str, *, actor: Principal = SYSTEM) -> bool:
    return _transition(session, command_id, ("sent",), {"qn": qn}, actor)


def record_accepted(session: Session, command_id: int, qn_rtn: int, *, now: datetime | None = None,
                    actor: Principal = SYSTEM) -> bool:
    return _transition(session, command_id, ("sent",), {"state": "accepted", "qn_rtn": qn_rtn,
                                                        "accepted_at": now or utcnow()}, actor)


def finish_command(session: Session, command_id: int, state: str, *, qn: str | None = None, qn_rtn: int | None = None,
                   exe_rtn: int | None = None, reply: dict | None = None, detail: str = "",
                   now: datetime | None = None, actor: Principal = SYSTEM) -> bool:
    if state not in FINAL_COMMAND_STATES:
        raise ValueError(f"not a final command state: {state}")
    changes = {"state": state, "finished_at": now or utcnow(), "detail": detail[:512]}
    for name, value in (("qn", qn), ("qn_rtn", qn_rtn), ("exe_rtn", exe_rtn), ("reply", reply)):
        if value is not None:
            changes[name] = value
    return _transition(session, command_id, ("queued", "sent", "accepted"), changes, actor)


def abandon_unfinished(session: Session, *, now: datetime | None = None, actor: Principal = SYSTEM) -> int:
    """Commands a previous receiver sent but never saw finish (it stopped): timed out, since no answer can reach
    them any more. Run when a receiver starts."""
    ids = list(session.scalars(select(PlatformCommand.id).where(PlatformCommand.state.in_(("sent", "accepted")))))
    for command_id in ids:
        finish_command(session, command_id, "timed_out", now=now, actor=actor,
                       detail="接收服务在设备应答前重启 / the receiver restarted before the device answered")
    return len(ids)


def point_is_active(session: Session, mn: str) -> bool:
    return bool(session.scalar(select(MonitoringPoint.active).where(MonitoringPoint.mn == mn)))
