"""Stored compliance runs and the live views, on a small registry built through the registry's service."""
from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from ingot.core.audit import AuditEntry
from ingot.core.auth import ENTERPRISE, REGULATOR, Principal
from ingot.core.errors import Forbidden, InvalidInput, NotFound
from ingot.policy import runs
from tests.policy_db.world import ADMIN_P

BEFORE_CLOSURE = date(2018, 6, 30)
AFTER_CLOSURE = date(2019, 6, 30)
STRICTER_CELLS = "nm.al.existing_cell_current.min_cell_current=450"


def unit_verdict(result_views, rule_id, unit_id):
    (match,) = [v for v in result_views if v["rule_id"] == rule_id and str(v["unit_id"]) == str(unit_id)]
    return match


def test_live_evaluation_mixes_pass_fail_and_missing_data(session, world):
    result = runs.evaluate_registry(session, BEFORE_CLOSURE)
    views = [runs.verdict_view(v, result.units) for v in result.verdicts]
    good = unit_verdict(views, "nm.al.existing_cell_current", world.units["baotou_good"])
    old = unit_verdict(views, "nm.al.existing_cell_current", world.units["baotou_old"])
    unknown = unit_verdict(views, "nm.al.existing_cell_current", world.units["hohhot_unknown"])
    assert (good["verdict"], old["verdict"], unknown["verdict"]) == ("pass", "fail", "missing_data")
    assert old["measured"] == {"param.cell_current": "150"} and old["thresholds"] == {"min_cell_current": "160"}
    assert old["units"] == {"min_cell_current": "kA"}
    assert "160KA" in old["citation"]["quote"] and old["title"]["en"]
    assert any(reason.startswith("unit_age=existing") for reason in old["matched"])


def test_stored_run_keeps_hash_date_overrides_author_and_verdicts(session, world):
    run = runs.create_run(session, ADMIN_P, BEFORE_CLOSURE, runs.parse_overrides([STRICTER_CELLS]), label="stricter cells")
    assert run["catalogue_hash"] == runs.catalogue().content_hash
    assert run["as_of"] == "2018-06-30" and run["overrides"] == [STRICTER_CELLS] and run["created_by"] == "policy_admin"
    assert run["unit_count"] == 5 and sum(run["counts"].values()) > 0
    verdicts = runs.run_verdicts(session, ADMIN_P, run["id"], rule_id="nm.al.existing_cell_current")
    assert {v["unit_id"]: v["verdict"] for v in verdicts} == {
        world.units["baotou_good"]: "fail", world.units["baotou_old"]: "fail", world.units["hohhot_unknown"]: "missing_data",
        world.units["kunming_al"]: "not_applicable"}  # a Yunnan line: Inner Mongolia's rule names its process, not its province
    stored = verdicts[0]
    assert stored["thresholds"] == {"min_cell_current": "450"} and stored["citation"]["section"]
    assert stored["capacities"] and stored["enterprise_name"]
    audit = session.query(AuditEntry).filter_by(entity="compliance_run", entity_id=str(run["id"])).one()
    assert audit.action == "create" and audit.after["as_of"] == "2018-06-30"


def test_same_hash_and_date_give_the_same_verdicts(session, world):
    first = runs.create_run(session, ADMIN_P, AFTER_CLOSURE)
    second = runs.create_run(session, ADMIN_P, AFTER_CLOSURE)
    def keyed(run_id):
        return sorted((v["rule_id"], v["subject"], v["verdict"], str(v["measured"])) for v in runs.run_verdicts(session, ADMIN_P, run_id))
    assert keyed(first["id"]) == keyed(second["id"]) and first["counts"] == second["counts"]
    comparison = runs.compare_runs(session, ADMIN_P, first["id"], second["id"])
    assert comparison["same_catalogue"] and not comparison["newly_failing"] and not comparison["newly_passing"]
    reproduced = runs.reproduce_run(session, ADMIN_P, first["id"])
    assert reproduced["identical"] and reproduced["differences"] == []


def test_comparing_runs_across_the_closure_deadline_shows_the_blast_furnace_failing(session, world):
    before = runs.create_run(session, ADMIN_P, BEFORE_CLOSURE)
    after = runs.create_run(session, ADMIN_P, AFTER_CLOSURE)
    comparison = runs.compare_runs(session, ADMIN_P, before["id"], after["id"])
    failing = {(c["rule_id"], c["unit_id"]): (c["before"], c["after"]) for c in comparison["newly_failing"]}
    assert failing[("yn.nf.blast_furnace_closure_2018", world.units["honghe_lead"])] == ("pass", "fail")
    assert comparison["capacity_affected"]["refined_lead"] == "30000"


