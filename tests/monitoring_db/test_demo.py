"""The monitoring demo: a stack point with demo limits per smelter site, idempotent, passwords re-derivable."""
from __future__ import annotations

from sqlalchemy import select

from ingot.monitoring.demo import demo_password, load_monitoring_demo
from ingot.monitoring.models import MonitoringPoint, PermitLimit
from ingot.monitoring.storage import password_digest
from ingot.registry import service as registry

from .world import ADMIN_P, build_world


def test_demo_points_for_smelter_sites_only(session):
    world = build_world(session)
    registry.create_unit(session, ADMIN_P, {"site_id": world.sites["kunming"], "name": "铜熔炼系统",
                                            "process_type": "cu_flash_smelting", "commissioned_on": "2012-05-01"})
    registry.create_unit(session, ADMIN_P, {"site_id": world.sites["sichuan"], "name": "海绵钛", "process_type": "ti_sponge",
                                            "commissioned_on": "2012-05-01"})
    devices = load_monitoring_demo(session)
    assert [device.point_id for device in devices] == [
        session.scalar(select(MonitoringPoint.id).where(MonitoringPoint.site_id == world.sites["kunming"],
                                                        MonitoringPoint.is_demo.is_(True)))]
    device = devices[0]
    point = session.get(MonitoringPoint, device.point_id)
    assert password_digest(point.password_salt, device.password) == point.password_digest
    assert device.password == demo_password(device.mn) and len(device.mn) == 24
    limits = session.scalars(select(PermitLimit).where(PermitLimit.point_id == point.id)).all()
    assert limits and all(limit.is_demo and "demo value" in limit.source_standard for limit in limits)
    assert str(device.limits["a21026"].normalize()) == "4E+2"
    assert load_monitoring_demo(session) == devices  # a second load creates nothing new
