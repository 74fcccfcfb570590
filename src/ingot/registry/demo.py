"""The demo region: a deterministic, fictional but realistic industry across the four provinces.

`demo_plan()` is pure (a fixed seed, no I/O) and describes every record; `load_demo(session)` writes that plan
through the registry services, so the demo carries audit entries and versions like real data, and creates a demo
login for every role. Every enterprise, park and group name is composed from fictional word lists.
"""
from __future__ import annotations

import random
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from dataclasses import dataclass, field
from datetime import date, timedelta

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from ingot.core import auth
from ingot.core.auth import SYSTEM
from ingot.registry import service
from ingot.registry.models import Enterprise
from ingot.registry.uscc import make_uscc

SEED = 20170415
DEMO_PASSWORD = "ingot-demo-2024"
DEMO_ENTERPRISE_NAME = "滇岫示范铝业有限公司"
DEMO_UNIT_NAME = "一系列预焙电解槽"
DEMO_REGULATOR = "reg_yunnan"
DEMO_PREFECTURE_REGULATOR = "reg_kunming"

# Fictional syllables: pairs of them name no real company.
FIRST = "澜岫璟翊昶珩曦霁沅岚澄晟钧彧琨瑄煦熠邈筠"
SECOND = "川泓峪岳源峰鼎泰丰禾汇隆宸懋昊弘恒辰骁屹"
INDUSTRY_WORD = {
    "aluminium": "铝业", "alumina": "氧化铝", "copper": "铜业", "lead": "铅业", "zinc": "锌业", "tin": "锡业", "antimony": "锑业",
    "magnesium": "镁业", "indium": "铟业", "germanium": "锗业", "titanium": "钛业", "vanadium": "钒业", "rare_earth": "稀土",
    "iron_steel": "钢铁", "ferroalloy": "铁合金", "cement": "水泥", "calcium_carbide": "电化", "ore": "矿业",
}
SUFFIX = ("有限公司", "有限责任公司", "股份有限公司")

