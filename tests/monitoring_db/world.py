"""A small monitoring world: two enterprises in two Yunnan prefectures and one in Sichuan, a point each."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from ingot.core.auth import ADMIN, AUDITOR, ENTERPRISE, REGULATOR, Principal
from ingot.monitoring import service
from ingot.registry import service as registry
from ingot.registry.uscc import make_uscc

ADMIN_P = Principal(1, "admin", ADMIN)
AUDITOR_P = Principal(2, "auditor", AUDITOR)
YUNNAN_P = Principal(3, "yn_regulator", REGULATOR, division_code="530000")
KUNMING_P = Principal(4, "km_regulator", REGULATOR, division_code="530100")
SICHUAN_P = Principal(5, "sc_regulator", REGULATOR, division_code="510000")
T0 = datetime(2026, 11, 1, 0, 0, tzinfo=timezone.utc)


@dataclass
class World:
    enterprises: dict[str, int]
    sites: dict[str, int]
    points: dict[str, dict]

    def enterprise_user(self, which: str) -> Principal:
        return Principal(10, f"{which}_user", ENTERPRISE, enterprise_id=self.enterprises[which])


def build_world(session) -> World:
    registry.load_divisions(session)
    enterprises, sites, points = {}, {}, {}
    for number, (key, division, site_division) in enumerate((
        ("kunming", "530100", "530181"),
        ("honghe", "532500", "532501"),
        ("sichuan", "510400", "510411"),
    ), start=1):
        enterprise = registry.create_enterprise(session, ADMIN_P, {
            "name": f"监测{key}冶炼有限公司", "uscc": make_uscc("9", "1", division, f"7{number:07d}"),
            "ownership": "private", "division_code": division,
        })
        site = registry.create_site(session, ADMIN_P, {"enterprise_id": enterprise["id"], "name": "一厂",
                                                        "division_code": site_division})
        point = service.create_point(session, ADMIN_P, {
            "site_id": site["id"], "name": "1号熔炼烟囱", "mn": f"8888888{number:017d}", "password": "123456",
            "pollutants": ["a21026", "a21002", "a34013"],
        })
        service.set_limit(session, ADMIN_P, point["id"], "a21026",
                          {"value": "400", "unit": "mg/m3", "source_standard": "GB 25467-2010 表5 (demo value)",
                           "clause": "表5", "is_demo": True})
        enterprises[key], sites[key], points[key] = enterprise["id"], site["id"], point
    session.flush()
    return World(enterprises, sites, points)


def dec(text: str) -> Decimal:
    return Decimal(text)