def test_what_if_with_a_stricter_threshold_makes_units_newly_fail(session, world):
    diff = runs.what_if(session, ADMIN_P, BEFORE_CLOSURE, runs.parse_overrides([STRICTER_CELLS]))
    view = runs.what_if_view(diff)
    newly = {(c["rule_id"], c["unit_id"]) for c in view["newly_failing"]}
    assert newly == {("nm.al.existing_cell_current", str(world.units["baotou_good"]))}
    assert view["capacity_affected"] == {"primary_aluminium": "500000"}
    relaxed = runs.what_if_view(runs.what_if(session, ADMIN_P, BEFORE_CLOSURE,
                                             runs.parse_overrides(["nm.al.existing_cell_current.min_cell_current=100"])))
    assert {(c["rule_id"], c["unit_id"]) for c in relaxed["newly_passing"]} == {
        ("nm.al.existing_cell_current", str(world.units["baotou_old"]))}
    later = runs.what_if_view(runs.what_if(session, ADMIN_P, AFTER_CLOSURE,
                                           runs.parse_overrides(["yn.nf.blast_furnace_closure_2018.closure_deadline=2020-12-31"])))
    assert [(c["rule_id"], c["before"], c["after"]) for c in later["newly_passing"]] == [
        ("yn.nf.blast_furnace_closure_2018", "fail", "pass")]


def test_what_if_needs_an_override_and_rejects_bad_ones(session, world):
    with pytest.raises(InvalidInput) as no_override:
        runs.what_if(session, ADMIN_P, BEFORE_CLOSURE, ())
    assert no_override.value.code == "no_override" and "至少" in no_override.value.message_zh
    for text, code in (("nm.al.existing_cell_current.min_cell_current", "override_syntax"),
                       ("nm.al.nothing.min=1", "unknown_rule"),
                       ("nm.al.existing_cell_current.min_cell_current=lots", "override_value")):
        with pytest.raises(InvalidInput) as bad:
            runs.parse_overrides([text])
        assert bad.value.code == code
    with pytest.raises(InvalidInput) as twice:
        runs.parse_overrides([STRICTER_CELLS, "nm.al.existing_cell_current.min_cell_current=300"])
    assert twice.value.code == "override_twice"


def test_elimination_list_headroom_and_noncompliance(session, world):
    entries = runs.elimination(session, ADMIN_P, BEFORE_CLOSURE)
    lead = [e for e in entries if e.rule_id == "yn.nf.blast_furnace_closure_2018"]
    assert [e.unit_id for e in lead] == [str(world.units["honghe_lead"])] and not lead[0].overdue
    assert lead[0].due == date(2018, 12, 31)
    overdue = [e for e in runs.elimination(session, ADMIN_P, AFTER_CLOSURE) if e.rule_id == "yn.nf.blast_furnace_closure_2018"]
    assert overdue[0].overdue
    rows = {(r.rule_id, tuple(sorted(r.group.items()))): r for r in runs.headroom(session, ADMIN_P, BEFORE_CLOSURE)}
    target = rows[("nm.al.smelting_capacity_2020", (("province", "150000"),))]
    assert target.total == 820000 and target.verdict == "pending" and target.headroom == target.limit - target.total
    counts = runs.noncompliance(session, ADMIN_P, BEFORE_CLOSURE)
    assert counts["province"]["150000"]["fail"] >= 1 and counts["process_type"]["al_soderberg_electrolysis"]["fail"] >= 1
    assert counts["prefecture"]["150200"]["pass"] >= 1 and "aluminium" in counts["metal"]


def test_admission_check_blocks_a_small_new_line_and_allows_a_large_one(session, world):
    proposal = {"province": "150000", "process_type": "al_prebake_electrolysis", "status": "planned",
                "params": {"cell_current": "300"}, "declarations": {"capital_ratio": "45", "current_efficiency": "94",
                                                                     "al_liquid_ac_power": "12500", "al_ingot_ac_power": "13000"}}
    blocked = runs.admission_view(runs.admission(session, ADMIN_P, proposal, date(2018, 1, 1)), ADMIN_P)
    assert blocked["decision"] == "blocked"
    blocking = [f for f in blocked["findings"] if f["effect"] == "blocks"]
    assert [f["rule_id"] for f in blocking] == ["nm.al.new_cell_current"] and blocking[0]["citation"]["quote"]
    proposal["params"] = {"cell_current": "500"}
    allowed = runs.admission_view(runs.admission(session, ADMIN_P, proposal, date(2018, 1, 1)), ADMIN_P)
    assert allowed["decision"] == "allowed"
    with pytest.raises(InvalidInput) as bad:
        runs.admission(session, ADMIN_P, {"province": "150000", "status": "planned", "params": {"cell_current": 1.5}}, date(2018, 1, 1))
    assert bad.value.code == "inexact_number"


