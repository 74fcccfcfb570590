"""What the receiver process does besides receiving: it sends the platform's queued commands to the devices it holds
connections to, scans for missing-data and flag alarms, and applies the retention setting — each a periodic job.

    async with receiver_jobs(url, server, JobSettings(retention_days=180)):
        ...  # the receiver serves; the jobs run beside it

Each job's work runs in a worker thread with its own unit of work, so the event loop keeps serving devices.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import AsyncIterator, Awaitable, Callable

from ingot.core.db import unit_of_work
from ingot.core.timeutil import utcnow
from ingot.monitoring import commands
from ingot.monitoring.commands import COMMANDS, MAX_REPLY_TIMES
from ingot.monitoring.hj212.codec import format_time
from ingot.monitoring.receiver import CommandFailed, CommandResult, ReceiverServer

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class JobSettings:
    scan_seconds: float = 60.0               # missing-data and flag alarm scan
    retention_days: int | None = None        # None: keep everything
    retention_every_seconds: float = 3600.0
    command_poll_seconds: float = 1.0
    command_timeout_seconds: float = 30.0


async def run_periodically(name: str, action: Callable[[], object], every_seconds: float, *, at_start: bool,
                           sleep: Sleep = asyncio.sleep) -> None:
    """Run `action` (a blocking function, in a worker thread) every `every_seconds` until cancelled, first at once
    when `at_start`. A failure is logged and the job carries on at its next turn. `sleep` is injectable so a test
    drives the turns itself."""
    first = at_start
    while True:
        if not first:
            await sleep(every_seconds)
        first = False
        try:
            await asyncio.to_thread(action)
        except Exception:  # noqa: BLE001 - one failed turn must not end the job
            log.exception("monitoring job %s failed", name)


def retention_action(url: str | None, days: int, clock: Callable[[], datetime] = utcnow) -> Callable[[], dict]:
    """One turn of the retention job: ingot.monitoring.storage.apply_retention, audited as the manual command is."""
    from ingot.monitoring.storage import apply_retention

    def apply() -> dict:
        with unit_of_work(url) as session:
            counts = apply_retention(session, days, now=clock())
        log.info("monitoring retention (%d days): %s", days, counts)
        return counts

    return apply


def alarm_scan_action(url: str | None) -> Callable[[], int]:
    from ingot.monitoring.service import scan_alarms

    def scan() -> int:
        with unit_of_work(url) as session:
            return len(scan_alarms(session))

    return scan


class CommandDispatcher:
    """Sends queued platform commands through the receiver and writes each step back to the command's row.

    One command per device at a time (the device answers by QN, but its uploads of the same CN under their own QNs
    could not be told apart otherwise); a command whose device is not connected ends as `offline`.

    With several receiver processes on one port (`ingot monitor listen --workers N`), each holds only some of the
    devices, so `offline_after` is set: a process sends only the commands of devices it holds and leaves the others
    queued for the process that holds them (claim_command lets exactly one take a command). The one process with
    `marks_offline` ends a command as `offline` once it has waited `offline_after` seconds since it was requested
    with no command of its device under way anywhere, i.e. when no process has taken it up in time."""

    def __init__(self, url: str | None, server: ReceiverServer, *, timeout: float = 30.0,
                 clock: Callable[[], datetime] = utcnow, offline_after: float | None = None,
                 marks_offline: bool = True):
        self.url, self.server, self.timeout, self.clock = url, server, timeout, clock
        self.offline_after, self.marks_offline = offline_after, marks_offline
        self._running: dict[str, asyncio.Task] = {}   # MN → the task executing its command

    def _write(self, action: Callable, *args, **kwargs):
        with unit_of_work(self.url) as session:
            return action(session, *args, **kwargs)

    async def recover(self) -> int:
        """At start: what an earlier receiver left half-done can no longer be answered."""
        return await asyncio.to_thread(self._write, commands.abandon_unfinished, now=self.clock())

    async def poll(self) -> int:
        """Start every queued command whose device is free; the number started."""
        pending = await asyncio.to_thread(self._write, commands.queued_commands)
        started = 0
        for command in pending:
            if command.mn in self._running:
                continue  # its turn comes when the device's current command ends
            task = asyncio.create_task(self._execute(command), name=f"hj212-command-{command.id}")
            self._running[command.mn] = task
            task.add_done_callback(lambda _task, mn=command.mn: self._running.pop(mn, None))
            started += 1
        return started

    async def drain(self) -> None:
        """Wait for the commands already started."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def run(self, every_seconds: float, sleep: Sleep = asyncio.sleep, *, recover: bool = True) -> None:
        if recover:
            await self.recover()
        while True:
            try:
                await self.poll()
            except Exception:  # noqa: BLE001 - a failed poll (database away) is retried at the next turn
                log.exception("monitoring command poll failed")
            await sleep(every_seconds)

    async def stop(self) -> None:
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def _execute(self, command: commands.PendingCommand) -> None:
        try:
            await self._send(command)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - e.g. the database went away; the next receiver start times it out
            log.exception("monitoring command %s failed in the receiver", command.id)

    async def _send(self, command: commands.PendingCommand) -> None:
        now = self.clock()
        if command.mn not in self.server.connected_mns:
            if not await self._offline_here(command, now):
                return  # another receiver process holds the device, or may still take the command up
            await asyncio.to_thread(self._write, commands.finish_command, command.id, "offline", now=now,
                                    detail=f"设备 {command.mn} 未连接接收服务 / device {command.mn} is not connected")
            return
        params = dict(command.params)
        if command.cn == "1012" and "SystemTime" not in params:
            params["SystemTime"] = format_time(now)  # time calibration: the platform's clock as it sends
        if not await asyncio.to_thread(self._write, commands.claim_command, command.id, params, now=now):
            return  # another receiver took it, or it moved on
        # Steps are written in order, each after the one before, though the device may answer faster than we write.
        steps: list[asyncio.Task] = []

        def record_step(result: CommandResult) -> None:
            # The result object changes as answers arrive: the step is what it is now, when the callback runs.
            previous, accepted, qn, at = (steps[-1] if steps else None), result.qn_rtn == 1, result.qn, self.clock()

            async def write() -> None:
                if previous is not None:
                    await previous
                if accepted:
                    await asyncio.to_thread(self._write, commands.record_accepted, command.id, 1, now=at)
                else:
                    await asyncio.to_thread(self._write, commands.record_sent, command.id, qn)

            steps.append(asyncio.create_task(write()))

        failure: CommandFailed | None = None
        try:
            result = await self.server.send_command(command.mn, command.cn, params, timeout=self.timeout,
                                                    on_progress=record_step)
        except CommandFailed as failed:
            failure, result = failed, failed.result
        if steps:
            await asyncio.gather(*steps, return_exceptions=True)
        state, detail = _outcome(result, failure)
        await asyncio.to_thread(
            self._write, commands.finish_command, command.id, state, now=self.clock(), detail=detail,
            qn=result.qn if result else None, qn_rtn=result.qn_rtn if result else None,
            exe_rtn=result.exe_rtn if result else None, reply=_reply(command, result))


    async def _offline_here(self, command: commands.PendingCommand, now: datetime) -> bool:
        """Whether this process ends a command whose device it does not hold as `offline` (see the class)."""
        if self.offline_after is None:
            return True  # this process holds every device connection there is
        if not self.marks_offline or command.requested_at is None:
            return False
        if (now - command.requested_at).total_seconds() < self.offline_after:
            return False
        return not await asyncio.to_thread(self._write, commands.device_busy, command.mn)


