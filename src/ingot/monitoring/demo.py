"""Demo monitoring: a stack point for each smelter site of the registry demo, demo permit limits, and a live fleet.

The limits are *demo values* shaped after the discharge standards of the non-ferrous industry (GB 25465-2010
aluminium, GB 25466-2010 lead and zinc, GB 25467-2010 copper, nickel, cobalt); they are marked as such everywhere
they are shown and are not a statement of any enterprise's permit.

Device passwords are derived from the MN with the instance's secret key, so the live fleet can be rebuilt from the
database on every start without the platform storing a clear-text password.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingot.core.auth import SYSTEM
from ingot.core.config import get_settings
from ingot.core.timeutil import utcnow
from ingot.monitoring import service
from ingot.monitoring.models import MonitoringPoint

BACKFILL_HOURS = 3
STACK_POLLUTANTS = ["a21026", "a21002", "a34013", "a19001", "a00000", "a01012"]

# process family → (standard cited, {pollutant: limit in mg/m3}); every figure is a demo value.
DEMO_LIMITS: dict[str, tuple[str, dict[str, str]]] = {
    "copper": ("GB 25467-2010 表5（演示值 demo value）", {"a21026": "400", "a21002": "200", "a34013": "80"}),
    "lead_zinc": ("GB 25466-2010 表5（演示值 demo value）", {"a21026": "400", "a21002": "200", "a34013": "80"}),
    "aluminium": ("GB 25465-2010 表5（演示值 demo value）", {"a21026": "200", "a21002": "200", "a34013": "20"}),
    "other": ("GB 25467-2010 表5（演示值 demo value）", {"a21026": "400", "a21002": "200", "a34013": "80"}),
}
SMELTER_FAMILIES = {
    "cu_blast_furnace": "copper", "cu_flash_smelting": "copper", "cu_bath_smelting": "copper",
    "pb_blast_furnace": "lead_zinc", "pb_oxygen_bath": "lead_zinc", "zn_pyrometallurgical": "lead_zinc",
    "zn_roasting_acid_independent": "lead_zinc", "sb_blast_furnace": "other", "sb_oxygen_bath": "other",
    "sn_smelting": "other", "mg_smelting": "other",
    "al_prebake_electrolysis": "aluminium", "al_soderberg_electrolysis": "aluminium",
}


@dataclass(frozen=True)
class DemoDevice:
    """What the simulator needs to impersonate one point's CEMS."""

    point_id: int
    mn: str
    password: str
    pollutants: tuple[str, ...]
    limits: dict[str, Decimal]


def demo_password(mn: str) -> str:
    digest = hmac.new(get_settings().secret_key.encode(), f"monitoring-demo:{mn}".encode(), hashlib.sha256).hexdigest()
    return str(int(digest[:12], 16) % 1_000_000).zfill(6)


def _demo_mn(site_id: int) -> str:
    # 24 upper-case hex characters as HJ 212-2017 6.3.2 requires; the 'DE' stem keeps demo devices recognisable.
    return f"88DE{site_id:020d}"


def load_monitoring_demo(session: Session) -> list[DemoDevice]:
    """Create (once) a stack point with demo limits for every smelter site; return the devices of all demo points."""
    from ingot.registry.models import ProductionUnit, Site

    rows = session.execute(
        select(Site.id, ProductionUnit.process_type).join(ProductionUnit, ProductionUnit.site_id == Site.id)
        .where(ProductionUnit.process_type.in_(sorted(SMELTER_FAMILIES))).order_by(Site.id, ProductionUnit.id)
    ).all()
    families: dict[int, str] = {}
    for site_id, process_type in rows:
        families.setdefault(site_id, SMELTER_FAMILIES[process_type])
    existing = {point.site_id for point in session.scalars(select(MonitoringPoint).where(MonitoringPoint.is_demo.is_(True)))}
    for site_id, family in families.items():
        if site_id in existing:
            continue
        mn = _demo_mn(site_id)
        point = service.create_point(session, SYSTEM, {"site_id": site_id, "name": "1号主烟囱 main stack", "mn": mn,
                                                       "password": demo_password(mn), "pollutants": STACK_POLLUTANTS},
                                     is_demo=True)
        standard, limits = DEMO_LIMITS[family]
        for pollutant, value in limits.items():
            service.set_limit(session, SYSTEM, point["id"], pollutant,
                              {"value": value, "unit": "mg/m3", "source_standard": standard, "clause": "表5"},
                              is_demo=True)
    session.flush()
    return demo_devices(session)


def demo_devices(session: Session) -> list[DemoDevice]:
    from ingot.monitoring.models import PermitLimit

    points = list(session.scalars(select(MonitoringPoint).where(MonitoringPoint.is_demo.is_(True), MonitoringPoint.active.is_(True))
                                  .order_by(MonitoringPoint.id)))
    limits: dict[int, dict[str, Decimal]] = {}
    if points:
        for limit in session.scalars(select(PermitLimit).where(PermitLimit.point_id.in_([p.id for p in points]))):
            limits.setdefault(limit.point_id, {})[limit.pollutant] = limit.value
    return [DemoDevice(point.id, point.mn, demo_password(point.mn), tuple(point.pollutants), limits.get(point.id, {}))
            for point in points]


# --- live demo: receiver and a small simulated fleet in a background thread -----------------------------------


