"""A small registry for compliance tests, built through the registry's own service.

Inner Mongolia: two existing aluminium lines (400 kA passes, 150 kA fails the 160 kA floor) and one with no cell
current on record (missing data). Yunnan: a lead blast furnace under the 2018 closure deadline and a modern Kunming
aluminium line. Each enterprise has its own user so scope can be tested.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ingot.core.auth import ADMIN, ENTERPRISE, REGULATOR, Principal, create_user
from ingot.registry import service
from ingot.registry.uscc import make_uscc

ADMIN_P = Principal(1, "policy_admin", ADMIN)
PASSWORD = "correct horse battery"


def _uscc(n: int, division: str) -> str:
    return make_uscc("9", "1", division, f"{n:08d}")


@dataclass
class PolicyWorld:
    units: dict[str, int] = field(default_factory=dict)
    enterprises: dict[str, int] = field(default_factory=dict)


UNITS = (
    # key, enterprise division, site division, process type, cell_current/single line, declarations, capacity
    ("baotou_good", "150200", "150203", "al_prebake_electrolysis", ("cell_current", "400", "kA"),
     {"al_liquid_ac_power": ("13000", "kWh/t"), "al_ingot_ac_power": ("13500", "kWh/t"), "current_efficiency": ("93", "percent")},
     ("primary_aluminium", "500000")),
    ("baotou_old", "150200", "150203", "al_soderberg_electrolysis", ("cell_current", "150", "kA"),
     {"al_liquid_ac_power": ("13300", "kWh/t"), "al_ingot_ac_power": ("13700", "kWh/t"), "current_efficiency": ("92.5", "percent")},
     ("primary_aluminium", "120000")),
    ("hohhot_unknown", "150100", "150100", "al_prebake_electrolysis", None, {}, ("primary_aluminium", "200000")),
    ("honghe_lead", "532500", "532501", "pb_blast_furnace", ("single_line_capacity", "30000", "t/a"), {}, ("refined_lead", "30000")),
    ("kunming_al", "530100", "530181", "al_prebake_electrolysis", ("cell_current", "300", "kA"), {}, ("primary_aluminium", "350000")),
)


def build_policy_world(session) -> PolicyWorld:
    service.load_divisions(session)
    world = PolicyWorld()
    for number, (key, division, site_division, process, parameter, declarations, capacity) in enumerate(UNITS, start=1):
        enterprise = service.create_enterprise(session, ADMIN_P, {
            "name": f"政策测试{key}有限公司", "uscc": _uscc(7000 + number, division), "ownership": "private",
            "division_code": division, "above_designated": True,
        })
        site = service.create_site(session, ADMIN_P, {"enterprise_id": enterprise["id"], "name": "一厂", "division_code": site_division})
        unit = service.create_unit(session, ADMIN_P, {"site_id": site["id"], "name": f"{key} 一号系列", "process_type": process,
                                                      "commissioned_on": "2008-05-01", "approved_on": "2006-03-01"})
        service.add_fact(session, ADMIN_P, unit["id"], "status", {"status": "operating", "effective_on": "2008-05-01"})
        if parameter:
            code, value, unit_string = parameter
            service.add_fact(session, ADMIN_P, unit["id"], "parameters",
                             {"code": code, "value": value, "unit": unit_string, "effective_from": "2008-05-01"})
        for measure, (value, unit_string) in declarations.items():
            service.add_fact(session, ADMIN_P, unit["id"], "declarations",
                             {"year": 2017, "measure_code": measure, "value": value, "unit": unit_string})
        product, amount = capacity
        service.add_fact(session, ADMIN_P, unit["id"], "capacities",
                         {"product_code": product, "value": amount, "unit": "t/a", "effective_from": "2008-05-01"})
        world.units[key] = unit["id"]
        world.enterprises[key] = enterprise["id"]
    session.flush()
    return world


def add_users(session, world: PolicyWorld) -> None:
    """Logins for API tests: an admin, regulators of Inner Mongolia and Kunming, and one enterprise user."""
    create_user(session, username="padmin", password=PASSWORD, role=ADMIN)
    create_user(session, username="nm_reg", password=PASSWORD, role=REGULATOR, division_code="150000")
    create_user(session, username="km_reg", password=PASSWORD, role=REGULATOR, division_code="530100")
    create_user(session, username="good_ent", password=PASSWORD, role=ENTERPRISE, enterprise_id=world.enterprises["baotou_good"])
    session.flush()