def _outcome(result: CommandResult | None, failure: CommandFailed | None) -> tuple[str, str]:
    if failure is not None:
        state = {"command_timeout": "timed_out", "device_not_connected": "offline"}.get(failure.code, "failed")
        return state, f"{failure.message_zh} / {failure.message_en}"
    assert result is not None
    if result.qn_rtn is not None and result.qn_rtn != 1:
        return "refused", ""
    if result.notified or result.exe_rtn == 1:
        return "executed", ""
    return "failed", ""


def _reply(command: commands.PendingCommand, result: CommandResult | None) -> dict | None:
    """What the device sent besides its answers: the fields of parameter uploads (e.g. 1011 SystemTime) and, for
    history requests, the data times of the uploads within the requested span (they are stored as data too)."""
    if result is None or not result.uploads:
        return None
    spec = COMMANDS.get(command.cn)
    if spec is not None and spec.is_history:
        begin, end = command.params.get("BeginTime", ""), command.params.get("EndTime", "99999999999999")
        times = sorted({format_time(packet.data_time) for packet in result.uploads
                        if packet.cn == command.cn and packet.data_time is not None
                        and begin <= format_time(packet.data_time) <= end})
        return {"uploads": len(times), "data_times": times[:MAX_REPLY_TIMES]}
    values: dict[str, str] = {}
    for packet in result.uploads:
        if packet.cn == command.cn:
            values.update(packet.params)
    return {"uploads": len(result.uploads), "values": values}


@asynccontextmanager
async def receiver_jobs(url: str | None, server: ReceiverServer, settings: JobSettings = JobSettings(), *,
                        sleep: Sleep = asyncio.sleep, worker: int = 0, workers: int = 1
                        ) -> AsyncIterator[CommandDispatcher]:
    """The receiver process's periodic jobs, running while the block runs; yields the command dispatcher.

    With `workers` > 1 receiver processes on one port, this is process number `worker`: every process sends the
    commands of the devices it holds; process 0 alone runs the alarm scan and retention and ends commands nobody
    took up as offline (after three command polls, at least five seconds); recovering what an earlier receiver left
    half-done is the parent's, before any worker starts (ingot.monitoring.service.serve_receiver_workers)."""
    shared = workers > 1
    dispatcher = CommandDispatcher(url, server, timeout=settings.command_timeout_seconds,
                                   offline_after=max(5.0, 3 * settings.command_poll_seconds) if shared else None,
                                   marks_offline=worker == 0)
    tasks = [asyncio.create_task(dispatcher.run(settings.command_poll_seconds, sleep, recover=not shared),
                                 name="hj212-commands")]
    if worker == 0:
        tasks.append(asyncio.create_task(run_periodically("alarm scan", alarm_scan_action(url), settings.scan_seconds,
                                                          at_start=False, sleep=sleep), name="hj212-alarm-scan"))
    if worker == 0 and settings.retention_days is not None:
        tasks.append(asyncio.create_task(run_periodically(
            "retention", retention_action(url, settings.retention_days), settings.retention_every_seconds,
            at_start=True, sleep=sleep), name="hj212-retention"))
    try:
        yield dispatcher
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await dispatcher.stop()
