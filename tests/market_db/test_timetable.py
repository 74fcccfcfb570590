"""The session scheduler runs each product's declared timetable by the clock, driven here with explicit times: either
side of every boundary, the midday break (DAY orders survive it) and the close (they expire), overnight, an opening
call auction from a notice-dated change of the timetable taking effect the next day, manual overrides, suspensions
and a day closed by end of day."""
from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from ingot.core.audit import AuditEntry
from ingot.core.errors import DomainError
from ingot.core.timeutil import SHANGHAI
from ingot.market import gateway, products, timetable, trading, trading_days
from ingot.market.cli import app
from ingot.market.models import EngineCommand, Order, Trade, TradingDay
from tests.conftest import login
from tests.market_db.helpers import INDIUM_RULES, NOW, OPERATOR_PASSWORD, PASSWORD, build_market

DAY = date(2026, 11, 23)  # NOW's trading day: the product's first version is in force from it


def at(hhmm: str, day: date = DAY) -> datetime:
    """A Beijing time on `day`, "HH:MM" or "HH:MM:SS"."""
    parts = [int(p) for p in hhmm.split(":")] + [0]
    return datetime(day.year, day.month, day.day, parts[0], parts[1], parts[2], tzinfo=SHANGHAI)


NEXT = DAY + timedelta(days=1)


@pytest.fixture
def market(session):
    gateway.forget_cores()
    built = build_market(session)
    session.commit()
    return built


def run(session, moment):
    report = timetable.run_schedule(session, timetable.SCHEDULER, moment)
    session.commit()
    return {row["product"]: row for row in report}


def phase(session):
    return trading.phases(session)["IN99995"]


def journal_length(session):
    return session.scalar(select(func.count(EngineCommand.sequence)))


def bid(session, market, key, moment, *, tif="DAY", lots=1, price=150_000):
    return trading.place_order(session, market.client_a, account="M002/C01", product="IN99995", side="B", lots=lots,
                               price_fen=price, key=key, tif=tif, now=moment)


def test_the_day_runs_by_its_windows_with_a_break_that_keeps_day_orders_and_a_close_that_expires_them(session, market):
    assert run(session, at("08:59:59"))["IN99995"]["actions"] == [] and phase(session) == "closed"
    opened = run(session, at("09:00"))["IN99995"]
    assert opened["actions"] == ["continuous"] and opened["phase"] == "continuous" and phase(session) == "continuous"
    assert session.get(TradingDay, DAY).state == "open"
    # Idempotent: a second run in the same slot journals nothing.
    length = journal_length(session)
    assert run(session, at("09:00:30"))["IN99995"]["actions"] == []
    assert journal_length(session) == length
    # A second process racing through the same boundary sends the same key: the core answers it as a resubmission.
    assert trading.apply_session_action(session, timetable.SCHEDULER, "IN99995", "continuous", at("09:00:01"),
                                        "schedule:IN99995:20261123T0900:continuous") == (False, [])
    assert journal_length(session) == length

    day_order = bid(session, market, "day-bid", at("10:00"))
    gtc_order = bid(session, market, "gtc-bid", at("10:00"), tif="GTC", price=149_000)
    session.commit()
    assert run(session, at("11:29:59"))["IN99995"]["actions"] == []
    assert run(session, at("11:30"))["IN99995"]["actions"] == ["break"] and phase(session) == "break"
    session.refresh(day_order)
    assert day_order.status == "resting"  # the midday break is not a close
    with pytest.raises(DomainError) as closed:
        bid(session, market, "lunch-bid", at("12:00"))
    assert closed.value.code == "market_closed"
    assert f"the next session opens at {DAY.isoformat()} 13:30:00 (Beijing time)" in closed.value.message_en
    assert f"下一交易时段 {DAY.isoformat()} 13:30:00（北京时间）开始" in closed.value.message_zh
    session.rollback()
    # Cancels stay allowed in the break: risk can only go down.
    trading.cancel_order(session, market.client_a, gtc_order.id, key="cancel-gtc", now=at("12:05"))
    session.commit()

    assert run(session, at("13:29:59"))["IN99995"]["actions"] == []
    assert run(session, at("13:30"))["IN99995"]["actions"] == ["continuous"]
    another_gtc = bid(session, market, "gtc-bid-2", at("14:00"), tif="GTC", price=149_000)
    session.commit()
    assert run(session, at("14:59:59"))["IN99995"]["actions"] == []
    assert run(session, at("15:00"))["IN99995"]["actions"] == ["close"] and phase(session) == "closed"
    session.refresh(day_order)
    session.refresh(another_gtc)
    assert day_order.status == "expired" and another_gtc.status == "resting"

    # Overnight: closed until the next morning's first window, which opens the next trading day.
    assert run(session, at("23:59"))["IN99995"]["actions"] == []
    assert run(session, at("08:00", NEXT))["IN99995"]["actions"] == []
    assert run(session, at("09:00", NEXT))["IN99995"]["actions"] == ["continuous"]
    assert session.get(TradingDay, NEXT).state == "open"
    # Every transition is a journaled engine command under the scheduler's key, and each run that acted is audited.
    keys = [row.payload for row in session.scalars(select(EngineCommand).order_by(EngineCommand.sequence))]
    assert sum(b"schedule:IN99995:" in bytes(payload) for payload in keys) == 5
    audits = session.scalars(select(AuditEntry).where(AuditEntry.entity == "market_session",
                                                      AuditEntry.action == "schedule")).all()
    assert len(audits) == 5 and audits[0].actor == "session-scheduler"
    assert audits[0].after["transitions"][0]["actions"] == ["continuous"]


