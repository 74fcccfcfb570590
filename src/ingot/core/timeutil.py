"""Times are stored in UTC and shown in Asia/Shanghai."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every time in Ingot carries its zone")
    return moment.astimezone(timezone.utc)


def shown(moment: datetime | None) -> str:
    """Format for display in Asia/Shanghai; naive values from SQLite are UTC."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
