"""Retention as a setting: the receiver process applies it at start and then periodically, audited; the periodic
job is driven turn by turn here (an injected sleep advances a fake clock), so no test waits on the wall clock."""
from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from ingot.core.audit import AuditEntry
from ingot.core.timeutil import utcnow
from ingot.monitoring.jobs import JobSettings, receiver_jobs, retention_action, run_periodically
from ingot.monitoring.models import Measurement, RawPacket
from ingot.monitoring.settings import retention_days_setting
from ingot.monitoring.storage import IngestRecord, Reading, write_batch

from .world import T0, build_world


def _store(session, point_id: int, moments) -> None:
    write_batch(session, [IngestRecord(received_at=moment, text=f"m{moment.isoformat()}", accepted=True,
                                       point_id=point_id, kind="minute", data_time=moment,
                                       readings=(Reading("a21026", {"avg": Decimal("10")}, "N"),))
                          for moment in moments])
    session.commit()


def _kept(session) -> list:
    session.expire_all()
    return sorted(session.scalars(select(Measurement.data_time)))


def test_the_periodic_job_deletes_what_ages_past_the_setting_at_start_and_each_turn(session, db_url):
    point_id = build_world(session).points["kunming"]["id"]
    start = T0 + timedelta(days=10)
    old, ageing, fresh = T0, T0 + timedelta(days=3, minutes=30), T0 + timedelta(days=9)
    _store(session, point_id, [old, ageing, fresh])
    clock = [start]
    slept: list[float] = []
    kept_after_turn: list[list] = []

    async def one_turn_per_sleep(seconds: float) -> None:
        # Each turn: see what the previous one kept, then let exactly the requested time pass on the fake clock.
        kept_after_turn.append(_kept(session))
        slept.append(seconds)
        if len(slept) == 3:
            raise asyncio.CancelledError
        clock[0] += timedelta(seconds=seconds)

    job = run_periodically("retention", retention_action(db_url, 7, clock=lambda: clock[0]), 3600, at_start=True,
                           sleep=one_turn_per_sleep)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(job)
    assert slept == [3600, 3600, 3600]
    assert kept_after_turn == [
        [ageing, fresh],   # at start: 10 days old goes, 6 days 23.5 hours stays
        [fresh],           # an hour later it is over 7 days old
        [fresh],
    ]
    audits = session.scalars(select(AuditEntry).where(AuditEntry.entity == "monitoring_retention")
                             .order_by(AuditEntry.id)).all()
    assert [(entry.actor, entry.after["days"], entry.after["measurements"], entry.after["packets"]) for entry in audits] == [
        ("system", 7, 1, 1), ("system", 7, 1, 1), ("system", 7, 0, 0)]


def test_the_receiver_process_applies_the_setting_when_it_starts(session, db_url):
    from ingot.monitoring.storage import ingest_pipeline

    point_id = build_world(session).points["kunming"]["id"]
    now = utcnow()
    _store(session, point_id, [now - timedelta(days=40), now - timedelta(days=2)])

    def retention_audits() -> int:
        session.expire_all()
        return session.scalar(select(func.count()).select_from(AuditEntry)
                              .where(AuditEntry.entity == "monitoring_retention"))

    async def never_again(_seconds: float) -> None:
        await asyncio.Event().wait()  # every job has had its first turn; the next never comes

    async def scenario():
        async with ingest_pipeline(db_url, "127.0.0.1", 0) as (server, _sink, _port):
            async with receiver_jobs(db_url, server, JobSettings(retention_days=30), sleep=never_again):
                while not await asyncio.to_thread(retention_audits):
                    await asyncio.sleep(0.01)

    asyncio.run(asyncio.wait_for(scenario(), 60))  # a guard against a hang, not a speed limit
    assert _kept(session) == [now - timedelta(days=2)]
    assert session.scalar(select(func.count()).select_from(RawPacket)) == 1


def test_without_the_setting_nothing_is_deleted(session, db_url):
    from ingot.monitoring.storage import ingest_pipeline

    point_id = build_world(session).points["kunming"]["id"]
    _store(session, point_id, [T0])

    async def no_turns(_seconds: float) -> None:
        await asyncio.Event().wait()

    async def scenario():
        async with ingest_pipeline(db_url, "127.0.0.1", 0) as (server, _sink, _port):
            async with receiver_jobs(db_url, server, JobSettings(retention_days=None), sleep=no_turns) as dispatcher:
                await dispatcher.recover()
                tasks = {task.get_name() for task in asyncio.all_tasks()}
        return tasks

    tasks = asyncio.run(scenario())
    assert "hj212-commands" in tasks and "hj212-retention" not in tasks
    assert _kept(session) == [T0]


def test_the_setting_comes_from_the_environment_and_bad_values_stop_the_receiver(monkeypatch, db_url):
    from ingot.monitoring.cli import app

    monkeypatch.delenv("INGOT_MONITORING_RETENTION_DAYS", raising=False)
    assert retention_days_setting() is None
    monkeypatch.setenv("INGOT_MONITORING_RETENTION_DAYS", " 180 ")
    assert retention_days_setting() == 180
    for bad in ("0", "-3", "1.5", "a year"):
        monkeypatch.setenv("INGOT_MONITORING_RETENTION_DAYS", bad)
        with pytest.raises(ValueError, match="INGOT_MONITORING_RETENTION_DAYS"):
            retention_days_setting()
    result = CliRunner().invoke(app, ["listen", "--port", "0"])
    assert result.exit_code == 2 and "INGOT_MONITORING_RETENTION_DAYS" in result.output
    assert "INGOT_MONITORING_RETENTION_DAYS" in CliRunner().invoke(app, ["listen", "--help"], terminal_width=200).output