def test_a_noticed_timetable_with_an_opening_auction_takes_effect_the_next_day(session, market):
    products.announce_version(session, market.operator, "IN99995", effective_on=NEXT, now=NOW, rules={
        **INDIUM_RULES, "notice_ref": "交易中心公告〔2026〕2号", "opening_auction": "08:50-08:59",
        "sessions": ["09:00-10:15", "10:30-11:30", "13:30-15:00"]})
    session.commit()
    # Today the old timetable runs: no auction, the morning window until 11:30.
    assert run(session, at("08:50"))["IN99995"]["actions"] == []
    assert run(session, at("10:20"))["IN99995"]["actions"] == ["continuous"]
    assert run(session, at("15:00"))["IN99995"]["actions"] == ["close"]

    assert run(session, at("08:49:59", NEXT))["IN99995"]["actions"] == []
    assert run(session, at("08:50", NEXT))["IN99995"]["actions"] == ["open_auction"]
    assert phase(session) == "call_auction"
    trading.place_order(session, market.seller, account="M001", product="IN99995", side="S", lots=2, price_fen=150_000,
                        key="auction-ask", receipts=["KM01IN99995000001"], now=at("08:52", NEXT))
    bid(session, market, "auction-bid", at("08:53", NEXT), lots=2, price=151_000)
    session.commit()
    assert session.scalar(select(func.count(Trade.id))) == 0  # nothing matches during the call
    uncrossed = run(session, at("08:59", NEXT))["IN99995"]
    assert uncrossed["actions"] == ["uncross"] and phase(session) == "auction_done" and len(uncrossed["trades"]) == 1
    trade = session.get(Trade, uncrossed["trades"][0])
    assert trade.trade_day == NEXT and trade.lots == 2
    assert run(session, at("09:00", NEXT))["IN99995"]["actions"] == ["continuous"]
    assert run(session, at("10:15", NEXT))["IN99995"]["actions"] == ["break"]
    assert run(session, at("10:29:59", NEXT))["IN99995"]["actions"] == []
    assert run(session, at("10:30", NEXT))["IN99995"]["actions"] == ["continuous"]


