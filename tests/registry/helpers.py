"""A small registry world shared by the registry tests: two Yunnan prefectures and one Sichuan enterprise."""
from __future__ import annotations

from dataclasses import dataclass

from ingot.core.auth import ADMIN, AUDITOR, ENTERPRISE, REGULATOR, Principal
from ingot.registry import service
from ingot.registry.uscc import make_uscc

ADMIN_P = Principal(1, "admin", ADMIN)
AUDITOR_P = Principal(2, "auditor", AUDITOR)
YUNNAN_P = Principal(3, "yn_regulator", REGULATOR, division_code="530000")
KUNMING_P = Principal(4, "km_regulator", REGULATOR, division_code="530100")
SICHUAN_P = Principal(5, "sc_regulator", REGULATOR, division_code="510000")


def uscc(n: int, division: str = "530100") -> str:
    return make_uscc("9", "1", division, f"{n:08d}"[:8].replace("0", "A", 1) if n % 2 else f"{n:08d}")


@dataclass
class World:
    kunming: dict
    honghe: dict
    sichuan: dict
    kunming_site: dict
    honghe_site: dict
    sichuan_site: dict
    kunming_unit: dict
    honghe_unit: dict
    sichuan_unit: dict

    def enterprise_user(self, which: str = "kunming") -> Principal:
        return Principal(10, f"{which}_user", ENTERPRISE, enterprise_id=getattr(self, which)["id"])


def build_world(session) -> World:
    service.load_divisions(session)
    made = {}
    for key, division, site_division, number, process, params in (
        ("kunming", "530100", "530181", 1001, "al_prebake_electrolysis", [("cell_current", "400", "kA")]),
        ("honghe", "532500", "532501", 1002, "sn_smelting", [("single_line_capacity", "30000", "t/a")]),
        ("sichuan", "510400", "510411", 1003, "ti_sponge", [("single_line_capacity", "15000", "t/a")]),
    ):
        enterprise = service.create_enterprise(session, ADMIN_P, {
            "name": f"测试{key}冶炼有限公司", "uscc": uscc(number, division), "ownership": "private", "division_code": division,
        })
        site = service.create_site(session, ADMIN_P, {"enterprise_id": enterprise["id"], "name": "一厂", "division_code": site_division})
        unit = service.create_unit(session, ADMIN_P, {"site_id": site["id"], "name": "一号系列", "process_type": process,
                                                      "commissioned_on": "2012-05-01", "approved_on": "2010-03-01"})
        service.add_fact(session, ADMIN_P, unit["id"], "status", {"status": "operating", "effective_on": "2012-05-01"})
        for code, value, unit_string in params:
            service.add_fact(session, ADMIN_P, unit["id"], "parameters", {"code": code, "value": value, "unit": unit_string, "effective_from": "2012-05-01"})
        made[key] = enterprise
        made[key + "_site"] = site
        made[key + "_unit"] = unit
    session.flush()
    return World(**made)
