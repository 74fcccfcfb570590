"""The session scheduler: the declared timetable of each product runs by the clock.

Each product version declares its sessions ("HH:MM-HH:MM" windows, Asia/Shanghai) and optionally an opening call
auction ending by the first window. From these a trading day has boundaries, and between two boundaries a
*slot* with the phase it should have:

    before the auction / the first window      closed
    during the opening auction                 call_auction
    after the auction, before the first window auction_done (the auction has uncrossed)
    inside a window                            continuous
    between two windows                        break (DAY orders keep resting; no new orders)
    after the last window                      closed (DAY orders expire)

`run_schedule(session, actor, now)` brings every product into its slot's phase with the same journaled
SessionControl commands an operator sends, one audit entry per run that changed something. It is idempotent: a
second run in the same slot finds nothing to do, and each command's key names its product, slot and action, so two
processes racing through one boundary apply it once.

Manual override: whoever acts first in a slot wins. A session command sent by the operator after a boundary holds
until the next boundary, where the timetable takes over again (so a halt by `close` lasts until the next opening;
a longer halt is a product *suspension*, which the scheduler never touches: a suspended product still follows its
phases, so DAY orders expire at the close, but refuses new orders until the operator resumes it). A day that end of
day has ended is never reopened: the scheduler skips its openings and says so. There is no holiday calendar: every
calendar day has the sessions of the version in force on it, and a timetable noticed for a future day takes effect
from that day's first boundary.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingot.core.audit import record_change
from ingot.core.auth import ADMIN, Principal
from ingot.core.timeutil import SHANGHAI, utcnow
from ingot.market import trading, trading_days
from ingot.market.common import OPERATORS, OVERSEERS, require, trading_day
from ingot.market.engine import BREAK, CLOSE, CONTINUOUS, OPEN_AUCTION, UNCROSS
from ingot.market.models import Product, ProductVersion, SessionLog
from ingot.market.products import get_product, list_products, version_in_force

log = logging.getLogger(__name__)

CLOSED = "closed"
CALL_AUCTION = "call_auction"
AUCTION_DONE = "auction_done"
IN_CONTINUOUS = "continuous"
IN_BREAK = "break"
# The actor of the scheduler's commands in the journal and the audit log.
SCHEDULER = Principal(user_id=0, username="session-scheduler", role=ADMIN)

# The commands that take a product from its phase to its slot's phase. A pair not listed needs nothing: an open
# market is not taken back to an auction at the auction's boundary, and a closed one stays closed through a break.
_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    (CLOSED, CALL_AUCTION): (OPEN_AUCTION,),
    (CLOSED, AUCTION_DONE): (OPEN_AUCTION, UNCROSS),
    (CALL_AUCTION, AUCTION_DONE): (UNCROSS,),
    (CLOSED, IN_CONTINUOUS): (CONTINUOUS,),
    (CALL_AUCTION, IN_CONTINUOUS): (UNCROSS, CONTINUOUS),
    (AUCTION_DONE, IN_CONTINUOUS): (CONTINUOUS,),
    (IN_BREAK, IN_CONTINUOUS): (CONTINUOUS,),
    (IN_CONTINUOUS, IN_BREAK): (BREAK,),
    (AUCTION_DONE, IN_BREAK): (CONTINUOUS, BREAK),
    (CALL_AUCTION, IN_BREAK): (UNCROSS, CONTINUOUS, BREAK),
    (CALL_AUCTION, CLOSED): (CLOSE,),
    (AUCTION_DONE, CLOSED): (CLOSE,),
    (IN_CONTINUOUS, CLOSED): (CLOSE,),
    (IN_BREAK, CLOSED): (CLOSE,),
}
_OPENINGS = (CALL_AUCTION, IN_CONTINUOUS)


@dataclass(frozen=True)
class Slot:
    """The phase a product should be in, and the boundary (aware, UTC) from which it should be."""

    phase: str
    starts: datetime


def _at(day: date, hhmm: str) -> datetime:
    hours, minutes = hhmm.split(":")
    return datetime.combine(day, time(int(hours), int(minutes)), tzinfo=SHANGHAI)


def boundaries(version: ProductVersion, day: date) -> list[Slot]:
    """The day's boundaries in time order, each with the phase that starts there."""
    slots: list[Slot] = []
    if version.opening_auction:
        start, end = version.opening_auction.split("-")
        slots += [Slot(CALL_AUCTION, _at(day, start)), Slot(AUCTION_DONE, _at(day, end))]
    windows = list(version.sessions)
    for index, window in enumerate(windows):
        start, end = window.split("-")
        slots.append(Slot(IN_CONTINUOUS, _at(day, start)))
        slots.append(Slot(IN_BREAK if index < len(windows) - 1 else CLOSED, _at(day, end)))
    # An auction ending as the first window starts leaves no auction_done slot: the later phase of a moment wins.
    kept: dict[datetime, Slot] = {}
    for slot in slots:
        kept[slot.starts] = slot
    return sorted(kept.values(), key=lambda slot: slot.starts)