def test_a_scheduler_that_missed_boundaries_catches_up_in_one_run(session, market):
    products.announce_version(session, market.operator, "IN99995", effective_on=NEXT, now=NOW,
                              rules={**INDIUM_RULES, "opening_auction": "08:50-08:59"})
    session.commit()
    # Down through the whole auction: it opens and uncrosses (an empty call) on the way into continuous trading.
    assert run(session, at("08:59:30", NEXT))["IN99995"]["actions"] == ["open_auction", "uncross"]
    assert run(session, at("09:30", NEXT))["IN99995"]["actions"] == ["continuous"]


def test_a_manual_command_holds_until_the_next_boundary_and_a_suspension_is_never_undone(session, market):
    run(session, at("09:00"))
    trading.session_control(session, market.operator, "close", now=at("10:00"))  # a halt
    session.commit()
    held = run(session, at("10:05"))["IN99995"]
    assert held["actions"] == [] and held["note"] == "manual_override" and phase(session) == "closed"
    assert run(session, at("11:30"))["IN99995"]["actions"] == []  # closed is closed enough for the break
    assert run(session, at("13:30"))["IN99995"]["actions"] == ["continuous"]

    products.set_product_suspended(session, market.operator, "IN99995", True, now=at("13:40"))
    session.commit()
    assert run(session, at("15:00"))["IN99995"]["actions"] == ["close"]
    assert run(session, at("09:00", NEXT))["IN99995"]["actions"] == ["continuous"]
    assert products.get_product(session, "IN99995").suspended is True
    with pytest.raises(DomainError) as refused:
        bid(session, market, "while-suspended", at("09:05", NEXT))
    assert refused.value.code == "product_suspended"
    session.rollback()


def test_a_day_ended_early_is_not_reopened_and_the_next_opening_skips_it(session, market):
    run(session, at("09:00"))
    trading.end_of_day(session, market.operator, now=at("12:00"))
    session.commit()
    skipped = run(session, at("13:30"))["IN99995"]
    assert skipped["actions"] == [] and skipped["note"] == "trading_day_ended" and phase(session) == "closed"
    product = products.get_product(session, "IN99995")
    assert timetable.next_opening(session, product, at("12:30")) == at("09:00", NEXT)
    row = session.get(TradingDay, DAY)
    assert row.state == "ended" and row.ended_by == "operator" and row.settlement_prices["IN99995"]["method"] == "previous"
    assert run(session, at("09:00", NEXT))["IN99995"]["actions"] == ["continuous"]


def test_the_next_opening_follows_the_timetable_in_force_on_each_day(session, market):
    product = products.get_product(session, "IN99995")
    assert timetable.next_opening(session, product, at("11:45")) == at("13:30")
    assert timetable.next_opening(session, product, at("15:30")) == at("09:00", NEXT)
    products.announce_version(session, market.operator, "IN99995", effective_on=NEXT, now=NOW,
                              rules={**INDIUM_RULES, "opening_auction": "08:45-08:59"})
    assert timetable.next_opening(session, product, at("15:30")) == at("08:45", NEXT)


def test_an_opening_auction_must_end_by_the_first_session(session, market):
    with pytest.raises(DomainError) as refused:
        products.announce_version(session, market.operator, "IN99995", effective_on=NEXT, now=NOW,
                                  rules={**INDIUM_RULES, "opening_auction": "08:55-09:05"})
    assert refused.value.field == "opening_auction" and refused.value.code == "invalid_session"
    with pytest.raises(DomainError) as malformed:
        products.announce_version(session, market.operator, "IN99995", effective_on=NEXT, now=NOW,
                                  rules={**INDIUM_RULES, "opening_auction": "8:55"})
    assert malformed.value.field == "opening_auction"


