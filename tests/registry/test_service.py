"""Registry use cases: scope per resource, audit entries, versions and as-of answers."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from ingot.core.audit import AuditEntry
from ingot.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from ingot.core.timeutil import utcnow
from ingot.registry import service
from ingot.registry.service import ListQuery

from .helpers import ADMIN_P, AUDITOR_P, KUNMING_P, SICHUAN_P, YUNNAN_P, build_world, uscc


@pytest.fixture
def world(session):
    return build_world(session)


# ------------------------------------------------------------------ scope: enterprise users, for every resource

READERS = {
    "enterprise": lambda w, key: w.__dict__[key]["id"],
    "site": lambda w, key: w.__dict__[key + "_site"]["id"],
    "unit": lambda w, key: w.__dict__[key + "_unit"]["id"],
}


@pytest.mark.parametrize("entity", sorted(READERS))
def test_enterprise_user_reads_own_records_and_never_anothers(session, world, entity):
    own = world.enterprise_user("kunming")
    assert service.get_record(session, own, entity, READERS[entity](world, "kunming"))["enterprise_id"] == world.kunming["id"]
    with pytest.raises(NotFound):
        service.get_record(session, own, entity, READERS[entity](world, "honghe"))


def test_enterprise_user_lists_only_own_records(session, world):
    own = world.enterprise_user("kunming")
    for lister in (service.list_enterprises, service.list_sites, service.list_units):
        page = lister(session, own, ListQuery())
        assert page.total == 1 and page.items[0]["enterprise_id"] == world.kunming["id"]


def test_enterprise_user_cannot_change_another_enterprises_records(session, world):
    own = world.enterprise_user("kunming")
    attempts = [
        lambda: service.update_enterprise(session, own, world.honghe["id"], {"name": "改名"}),
        lambda: service.update_site(session, own, world.honghe_site["id"], {"address": "x"}),
        lambda: service.create_site(session, own, {"enterprise_id": world.honghe["id"], "name": "新厂", "division_code": "532501"}),
        lambda: service.update_unit(session, own, world.honghe_unit["id"], {"name": "x"}),
        lambda: service.create_unit(session, own, {"site_id": world.honghe_site["id"], "name": "x", "process_type": "sn_smelting"}),
        lambda: service.add_fact(session, own, world.honghe_unit["id"], "status", {"status": "idle", "effective_on": "2020-01-01"}),
        lambda: service.add_fact(session, own, world.honghe_unit["id"], "capacities", {"product_code": "refined_tin", "value": "1", "effective_from": "2020-01-01"}),
        lambda: service.add_fact(session, own, world.honghe_unit["id"], "declarations",
                                 {"year": 2020, "measure_code": "comprehensive_energy", "value": "1", "unit": "kgce/t"}),
        lambda: service.list_facts(session, own, world.honghe_unit["id"], "parameters"),
        lambda: service.version_history(session, own, "unit", world.honghe_unit["id"]),
    ]
    for attempt in attempts:
        with pytest.raises(NotFound):
            attempt()
    honghe = service.get_record(session, ADMIN_P, "enterprise", world.honghe["id"])
    assert honghe["name"] == world.honghe["name"]


def test_enterprise_user_changes_own_records_but_creates_no_enterprise_park_or_group(session, world):
    own = world.enterprise_user("kunming")
    updated = service.update_site(session, own, world.kunming_site["id"], {"address": "安宁工业园"})
    assert updated["address"] == "安宁工业园"
    service.add_fact(session, own, world.kunming_unit["id"], "status", {"status": "idle", "effective_on": "2021-01-01"})
    for attempt in (
        lambda: service.create_enterprise(session, own, {"name": "x", "uscc": uscc(77), "ownership": "private", "division_code": "530100"}),
        lambda: service.create_park(session, own, {"name": "x", "level": "provincial", "division_code": "530100"}),
        lambda: service.create_group(session, own, {"name": "x"}),
        lambda: service.update_enterprise(session, own, world.kunming["id"], {"division_code": "532500"}),
    ):
        with pytest.raises(Forbidden):
            attempt()


# ------------------------------------------------------------------ scope: regulators and auditors


def test_prefecture_regulator_sees_only_its_prefecture(session, world):
    for lister in (service.list_enterprises, service.list_sites, service.list_units):
        page = lister(session, KUNMING_P, ListQuery())
        assert [item["enterprise_id"] for item in page.items] == [world.kunming["id"]]
    assert service.list_enterprises(session, YUNNAN_P, ListQuery()).total == 2
    for entity, key in (("enterprise", world.honghe["id"]), ("site", world.honghe_site["id"]), ("unit", world.honghe_unit["id"])):
        with pytest.raises(NotFound):
            service.get_record(session, KUNMING_P, entity, key)
    with pytest.raises(NotFound):
        service.update_unit(session, KUNMING_P, world.honghe_unit["id"], {"name": "x"})
    with pytest.raises(NotFound):
        service.add_fact(session, SICHUAN_P, world.kunming_unit["id"], "status", {"status": "idle", "effective_on": "2021-01-01"})


def test_regulator_cannot_register_outside_its_jurisdiction(session, world):
    with pytest.raises(Forbidden):
        service.create_enterprise(session, KUNMING_P, {"name": "外地企业", "uscc": uscc(55, "532500"), "ownership": "private", "division_code": "532500"})
    with pytest.raises(Forbidden):
        service.update_enterprise(session, KUNMING_P, world.kunming["id"], {"division_code": "532500"})
    with pytest.raises(Forbidden):
        service.create_park(session, KUNMING_P, {"name": "外地园区", "level": "provincial", "division_code": "510400"})
    made = service.create_enterprise(session, KUNMING_P, {"name": "本地企业", "uscc": uscc(56), "ownership": "state_owned", "division_code": "530181"})
    assert made["division_code"] == "530181"


def test_auditor_reads_everything_and_writes_nothing(session, world):
    assert service.list_units(session, AUDITOR_P, ListQuery()).total == 3
    assert service.get_record(session, AUDITOR_P, "unit", world.sichuan_unit["id"])["process_type"] == "ti_sponge"
    for attempt in (
        lambda: service.update_enterprise(session, AUDITOR_P, world.kunming["id"], {"name": "x"}),
        lambda: service.create_site(session, AUDITOR_P, {"enterprise_id": world.kunming["id"], "name": "x", "division_code": "530100"}),
        lambda: service.add_fact(session, AUDITOR_P, world.kunming_unit["id"], "status", {"status": "idle", "effective_on": "2021-01-01"}),
        lambda: service.create_group(session, AUDITOR_P, {"name": "审计集团"}),
    ):
        with pytest.raises(Forbidden):
            attempt()


def test_parks_and_groups_are_reference_data_everyone_reads(session, world):
    park = service.create_park(session, YUNNAN_P, {"name": "滇中示范园区", "level": "provincial", "division_code": "530181", "industries": ["aluminium", "copper"]})
    group = service.create_group(session, ADMIN_P, {"name": "西南示例集团"})
    own = world.enterprise_user("sichuan")
    assert service.get_record(session, own, "park", park["id"])["industries"] == ["aluminium", "copper"]
    assert service.get_record(session, own, "group", group["id"])["name"] == "西南示例集团"
    assert service.list_parks(session, own, ListQuery(metal="copper")).total == 1
    assert service.list_parks(session, own, ListQuery(metal="tin")).total == 0
    with pytest.raises(Forbidden):
        service.update_park(session, SICHUAN_P, park["id"], {"name": "改名"})


# ------------------------------------------------------------------ validation


def test_parameter_the_process_does_not_carry_or_in_the_wrong_unit_is_refused(session, world):
    unit_id = world.kunming_unit["id"]
    with pytest.raises(InvalidInput) as not_carried:
        service.add_fact(session, ADMIN_P, unit_id, "parameters", {"code": "ore_capacity", "value": "500", "unit": "t/d", "effective_from": "2020-01-01"})
    assert not_carried.value.code == "parameter_not_carried" and "cell_current" in not_carried.value.message_en
    with pytest.raises(InvalidInput) as wrong_unit:
        service.add_fact(session, ADMIN_P, unit_id, "parameters", {"code": "cell_current", "value": "400000", "unit": "A", "effective_from": "2020-01-01"})
    assert wrong_unit.value.field == "unit" and "kA" in wrong_unit.value.message_zh
    with pytest.raises(InvalidInput):
        service.add_fact(session, ADMIN_P, unit_id, "parameters", {"code": "cell_current", "value": 400.5, "unit": "kA", "effective_from": "2020-01-01"})
    with pytest.raises(InvalidInput) as measure:
        service.add_fact(session, ADMIN_P, unit_id, "declarations", {"year": 2020, "measure_code": "current_efficiency", "value": "92", "unit": "kWh/t"})
    assert measure.value.code == "wrong_unit"
    with pytest.raises(InvalidInput) as unknown_measure:
        service.add_fact(session, ADMIN_P, unit_id, "declarations", {"year": 2020, "measure_code": "no_such_measure", "value": "1", "unit": "t"})
    assert unknown_measure.value.field == "measure_code"


def test_wrong_credit_code_names_the_field(session, world):
    with pytest.raises(InvalidInput) as refused:
        service.create_enterprise(session, ADMIN_P, {"name": "x", "uscc": "91350100M000100Y44", "ownership": "private", "division_code": "530100"})
    assert refused.value.field == "uscc" and "position 18" in refused.value.message_en


def test_duplicate_credit_code_and_status_date_are_conflicts(session, world):
    with pytest.raises(Conflict):
        service.create_enterprise(session, ADMIN_P, {"name": "y", "uscc": world.kunming["uscc"], "ownership": "private", "division_code": "530100"})
    with pytest.raises(Conflict):
        service.add_fact(session, ADMIN_P, world.kunming_unit["id"], "status", {"status": "idle", "effective_on": "2012-05-01"})


# ------------------------------------------------------------------ audit and versions


def test_every_write_is_audited_with_before_after_and_scope(session, world):
    service.update_enterprise(session, YUNNAN_P, world.honghe["id"], {"name": "红河示例锡业有限公司"})
    entry = session.scalars(select(AuditEntry).where(AuditEntry.entity == "enterprise", AuditEntry.action == "update")).one()
    assert entry.actor == "yn_regulator"
    assert entry.before["name"] == world.honghe["name"] and entry.after["name"] == "红河示例锡业有限公司"
    assert entry.division_code == "532500" and entry.enterprise_id == world.honghe["id"]
    creations = session.scalars(select(AuditEntry.entity).where(AuditEntry.action == "create")).all()
    assert {"enterprise", "site", "unit", "status", "parameter"} <= set(creations)
    status_entry = session.scalars(select(AuditEntry).where(AuditEntry.entity == "status")).first()
    assert status_entry.before is None and status_entry.after["status"] == "operating" and status_entry.division_code == "530181"


def test_versions_answer_what_the_registry_said_at_a_moment(session, world):
    enterprise_id = world.kunming["id"]
    first_moment = utcnow()
    service.update_enterprise(session, ADMIN_P, enterprise_id, {"name": "第二个名字", "above_designated": True})
    second_moment = utcnow()
    service.update_enterprise(session, ADMIN_P, enterprise_id, {"name": "第三个名字"})
    assert service.record_as_of(session, "enterprise", enterprise_id, first_moment)["name"] == world.kunming["name"]
    assert service.record_as_of(session, "enterprise", enterprise_id, second_moment)["name"] == "第二个名字"
    assert service.record_as_of(session, "enterprise", enterprise_id, utcnow())["name"] == "第三个名字"
    history = service.version_history(session, ADMIN_P, "enterprise", enterprise_id)
    assert [v["version_no"] for v in history] == [1, 2, 3]
    assert history[0]["valid_to"] == history[1]["valid_from"] and history[2]["valid_to"] is None
    from datetime import timedelta

    assert service.record_as_of(session, "enterprise", enterprise_id, first_moment - timedelta(days=1)) is None


def test_deleted_fact_leaves_a_closed_history(session, world):
    unit_id = world.kunming_unit["id"]
    fact = service.add_fact(session, ADMIN_P, unit_id, "capacities", {"product_code": "primary_aluminium", "value": "250000", "effective_from": "2015-01-01"})
    while_present = utcnow()
    service.delete_fact(session, ADMIN_P, unit_id, "capacities", fact["id"])
    assert service.record_as_of(session, "capacity", fact["id"], while_present)["value"] == "250000"
    assert service.record_as_of(session, "capacity", fact["id"], utcnow()) is None
    assert service.list_facts(session, ADMIN_P, unit_id, "capacities") == []


def test_unit_facts_as_of_follows_the_business_dates(session, world):
    unit_id = world.kunming_unit["id"]
    service.add_fact(session, ADMIN_P, unit_id, "parameters", {"code": "cell_current", "value": "500", "unit": "kA", "effective_from": "2019-06-01"})
    service.add_fact(session, ADMIN_P, unit_id, "capacities", {"product_code": "primary_aluminium", "value": "400000", "effective_from": "2012-05-01"})
    service.add_fact(session, ADMIN_P, unit_id, "status", {"status": "closed", "effective_on": "2022-03-01"})
    for year, value in ((2017, "13400"), (2018, "13250")):
        service.add_fact(session, ADMIN_P, unit_id, "declarations", {"year": year, "measure_code": "al_liquid_ac_power", "value": value, "unit": "kWh/t"})

    def facts_on(day):
        return {f.unit_id: f for f in service.unit_facts_as_of(session, day, YUNNAN_P)}[str(unit_id)]

    in_2011 = service.unit_facts_as_of(session, date(2011, 1, 1), YUNNAN_P)
    assert str(unit_id) not in {f.unit_id for f in in_2011}
    early = facts_on(date(2017, 12, 31))
    assert early.status == "operating" and early.params["cell_current"] == Decimal("400")
    assert early.declarations["al_liquid_ac_power"] == Decimal("13400")
    assert early.capacities["primary_aluminium"] == Decimal("400000")
    assert early.province == "530000" and early.prefecture == "530100" and early.metal == "aluminium"
    later = facts_on(date(2020, 1, 1))
    assert later.params["cell_current"] == Decimal("500") and later.declarations["al_liquid_ac_power"] == Decimal("13250")
    assert facts_on(date(2022, 3, 1)).status == "closed"
    assert {f.unit_id for f in service.unit_facts_as_of(session, date(2020, 1, 1), KUNMING_P)} == {str(unit_id)}


def test_capacity_overview_counts_only_registered_units_by_province_and_metal(session, world):
    service.add_fact(session, ADMIN_P, world.kunming_unit["id"], "capacities", {"product_code": "primary_aluminium", "value": "400000", "effective_from": "2012-05-01"})
    service.add_fact(session, ADMIN_P, world.honghe_unit["id"], "capacities", {"product_code": "refined_tin", "value": "30000", "effective_from": "2012-05-01"})
    service.add_fact(session, ADMIN_P, world.honghe_unit["id"], "status", {"status": "eliminated", "effective_on": "2019-01-01"})
    before = {(r["province_code"], r["metal"]): r["capacity"] for r in service.capacity_overview(session, ADMIN_P, date(2018, 1, 1))["rows"]}
    assert before == {("530000", "aluminium"): "400000", ("530000", "tin"): "30000"}
    after = {(r["province_code"], r["metal"]): r["capacity"] for r in service.capacity_overview(session, ADMIN_P, date(2020, 1, 1))["rows"]}
    assert after == {("530000", "aluminium"): "400000"}
    assert service.capacity_overview(session, SICHUAN_P, date(2018, 1, 1))["rows"] == []


def test_list_filters_and_sorting(session, world):
    assert [u["process_type"] for u in service.list_units(session, ADMIN_P, ListQuery(metal="titanium")).items] == ["ti_sponge"]
    assert service.list_units(session, ADMIN_P, ListQuery(province="510000")).total == 1
    assert service.list_units(session, ADMIN_P, ListQuery(status="operating")).total == 3
    assert service.list_units(session, ADMIN_P, ListQuery(status="operating", as_of=date(2011, 1, 1))).total == 0
    assert service.list_enterprises(session, ADMIN_P, ListQuery(metal="tin")).items[0]["id"] == world.honghe["id"]
    names = [e["name"] for e in service.list_enterprises(session, ADMIN_P, ListQuery(sort="-name")).items]
    assert names == sorted(names, reverse=True)
    with pytest.raises(InvalidInput) as bad_sort:
        service.list_enterprises(session, ADMIN_P, ListQuery(sort="password_hash"))
    assert bad_sort.value.field == "sort"
    assert service.list_enterprises(session, ADMIN_P, ListQuery(q="%")).total == 0