def test_scope_enterprise_sees_only_its_units_and_regulator_its_division(session, world):
    run = runs.create_run(session, ADMIN_P, BEFORE_CLOSURE)
    enterprise = Principal(90, "good_ent", ENTERPRISE, enterprise_id=world.enterprises["baotou_good"])
    own = runs.run_verdicts(session, enterprise, run["id"])
    assert own and {v["unit_id"] for v in own} == {world.units["baotou_good"]}
    assert sum(runs.get_run(session, enterprise, run["id"])["counts"].values()) == len(own)
    kunming = Principal(91, "km_reg", REGULATOR, division_code="530100")
    seen = runs.run_verdicts(session, kunming, run["id"])
    assert {v["unit_id"] for v in seen if v["unit_id"]} == {world.units["kunming_al"]}
    # the provincial totals bind Kunming too; Inner Mongolia's do not concern it
    assert {v["province"] for v in seen if v["unit_id"] is None} == {"530000"}
    assert runs.elimination(session, kunming, BEFORE_CLOSURE) == []
    with pytest.raises(NotFound):
        runs.unit_verdicts(session, kunming, world.units["baotou_old"], BEFORE_CLOSURE)
    with pytest.raises(Forbidden):
        runs.create_run(session, enterprise, BEFORE_CLOSURE)
    diff = runs.what_if(session, enterprise, BEFORE_CLOSURE, runs.parse_overrides(["nm.al.existing_cell_current.min_cell_current=100"]))
    assert diff.newly_passing == []  # the failing Söderberg line belongs to someone else


def test_unit_verdicts_for_the_unit_page(session, world):
    verdicts = runs.unit_verdicts(session, ADMIN_P, world.units["baotou_old"], BEFORE_CLOSURE)
    by_rule = {v["rule_id"]: v["verdict"] for v in verdicts}
    assert by_rule["nm.al.existing_cell_current"] == "fail" and by_rule["nm.al.existing_current_efficiency"] == "pass"
    assert runs.unit_verdicts(session, ADMIN_P, world.units["baotou_old"], date(2000, 1, 1)) == []
    with pytest.raises(NotFound):
        runs.unit_verdicts(session, ADMIN_P, 999999, BEFORE_CLOSURE)


def test_bad_paging_and_unknown_run(session, world):
    run = runs.create_run(session, ADMIN_P, BEFORE_CLOSURE)
    with pytest.raises(InvalidInput):
        runs.run_verdicts(session, ADMIN_P, run["id"], verdict="great")
    with pytest.raises(InvalidInput):
        runs.run_verdicts(session, ADMIN_P, run["id"], limit=0)
    with pytest.raises(NotFound) as missing:
        runs.get_run(session, ADMIN_P, 424242)
    assert "合规检查记录不存在" in missing.value.message_zh


def test_one_unit_read_alone_has_the_same_facts_as_in_the_whole_registry(session, world):
    from ingot.policy import adapter

    for day in (date(2000, 1, 1), BEFORE_CLOSURE, AFTER_CLOSURE):
        everything = {unit.unit_id: unit for unit in adapter.registry_units(session, day)}
        for unit_id in world.units.values():
            assert adapter.registry_unit(session, ADMIN_P, unit_id, day) == everything.get(str(unit_id))


def test_counts_in_scope_agree_with_the_verdicts_shown(session, world):
    run = runs.create_run(session, ADMIN_P, BEFORE_CLOSURE)
    for principal in (Principal(90, "good_ent", ENTERPRISE, enterprise_id=world.enterprises["baotou_old"]),
                      Principal(91, "km_reg", REGULATOR, division_code="530100"),
                      Principal(92, "nm_reg", REGULATOR, division_code="150000")):
        shown = Counter(v["verdict"] for v in runs.run_verdicts(session, principal, run["id"]))
        assert runs.get_run(session, principal, run["id"])["counts"] == dict(shown)
        (listed,) = [r for r in runs.list_runs(session, principal) if r["id"] == run["id"]]
        assert listed["counts"] == dict(shown)
    assert runs.get_run(session, ADMIN_P, run["id"])["counts"] == run["counts"]


def test_stored_verdicts_read_back_exactly_as_the_engine_gave_them(session, world):
    live = runs.evaluate_registry(session, AFTER_CLOSURE)
    run = runs.create_run(session, ADMIN_P, AFTER_CLOSURE)
    stored = {(v["rule_id"], v["subject"]): v for v in runs.run_verdicts(session, ADMIN_P, run["id"], limit=runs.MAX_VERDICT_PAGE)}
    assert len(stored) == len(live.verdicts)
    for verdict in live.verdicts:
        expected = runs.verdict_view(verdict, live.units)
        got = stored[verdict.key]
        for field in ("verdict", "check_type", "reason", "measured", "thresholds", "units", "matched", "missing", "due", "headroom", "citation"):
            assert got[field] == expected[field], (verdict.key, field)
        assert (got["unit_id"] is None) == (verdict.unit_id is None)