# (process type, product, capacity range t/a, weight) per province: what each region's industry is made of.
PROVINCE_MIX = {
    "530000": [
        ("al_prebake_electrolysis", "primary_aluminium", (100_000, 600_000), 10), ("cu_flash_smelting", "cathode_copper", (100_000, 400_000), 3),
        ("cu_bath_smelting", "blister_copper", (50_000, 200_000), 4), ("cu_blast_furnace", "blister_copper", (5_000, 30_000), 3),
        ("pb_blast_furnace", "lead_bullion", (10_000, 60_000), 4), ("pb_oxygen_bath", "lead_bullion", (50_000, 120_000), 3),
        ("zn_hydrometallurgical", "zinc_ingot", (50_000, 300_000), 6), ("zn_pyrometallurgical", "zinc_ingot", (10_000, 50_000), 3),
        ("zn_roasting_acid_independent", "sulphuric_acid", (50_000, 200_000), 1), ("sn_smelting", "refined_tin", (5_000, 60_000), 5),
        ("in_extraction_refining", "standard_indium", (10, 80), 3), ("ito_target", "ito_target", (10, 100), 1), ("ge_extraction", "germanium_ingot", (5, 60), 2),
        ("sb_blast_furnace", "antimony_ingot", (2_000, 10_000), 2), ("concentrator", "ore_processed", (100_000, 2_000_000), 7),
        ("ferroalloy_submerged_arc", "ferroalloy", (20_000, 150_000), 3), ("steelmaking", "crude_steel", (500_000, 3_000_000), 2),
        ("cement_clinker", "cement_clinker", (600_000, 2_500_000), 3), ("ti_ingot_material", "titanium_material", (1_000, 10_000), 1),
    ],
    "510000": [
        ("v_extraction", "vanadium_pentoxide", (5_000, 40_000), 5), ("ti_concentrate", "titanium_concentrate", (100_000, 800_000), 5),
        ("ti_sponge", "sponge_titanium", (5_000, 30_000), 3), ("tio2_sulphate", "titanium_dioxide", (20_000, 150_000), 5),
        ("tio2_chloride", "titanium_dioxide", (30_000, 100_000), 2), ("ree_mining", "rare_earth_ore", (2_000, 20_000), 2),
        ("ree_separation", "rare_earth_oxide", (2_000, 15_000), 3), ("ree_metal", "rare_earth_metal", (500, 5_000), 2),
        ("ironmaking_blast_furnace", "pig_iron", (500_000, 3_000_000), 3), ("steelmaking", "crude_steel", (500_000, 4_000_000), 3),
        ("steel_rolling", "steel_products", (300_000, 2_000_000), 2), ("al_prebake_electrolysis", "primary_aluminium", (100_000, 500_000), 3),
        ("zn_hydrometallurgical", "zinc_ingot", (30_000, 150_000), 3), ("pb_blast_furnace", "lead_bullion", (10_000, 40_000), 2),
        ("concentrator", "ore_processed", (100_000, 3_000_000), 5), ("ferroalloy_submerged_arc", "ferroalloy", (20_000, 100_000), 3),
        ("cement_clinker", "cement_clinker", (600_000, 2_500_000), 2),
    ],
    "150000": [
        ("al_prebake_electrolysis", "primary_aluminium", (200_000, 800_000), 8), ("alumina_from_fly_ash", "alumina", (200_000, 1_000_000), 2),
        ("ree_separation", "rare_earth_oxide", (3_000, 20_000), 5), ("ree_metal", "rare_earth_metal", (1_000, 8_000), 3),
        ("ree_mining", "rare_earth_ore", (10_000, 60_000), 1), ("cu_flash_smelting", "cathode_copper", (100_000, 400_000), 2),
        ("cu_blast_furnace", "blister_copper", (5_000, 30_000), 2), ("zn_hydrometallurgical", "zinc_ingot", (50_000, 200_000), 3),
        ("pb_oxygen_bath", "lead_bullion", (50_000, 100_000), 2), ("mg_smelting", "magnesium_ingot", (10_000, 50_000), 2),
        ("ferroalloy_submerged_arc", "ferroalloy", (30_000, 200_000), 6), ("calcium_carbide_furnace", "calcium_carbide", (100_000, 600_000), 4),
        ("steelmaking", "crude_steel", (1_000_000, 6_000_000), 2), ("concentrator", "ore_processed", (200_000, 3_000_000), 4),
        ("cement_clinker", "cement_clinker", (600_000, 2_500_000), 2),
    ],
    "630000": [
        ("al_prebake_electrolysis", "primary_aluminium", (100_000, 500_000), 6), ("calcium_carbide_furnace", "calcium_carbide", (100_000, 400_000), 4),
        ("ferroalloy_submerged_arc", "ferroalloy", (20_000, 150_000), 4), ("mg_smelting", "magnesium_ingot", (10_000, 100_000), 2),
        ("zn_hydrometallurgical", "zinc_ingot", (30_000, 100_000), 2), ("pb_blast_furnace", "lead_bullion", (5_000, 30_000), 1),
        ("concentrator", "ore_processed", (100_000, 1_500_000), 3), ("cement_clinker", "cement_clinker", (600_000, 2_000_000), 2),
    ],
}
ENTERPRISES_PER_PROVINCE = {"530000": 110, "510000": 90, "150000": 80, "630000": 40}
BLAST_FURNACES = {"pb_blast_furnace", "cu_blast_furnace", "sb_blast_furnace", "al_soderberg_electrolysis"}
CELL_CURRENTS = (160, 180, 200, 240, 300, 320, 350, 400, 420, 500)
CELL_CURRENT_WEIGHTS = (2, 2, 4, 6, 10, 8, 10, 12, 6, 4)
ORE_CLASS = {"530000": ("copper", "lead_zinc", "precious", "other"), "510000": ("iron", "rare_earth", "lead_zinc"),
             "150000": ("rare_earth", "iron", "copper", "lead_zinc"), "630000": ("lead_zinc", "other")}


@dataclass
class UnitPlan:
    name: str
    process_type: str
    commissioned_on: date
    approved_on: date
    statuses: list[tuple[str, date, str]]
    params: list[tuple[str, str | None, str | None, str | None]]  # code, value, label, unit
    capacity: tuple[str, int]
    declarations: list[tuple[int, str, str, str]] = field(default_factory=list)  # year, measure, value, unit


@dataclass
class EnterprisePlan:
    name: str
    uscc: str
    ownership: str
    division_code: str
    site_division: str
    above_designated: bool
    park: str | None
    group: str | None
    units: list[UnitPlan]