def fleet_specs(devices: list[DemoDevice] | list[tuple[int, str]], *, password: str = "123456",
                lively: bool = True) -> list:
    """The simulator's device specs for demo devices (or for (point id, MN) pairs sharing one password).

    `lively` demo devices now and then exceed, drop the connection, send a malformed packet, and every third splits
    its hourly packets, so the pages show every kind of event; a benchmark passes lively=False.
    """
    try:
        from ingot.monitoring.simulator import DeviceSpec
    except ImportError as missing:
        raise RuntimeError("the HJ 212 simulator (ingot.monitoring.simulator) is not part of this build") from missing
    specs = []
    for index, device in enumerate(devices):
        if isinstance(device, DemoDevice):
            mn, secret, pollutants = device.mn, device.password, device.pollutants
        else:
            mn, secret, pollutants = device[1], password, None
        extra = {"pollutants": tuple(pollutants)} if pollutants else {}
        if lively:
            extra.update(exceedance_rate=0.01, outage_rate=0.001, malformed_rate=0.005, split_hourly=index % 3 == 2)
        specs.append(DeviceSpec(mn=mn, password=secret, **extra))
    return specs


async def run_fleet_for(host: str, port: int, specs: list, seconds: float, *, seed: int = 212, interval: float = 1.0,
                        start: datetime | None = None, max_ticks: int | None = None) -> dict:
    """Run the simulator's fleet (device specs, or loggers that carry on); returns its report as a dict
    (packets_sent, answers, p99_ms …)."""
    from ingot.monitoring.simulator import run_fleet

    report = await run_fleet(host, port, specs, seconds=seconds, seed=seed, interval=interval, start=start,
                             max_ticks=max_ticks)
    return report.as_dict()


async def run_demo_fleet(host: str, port: int, count: int, *, seconds: float, seed: int = 212,
                         url: str | None = None) -> dict:
    """`ingot monitor simulate`: the first `count` demo points' devices against a running receiver."""
    from ingot.core.db import unit_of_work

    with unit_of_work(url) as session:
        devices = demo_devices(session)[:count]
    if not devices:
        raise RuntimeError("no demo monitoring points: run `ingot demo` (or load_monitoring_demo) first")
    return await run_fleet_for(host, port, fleet_specs(devices), seconds, seed=seed)


@dataclass
class LiveMonitoring:
    """Handle of the background receiver + fleet; `stop()` ends both and waits for the last batch."""

    thread: object
    loop: object
    ready: object
    error: list

    main_task: list

    def stop(self, timeout: float = 10.0) -> None:
        # Cancelling the main task alone lets the pipeline close in order: fleet, receiver, then the sink's last batch.
        import asyncio

        if self.main_task and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.main_task[0].cancel)
        self.thread.join(timeout / 2)
        if self.thread.is_alive() and not self.loop.is_closed():
            # A device connection the receiver still waits on: cancel what is left (the thread is a daemon anyway).
            def cancel_all() -> None:
                for task in asyncio.all_tasks(self.loop):
                    task.cancel()

            self.loop.call_soon_threadsafe(cancel_all)
            self.thread.join(timeout / 2)


def start_live_monitoring(host: str = "127.0.0.1", port: int = 9212, n_devices: int = 5, *,
                          url: str | None = None, scan_seconds: float = 60.0) -> LiveMonitoring:
    """Start, in a daemon thread, the receiver on (host, port) with the DB directory and sink, the receiver process's
    jobs (queued commands, alarm scan, the retention setting), and a fleet of up to `n_devices` simulated demo devices that runs until `stop()`.

    Call after `load_monitoring_demo(session)` has been committed; `ingot demo` calls it before serving the web UI.
    """
    import asyncio
    import threading

    from ingot.core.db import unit_of_work
    from ingot.monitoring.jobs import JobSettings, receiver_jobs
    from ingot.monitoring.settings import retention_days_setting
    from ingot.monitoring.storage import ingest_pipeline

    with unit_of_work(url) as session:
        devices = demo_devices(session)[:n_devices]
    specs = fleet_specs(devices)
    try:
        jobs = JobSettings(scan_seconds=scan_seconds, retention_days=retention_days_setting())
    except ValueError as setting:
        raise RuntimeError(str(setting)) from None
    ready, error = threading.Event(), []

    async def main() -> None:
        async with ingest_pipeline(url, host, port) as (server, _sink, bound_port), receiver_jobs(url, server, jobs):
            ready.set()
            # First the last few hours, fast, so the charts and hourly alarms are there within a minute or two;
            # then one simulated minute per real minute, so the data times stay those of the clock on the wall.
            # The same loggers carry on from the one phase to the next, so what they keep for history requests
            # (ingot monitor command … 2051/2061) covers the backfilled hours too.
            from ingot.monitoring.simulator import make_devices

            now = utcnow()
            backfill_from = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=BACKFILL_HOURS)
            ticks = int((now - backfill_from) / timedelta(minutes=1))
            loggers = make_devices(specs, start=backfill_from)
            await run_fleet_for(host, bound_port, loggers, 3600.0, interval=0.05, max_ticks=ticks)
            await run_fleet_for(host, bound_port, loggers, float("inf"), interval=60.0)

    loop = asyncio.new_event_loop()

    main_task: list = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            main_task.append(loop.create_task(main()))
            loop.run_until_complete(main_task[0])
        except asyncio.CancelledError:
            pass
        except Exception as failure:  # noqa: BLE001 - reported through the handle, never kills the web server
            error.append(failure)
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="ingot-live-monitoring", daemon=True)
    thread.start()
    ready.wait(30)
    if error:
        raise RuntimeError(f"live monitoring failed to start: {error[0]!r}")
    return LiveMonitoring(thread, loop, ready, error, main_task)
