"""The demo region: deterministic plan, required size and mix, idempotent loading, logins for every role."""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from datetime import date

from sqlalchemy import func, select

from ingot.core import auth
from ingot.core.auth import SYSTEM
from ingot.registry import demo, service
from ingot.registry.models import Enterprise, ProductionUnit, RegistryVersion
from ingot.registry.uscc import validate_uscc


def test_plan_is_deterministic_and_a_different_seed_differs():
    assert asdict(demo.demo_plan()) == asdict(demo.demo_plan())
    assert asdict(demo.demo_plan(demo.SEED + 1)) != asdict(demo.demo_plan())


def test_plan_size_mix_and_names():
    plan = demo.demo_plan()
    units = [unit for enterprise in plan.enterprises for unit in enterprise.units]
    assert len(plan.enterprises) >= 300 and len(units) >= 1000
    assert {e.division_code[:2] + "0000" for e in plan.enterprises} == {"530000", "510000", "150000", "630000"}
    processes = Counter(unit.process_type for unit in units)
    for required in ("al_prebake_electrolysis", "pb_blast_furnace", "cu_blast_furnace", "sb_blast_furnace", "zn_hydrometallurgical",
                     "cu_flash_smelting", "sn_smelting", "in_extraction_refining", "ge_extraction", "ti_sponge", "tio2_sulphate",
                     "tio2_chloride", "v_extraction", "ree_separation", "concentrator", "ferroalloy_submerged_arc", "calcium_carbide_furnace"):
        assert processes[required] > 0, required
    currents = {p[1] for u in units if u.process_type == "al_prebake_electrolysis" for p in u.params if p[0] == "cell_current"}
    assert min(int(c) for c in currents) == 160 and max(int(c) for c in currents) == 500
    final_status = Counter(unit.statuses[-1][0] for unit in units)
    assert final_status["operating"] > len(units) * 0.7
    assert final_status["eliminated"] > 0 and final_status["idle"] > 0
    assert sum(1 for u in units if u.process_type in {"concentrator", "al_prebake_electrolysis"} and not u.params) > 0
    assert len({e.name for e in plan.enterprises}) == len(plan.enterprises)
    assert all(validate_uscc(e.uscc) == e.uscc for e in plan.enterprises)
    assert plan.enterprises[0].name == demo.DEMO_ENTERPRISE_NAME


def test_load_is_complete_idempotent_and_gives_every_role_a_login(session):
    logins = demo.load_demo(session)
    session.commit()
    enterprises = session.scalar(select(func.count()).select_from(Enterprise))
    units = session.scalar(select(func.count()).select_from(ProductionUnit))
    versions = session.scalar(select(func.count()).select_from(RegistryVersion))
    assert enterprises >= 300 and units >= 1000
    assert demo.load_demo(session) == logins
    session.commit()
    assert session.scalar(select(func.count()).select_from(Enterprise)) == enterprises
    assert session.scalar(select(func.count()).select_from(RegistryVersion)) == versions
    assert {role for _u, _p, role, _s in logins} >= {auth.ADMIN, auth.REGULATOR, auth.ENTERPRISE, auth.AUDITOR}
    regulator = auth.principal_of(auth.authenticate(session, demo.DEMO_REGULATOR, demo.DEMO_PASSWORD))
    found = service.list_enterprises(session, regulator, service.ListQuery(q=demo.DEMO_ENTERPRISE_NAME))
    assert found.total == 1
    demo_units = service.list_units(session, regulator, service.ListQuery(enterprise_id=found.items[0]["id"]))
    assert demo.DEMO_UNIT_NAME in {unit["name"] for unit in demo_units.items}
    prefecture = auth.principal_of(auth.authenticate(session, demo.DEMO_PREFECTURE_REGULATOR, demo.DEMO_PASSWORD))
    assert all(e["division_code"].startswith("5301") for e in service.list_enterprises(session, prefecture, service.ListQuery(limit=500)).items)
    facts = service.unit_facts_as_of(session, date(2020, 1, 1), SYSTEM)
    assert len(facts) >= 900
    assert any("al_liquid_ac_power" in f.declarations for f in facts)
    overview = service.capacity_overview(session, SYSTEM, date(2020, 1, 1))
    assert {row["province_code"] for row in overview["rows"]} == {"530000", "510000", "150000", "630000"}