def test_the_scheduler_is_the_centre_s_and_the_cli_and_api_run_it(db_url, client):
    from ingot.core.db import unit_of_work

    gateway.forget_cores()
    with unit_of_work(db_url) as session:
        market = build_market(session)
        with pytest.raises(DomainError) as forbidden:
            timetable.run_schedule(session, market.seller, at("09:00"))
        assert forbidden.value.status_code == 403
    runner = CliRunner()
    opened = runner.invoke(app, ["sessions", "run", "--at", "2026-11-23T09:00"])
    assert opened.exit_code == 0, opened.output
    assert "continuous" in opened.output
    bad = runner.invoke(app, ["sessions", "run", "--at", "nine o'clock"])
    assert bad.exit_code == 2 and "ISO" in bad.output
    shown = runner.invoke(app, ["sessions", "show", "--at", "2026-11-23T12:00"])
    assert shown.exit_code == 0 and "13:30" in shown.output

    centre = login(client, "operator", OPERATOR_PASSWORD)
    member = login(client, "seller", PASSWORD)
    assert client.post("/api/market/sessions/run", headers=member).status_code == 403
    ran = client.post("/api/market/sessions/run", headers=centre)
    assert ran.status_code == 200 and ran.json()[0]["product"] == "IN99995"
    rows = client.get("/api/market/timetable", headers=centre).json()
    assert rows[0]["sessions"] == INDIUM_RULES["sessions"] and rows[0]["next_opening"]
    assert client.post("/api/market/sessions", headers=centre, json={"action": "pause"}).status_code == 422
    # A closed product's page says when it next opens (in Beijing time).
    client.post("/api/market/sessions", headers=centre, json={"action": "close"})
    client.post("/login", data={"username": "seller", "password": PASSWORD}, follow_redirects=False)
    page = client.get("/market/products/IN99995")
    assert page.status_code == 200 and 'data-testid="next-opening"' in page.text


def test_the_orders_placed_in_a_closed_market_are_refused_with_their_reason(session, market):
    with pytest.raises(DomainError) as refused:
        bid(session, market, "too-early", at("08:30"))
    assert refused.value.code == "market_closed" and "closed" in refused.value.message_en
    assert f"the next session opens at {DAY.isoformat()} 09:00:00 (Beijing time)" in refused.value.message_en
    session.rollback()
    assert session.scalar(select(func.count(Order.id))) == 0


def test_the_background_scheduler_runs_a_pass_in_its_own_transaction_and_stops(db_url):
    from ingot.core.db import unit_of_work

    gateway.forget_cores()
    with unit_of_work(db_url) as session:
        build_market(session)
    scheduler = timetable.SessionScheduler(3600, db_url)
    rows = scheduler.run_once()
    assert [row["product"] for row in rows] == ["IN99995"] and rows[0]["scheduled"] is not None
    scheduler.start()
    scheduler.stop()
    assert not scheduler._thread.is_alive()


def test_the_admin_page_shows_the_timetable_and_runs_it(client, db_url):
    from ingot.core.db import unit_of_work

    gateway.forget_cores()
    with unit_of_work(db_url) as session:
        build_market(session)
        products.announce_version(session, timetable.SCHEDULER, "IN99995", effective_on=NEXT, now=NOW,
                                  rules={**INDIUM_RULES, "opening_auction": "08:50-08:59"})
    client.post("/login", data={"username": "operator", "password": OPERATOR_PASSWORD}, follow_redirects=False)
    page = client.get("/market/admin")
    assert page.status_code == 200 and "09:00-11:30, 13:30-15:00" in page.text and 'name="opening_auction"' in page.text
    ran = client.post("/market/admin/timetable", follow_redirects=False)
    assert ran.status_code == 303 and ran.headers["location"] == "/market/admin?done=timetable"
    # The timetable run is audited only when it changed something; either way the page still renders.
    assert client.get("/market/admin?done=timetable").status_code == 200


def test_ingot_market_days_lists_the_ended_day(db_url):
    from ingot.core.db import unit_of_work

    gateway.forget_cores()
    with unit_of_work(db_url) as session:
        market = build_market(session)
        trading.end_of_day(session, market.operator, now=at("16:00"))
    listed = CliRunner().invoke(app, ["days"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert "2026-11-23" in listed.output and "ended" in listed.output and "operator" in listed.output
