"""The centre's trading days (`market_trading_days`): opened by a day's first session, ended by its end of day.

This table, not the audit log, is what the rules read: a day that has ended cannot reopen and takes no trade
(409 `trading_day_ended`). End of day still writes its audit entry; the audit log stays the audit.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingot.core.auth import Principal
from ingot.market.common import OVERSEERS, require
from ingot.market.models import TradingDay

OPEN = "open"
ENDED = "ended"


def day_ended(session: Session, day: date) -> bool:
    return session.scalar(select(TradingDay.state).where(TradingDay.day == day)) == ENDED


def mark_open(session: Session, day: date, at: datetime) -> TradingDay:
    """The day's first session opens it; later sessions of the same day leave the row as it is."""
    row = session.get(TradingDay, day)
    if row is None:
        row = TradingDay(day=day, state=OPEN, opened_at=at, settlement_prices={}, statements=0, reconciliation={})
        session.add(row)
        session.flush()
    return row


def mark_ended(session: Session, actor: Principal, day: date, at: datetime, *, settlement_prices: dict,
               statements: int, reconciliation: dict) -> TradingDay:
    row = session.get(TradingDay, day)
    if row is None:
        # A day on which no session opened (nothing traded) still ends, with its settlement prices carried over.
        row = TradingDay(day=day, opened_at=None)
        session.add(row)
    row.state, row.ended_at, row.ended_by_id, row.ended_by = ENDED, at, actor.user_id, actor.username
    row.settlement_prices, row.statements, row.reconciliation = settlement_prices, statements, reconciliation
    session.flush()
    return row


def list_trading_days(session: Session, actor: Principal, *, limit: int = 100) -> list[TradingDay]:
    """Newest first. The centre, regulators and auditors see them: they are the market's own record."""
    require(actor, OVERSEERS, "查看交易日", "list trading days")
    return list(session.scalars(select(TradingDay).order_by(TradingDay.day.desc()).limit(limit)))


def trading_day_view(row: TradingDay) -> dict:
    return {
        "day": row.day.isoformat(), "state": row.state,
        "opened_at": row.opened_at.isoformat() if row.opened_at else None,
        "ended_at": row.ended_at.isoformat() if row.ended_at else None, "ended_by": row.ended_by,
        "settlement_prices": row.settlement_prices or {}, "statements": row.statements,
        "reconciliation": row.reconciliation or {},
    }