def slot_at(session: Session, product: Product, at: datetime) -> Slot | None:
    """The slot `at` falls in, by the version in force on its trading day; None when no version is in force."""
    day = trading_day(at)
    version = version_in_force(session, product, day)
    if version is None:
        return None
    earlier = [slot for slot in boundaries(version, day) if slot.starts <= at]
    if earlier:
        return earlier[-1]
    # Before the day's first boundary: still the close that ended the previous day's last session.
    yesterday = day - timedelta(days=1)
    previous = version_in_force(session, product, yesterday)
    if previous is not None:
        return boundaries(previous, yesterday)[-1]
    return Slot(CLOSED, _at(day, "00:00"))


def next_opening(session: Session, product: Product, at: datetime, *, horizon_days: int = 14) -> datetime | None:
    """When the product next opens (its auction, or a window) after `at`, skipping days already ended."""
    day = trading_day(at)
    for offset in range(horizon_days + 1):
        current = day + timedelta(days=offset)
        version = version_in_force(session, product, current)
        if version is None or trading_days.day_ended(session, current):
            continue
        for slot in boundaries(version, current):
            if slot.phase in _OPENINGS and slot.starts > at:
                return slot.starts
    return None


def _acted_since(session: Session, product: Product, moment: datetime) -> bool:
    return session.scalar(select(SessionLog.id).where(SessionLog.product_id == product.id, SessionLog.at >= moment)
                          .limit(1)) is not None


def run_schedule(session: Session, actor: Principal, now: datetime | None = None) -> list[dict]:
    """Bring every product's phase in line with its timetable at `now`; one row per product saying what it did."""
    require(actor, OPERATORS, "按交易时间表切换交易阶段", "run the trading timetable")
    at = now or utcnow()
    if at.tzinfo is None:
        raise ValueError("naive datetime: the scheduler's time carries its zone")
    phases = trading.phases(session)
    day = trading_day(at)
    report: list[dict] = []
    for product in list_products(session):
        slot = slot_at(session, product, at)
        before = phases.get(product.code, CLOSED)
        row = {"product": product.code, "phase_before": before, "scheduled": slot.phase if slot else None,
               "since": slot.starts.isoformat() if slot else None, "actions": [], "trades": [], "phase": before,
               "note": None}
        report.append(row)
        if slot is None:
            row["note"] = "not_in_force"
            continue
        path = _PATHS.get((before, slot.phase), ())
        if not path:
            continue
        if _acted_since(session, product, slot.starts):
            # Someone (the operator, or this scheduler) has already acted in this slot: their word holds.
            row["note"] = "manual_override"
            continue
        if any(action in trading.OPENING_ACTIONS for action in path) and trading_days.day_ended(session, day):
            row["note"] = "trading_day_ended"
            continue
        stamp = slot.starts.astimezone(SHANGHAI).strftime("%Y%m%dT%H%M")
        for action in path:
            fresh, trades = trading.apply_session_action(session, actor, product.code, action, at,
                                                         f"schedule:{product.code}:{stamp}:{action}")
            if fresh:  # else another process applied this very command first
                row["actions"].append(action)
                row["trades"] += trades
        row["phase"] = slot.phase
    changed = [row for row in report if row["actions"]]
    if changed:
        record_change(session, actor, "market_session", "schedule", "schedule", None,
                      {"at": at.isoformat(), "transitions": [{key: row[key] for key in
                                                              ("product", "phase_before", "actions", "phase", "since")}
                                                             for row in changed]})
    return report


def timetable(session: Session, actor: Principal, now: datetime | None = None) -> list[dict]:
    """Per product: its phase, the phase its timetable calls for now, today's timetable and the next opening."""
    require(actor, OVERSEERS, "查看交易时间表", "view the trading timetable")
    at = now or utcnow()
    phases = trading.phases(session)
    rows = []
    for product in list_products(session):
        version = version_in_force(session, product, trading_day(at))
        slot = slot_at(session, product, at)
        opening = next_opening(session, product, at)
        rows.append({
            "product": product.code, "phase": phases.get(product.code, CLOSED), "suspended": product.suspended,
            "scheduled": slot.phase if slot else None, "since": slot.starts.isoformat() if slot else None,
            "sessions": list(version.sessions) if version else [],
            "opening_auction": version.opening_auction if version else None,
            "next_opening": opening.isoformat() if opening else None,
        })
    return rows


def product_timetable(session: Session, code: str, now: datetime | None = None) -> dict:
    """The public part for one product: the phase and when it next opens (for the refusal of a closed market)."""
    product = get_product(session, code)
    at = now or utcnow()
    opening = next_opening(session, product, at)
    return {"product": code, "phase": trading.phases(session).get(code, CLOSED),
            "next_opening": opening.isoformat() if opening else None}


class SessionScheduler:
    """Runs `run_schedule` every `interval_seconds` in a daemon thread (inside `ingot serve` and `ingot demo`)."""

    def __init__(self, interval_seconds: float, url: str | None = None):
        self.interval_seconds = interval_seconds
        self.url = url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="market-session-scheduler", daemon=True)

    def start(self) -> "SessionScheduler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def run_once(self) -> list[dict]:
        from ingot.core.db import unit_of_work

        with unit_of_work(self.url) as session:
            return run_schedule(session, SCHEDULER)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                for row in self.run_once():
                    if row["actions"]:
                        log.info("market session %s: %s -> %s (%s)", row["product"], row["phase_before"], row["phase"],
                                 ", ".join(row["actions"]))
            except Exception:  # noqa: BLE001 - a failed pass (database busy, say) is retried at the next tick
                log.exception("market session scheduler pass failed")
            self._stop.wait(self.interval_seconds)