@dataclass
class DemoPlan:
    parks: list[dict]
    groups: list[str]
    enterprises: list[EnterprisePlan]


def _fictional_name(rng: random.Random, used: set[str], industry: str) -> str:
    while True:
        name = rng.choice(FIRST) + rng.choice(SECOND) + INDUSTRY_WORD[industry] + rng.choice(SUFFIX)
        if name not in used and name != DEMO_ENTERPRISE_NAME:
            used.add(name)
            return name


@lru_cache(maxsize=1)
def _declaration_profiles() -> dict:
    return yaml.safe_load(resources.files("ingot.registry").joinpath("demo_declarations.yaml").read_text(encoding="utf-8"))


def _draw(rng: random.Random, spread: dict) -> str:
    """A figure between low and high on the reporting step, as the exact decimal string a plant would write."""
    low, high, step = (Decimal(spread[key]) for key in ("low", "high", "step"))
    steps = int((high - low) / step)
    return str(low + step * rng.randrange(0, steps + 1))


def _unit_plan(rng: random.Random, province: str, process: str, product: str, low_high: tuple[int, int], index: int) -> UnitPlan:
    from ingot.registry.vocabulary import vocabulary

    commissioned = date(1995, 1, 1) + timedelta(days=rng.randrange(0, 25 * 365))
    approved = commissioned - timedelta(days=rng.randrange(180, 3 * 365))
    statuses: list[tuple[str, date, str]] = []
    if commissioned > date(2016, 1, 1) and rng.random() < 0.5:
        statuses.append(("planned", approved, "立项备案"))
        statuses.append(("under_construction", approved + timedelta(days=120), "开工建设"))
    statuses.append(("operating", commissioned, "投产"))
    roll = rng.random()
    if process in BLAST_FURNACES:
        if roll < 0.5:
            retired = max(date(2017, 1, 1) + timedelta(days=rng.randrange(0, 3 * 365)), commissioned + timedelta(days=365))
            statuses.append(("eliminated", retired, "列入淘汰名单并拆除"))
    elif roll < 0.08:
        statuses.append(("idle", max(commissioned + timedelta(days=400), date(2018, 3, 1)) + timedelta(days=rng.randrange(0, 700)), "市场原因停产"))
    elif roll < 0.11:
        statuses.append(("closed", max(commissioned + timedelta(days=400), date(2019, 1, 1)) + timedelta(days=rng.randrange(0, 700)), "关停退出"))
    low, high = low_high
    capacity = rng.randrange(low, high + 1)
    capacity -= capacity % (1000 if capacity > 10_000 else 10 if capacity > 100 else 1)
    params: list[tuple[str, str | None, str | None, str | None]] = []
    missing_data = rng.random() < 0.08
    carried = vocabulary().process_types[process].get("params") or []
    units_of = vocabulary().parameters
    for code in carried:
        if missing_data:
            break
        if code == "cell_current":
            params.append((code, str(rng.choices(CELL_CURRENTS, CELL_CURRENT_WEIGHTS)[0]), None, "kA"))
        elif code == "cell_count":
            params.append((code, str(rng.randrange(120, 400)), None, "count"))
        elif code == "single_line_capacity":
            params.append((code, str(capacity if rng.random() < 0.8 else capacity // 2), None, "t/a"))
        elif code == "ore_capacity":
            params.append((code, str(rng.choice((100, 200, 300, 500, 800, 1500, 3000, 6000))), None, "t/d"))
        elif code == "ore_class":
            params.append((code, None, rng.choice(ORE_CLASS[province]), None))
        elif code == "furnace_capacity":
            params.append((code, str(rng.choice((6300, 12500, 16500, 25000, 33000, 40500))), None, "kVA"))
        elif code == "furnace_volume":
            params.append((code, str(rng.choice((380, 450, 1080, 1200, 1780, 2500))), None, "m3"))
        else:
            params.append((code, str(rng.randrange(1, 100)), None, units_of[code]["unit"]))
    declarations: list[tuple[int, str, str, str]] = []
    if not missing_data:
        profile = _declaration_profiles()
        for year in profile["years"]:
            if year < commissioned.year:
                continue
            for measure, spread in (profile["profiles"].get(process) or {}).items():
                declarations.append((year, measure, _draw(rng, spread), spread["unit"]))
    label = {"concentrator": "选矿系统", "cement_clinker": "熟料生产线"}.get(process, "生产系列")
    return UnitPlan(f"{index + 1}号{label}", process, commissioned, approved, statuses, params, (product, capacity), declarations)


def demo_plan(seed: int = SEED) -> DemoPlan:
    """The whole demo region as plain data; the same seed always gives the same plan."""
    from ingot.registry.vocabulary import vocabulary

    rng = random.Random(seed)
    divisions = service.division_rows()
    prefectures = {p: [code for code, _zh, _en, level, parent in divisions if level == "prefecture" and parent == p] for p in ENTERPRISES_PER_PROVINCE}
    counties = {}
    for code, _zh, _en, level, parent in divisions:
        if level == "county":
            counties.setdefault(parent, []).append(code)
    names = {code: zh for code, zh, *_ in divisions}
    parks = []
    for province, prefecture_codes in prefectures.items():
        for prefecture in rng.sample(prefecture_codes, 3):
            metals = sorted({vocabulary().metal_of(entry[0]) or "rare_earth" for entry in rng.sample(PROVINCE_MIX[province], 3)})
            park_name = ""
            while not park_name or any(p["name"] == park_name for p in parks):
                park_name = f"{names[prefecture][:2]}{rng.choice(FIRST)}{rng.choice(SECOND)}有色产业园区"
            parks.append({"name": park_name, "level": rng.choice(("national", "provincial", "prefecture")),
                          "division_code": prefecture, "industries": metals})
    groups = [f"{a}{b}控股集团有限公司" for a, b in zip(rng.sample(FIRST, 10), rng.sample(SECOND, 10))]
    used: set[str] = set()
    enterprises = []
    serial = 0
    for province, count in ENTERPRISES_PER_PROVINCE.items():
        mix = PROVINCE_MIX[province]
        for _ in range(count):
            serial += 1
            process, product, capacity_range, _weight = rng.choices(mix, [entry[3] for entry in mix])[0]
            prefecture = rng.choice(prefectures[province])
            site_division = rng.choice(counties.get(prefecture, [prefecture]))
            metal = vocabulary().metal_of(process) or "ore"
            unit_count = rng.choice((2, 3, 3, 4, 4, 5))
            units = []
            for index in range(unit_count):
                # Most plants repeat their main process; some add a second line of another kind.
                if index and rng.random() < 0.25:
                    process_i, product_i, range_i, _w = rng.choices(mix, [entry[3] for entry in mix])[0]
                else:
                    process_i, product_i, range_i = process, product, capacity_range
                units.append(_unit_plan(rng, province, process_i, product_i, range_i, index))
            local_parks = [p["name"] for p in parks if p["division_code"] == prefecture]
            enterprises.append(EnterprisePlan(
                name=_fictional_name(rng, used, metal),
                uscc=make_uscc("9", "1", site_division, f"MA{serial:05d}" + rng.choice("0123456789")),
                ownership=rng.choices(("state_owned", "private", "mixed", "collective", "foreign_invested", "hmt_invested"), (30, 40, 20, 4, 4, 2))[0],
                division_code=prefecture, site_division=site_division, above_designated=rng.random() < 0.85,
                park=local_parks[0] if local_parks and rng.random() < 0.6 else None,
                group=rng.choice(groups) if rng.random() < 0.2 else None, units=units,
            ))
    demo_units = [
        _unit_plan(random.Random(seed + 1), "530000", "al_prebake_electrolysis", "primary_aluminium", (300_000, 300_000), 0),
        _unit_plan(random.Random(seed + 2), "530000", "al_prebake_electrolysis", "primary_aluminium", (200_000, 200_000), 1),
    ]
    demo_units[0].name = DEMO_UNIT_NAME
    demo_units[0].params = [("cell_current", "400", None, "kA"), ("cell_count", "288", None, "count")]
    demo_units[0].statuses = [("operating", demo_units[0].commissioned_on, "投产")]
    enterprises.insert(0, EnterprisePlan(
        name=DEMO_ENTERPRISE_NAME, uscc=make_uscc("9", "1", "530181", "MA9D3M01"), ownership="mixed", division_code="530100",
        site_division="530181", above_designated=True, park=None, group=None, units=demo_units,
    ))
    return DemoPlan(parks=parks, groups=groups, enterprises=enterprises)


def demo_logins(plan: DemoPlan) -> list[tuple[str, str, str, str]]:
    logins = [
        ("admin", DEMO_PASSWORD, auth.ADMIN, "全部 / all"),
        ("auditor", DEMO_PASSWORD, auth.AUDITOR, "全部（只读）/ all, read-only"),
        (DEMO_REGULATOR, DEMO_PASSWORD, auth.REGULATOR, "530000"),
        ("reg_sichuan", DEMO_PASSWORD, auth.REGULATOR, "510000"),
        ("reg_neimenggu", DEMO_PASSWORD, auth.REGULATOR, "150000"),
        ("reg_qinghai", DEMO_PASSWORD, auth.REGULATOR, "630000"),
        (DEMO_PREFECTURE_REGULATOR, DEMO_PASSWORD, auth.REGULATOR, "530100"),
    ]
    for index, enterprise in enumerate((plan.enterprises[0], plan.enterprises[40], plan.enterprises[150])):
        logins.append((f"ent{index + 1}", DEMO_PASSWORD, auth.ENTERPRISE, f"{enterprise.uscc} {enterprise.name}"))
    return logins


def load_demo(session: Session, seed: int = SEED, progress=None) -> list[tuple[str, str, str, str]]:
    """Load the demo region (once: a second call adds nothing) and return (username, password, role, scope)."""
    service.load_divisions(session)
    plan = demo_plan(seed)
    if session.scalar(select(Enterprise.id).where(Enterprise.uscc == plan.enterprises[0].uscc)) is None:
        _write_plan(session, plan, progress)
    usccs = {enterprise.uscc for enterprise in plan.enterprises}
    ids = dict(session.execute(select(Enterprise.uscc, Enterprise.id).where(Enterprise.uscc.in_(usccs))).all())
    logins = demo_logins(plan)
    existing = set(session.scalars(select(auth.User.username)))
    for username, password, role, scope in logins:
        if username in existing:
            continue
        auth.create_user(
            session, username=username, password=password, role=role,
            division_code=scope if role == auth.REGULATOR else None,
            enterprise_id=ids[scope.split(" ", 1)[0]] if role == auth.ENTERPRISE else None,
        )
    session.flush()
    return logins


def _write_plan(session: Session, plan: DemoPlan, progress) -> None:
    actor = SYSTEM
    park_ids = {park["name"]: service.create_park(session, actor, park)["id"] for park in plan.parks}
    group_ids = {name: service.create_group(session, actor, {"name": name})["id"] for name in plan.groups}
    for enterprise in plan.enterprises:
        made = service.create_enterprise(session, actor, {
            "name": enterprise.name, "uscc": enterprise.uscc, "ownership": enterprise.ownership, "division_code": enterprise.division_code,
            "park_id": park_ids.get(enterprise.park), "group_id": group_ids.get(enterprise.group), "above_designated": enterprise.above_designated,
        })
        site = service.create_site(session, actor, {"enterprise_id": made["id"], "name": "主厂区", "division_code": enterprise.site_division,
                                                    "address": f"{enterprise.site_division} 工业大道 {len(enterprise.name)} 号"})
        for unit_plan in enterprise.units:
            unit = service.create_unit(session, actor, {"site_id": site["id"], "name": unit_plan.name, "process_type": unit_plan.process_type,
                                                        "commissioned_on": unit_plan.commissioned_on, "approved_on": unit_plan.approved_on})
            for status, effective_on, note in unit_plan.statuses:
                service.add_fact(session, actor, unit["id"], "status", {"status": status, "effective_on": effective_on, "note": note})
            for code, value, label, unit_string in unit_plan.params:
                fact = {"code": code, "unit": unit_string, "effective_from": unit_plan.commissioned_on}
                fact |= {"value_label": label} if label is not None else {"value": value}
                service.add_fact(session, actor, unit["id"], "parameters", fact)
            product, capacity = unit_plan.capacity
            service.add_fact(session, actor, unit["id"], "capacities", {"product_code": product, "value": capacity, "unit": "t/a",
                                                                        "effective_from": unit_plan.commissioned_on})
            for year, measure, value, unit_string in unit_plan.declarations:
                service.add_fact(session, actor, unit["id"], "declarations", {"year": year, "measure_code": measure, "value": value,
                                                                              "unit": unit_string, "source": "企业年度申报（演示）"})
        if progress is not None:
            progress(1)
