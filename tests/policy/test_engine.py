"""The engine on small hand-made catalogues: every check type, its boundaries and dates, missing data, views."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingot.policy.catalogue import parse_override
from ingot.policy.engine import (
    Engine,
    admission_check,
    cap_headroom,
    combine,
    diff_results,
    elimination_list,
    evaluate,
    noncompliance_counts,
    what_if,
)
from ingot.policy.facts import UnitFacts

from .helpers import catalogue_of, param, provision

AL = "al_prebake_electrolysis"
D = Decimal


def unit(unit_id="u1", province="150000", process_type=AL, status="operating", commissioned_on=date(2018, 1, 1), **kw):
    metal = kw.pop("metal", "aluminium")
    return UnitFacts(unit_id=unit_id, province=province, status=status, metal=metal, process_type=process_type,
                     commissioned_on=commissioned_on, **kw)


def only(result, rule_id):
    verdicts = result.for_rule(rule_id)
    assert len(verdicts) == 1, [v.as_dict() for v in verdicts]
    return verdicts[0]


@pytest.fixture
def threshold_catalogue(tmp_path):
    return catalogue_of(tmp_path, [
        provision("t.al.min_current", check={"type": "threshold", "measure": "param.cell_current", "op": ">=", "parameter": "floor"},
                  parameters={"floor": param("kA", ("2017-01-01", "300"), ("2020-01-01", "400"))},
                  scope={"provinces": ["150000"], "process_types": [AL], "unit_age": "new"}),
        provision("t.al.max_power", check={"type": "threshold", "measure": "decl.al_liquid_ac_power", "op": "<", "parameter": "ceiling"},
                  parameters={"ceiling": param("kWh/t", ("2017-01-01", "13000"))},
                  scope={"provinces": ["150000"], "metals": ["aluminium"], "enterprise_size": "above_designated"}),
        provision("t.al.in_park", check={"type": "threshold", "measure": "site.in_park", "op": ">=", "parameter": "flag"},
                  parameters={"flag": param("count", ("2017-01-01", "1"))},
                  scope={"provinces": ["150000"], "process_types": [AL]}),
    ])


@pytest.mark.parametrize("current, expected", [("299.99", "fail"), ("300", "pass"), ("300.01", "pass")])
def test_threshold_boundaries_inclusive(threshold_catalogue, current, expected):
    result = evaluate(threshold_catalogue, [unit(params={"cell_current": D(current)})], date(2018, 6, 30))
    verdict = only(result, "t.al.min_current")
    assert verdict.verdict == expected
    assert verdict.measured == {"param.cell_current": D(current)}
    assert verdict.thresholds == {"floor": D("300")} and verdict.units == {"floor": "kA"}
    assert "province=150000" in verdict.matched and any(m.startswith("unit_age=new") for m in verdict.matched)
    assert verdict.citation.seed == "900_test.txt"


@pytest.mark.parametrize("power, expected", [("12999", "pass"), ("13000", "fail")])
def test_threshold_strict_less_than(threshold_catalogue, power, expected):
    facts = unit(above_designated=True, declarations={"al_liquid_ac_power": D(power)})
    assert only(evaluate(threshold_catalogue, [facts], date(2018, 1, 1)), "t.al.max_power").verdict == expected


def test_parameter_values_follow_the_evaluation_date(threshold_catalogue):
    facts = unit(params={"cell_current": D("350")})
    assert only(evaluate(threshold_catalogue, [facts], date(2019, 12, 31)), "t.al.min_current").verdict == "pass"
    assert only(evaluate(threshold_catalogue, [facts], date(2020, 1, 1)), "t.al.min_current").verdict == "fail"
    before = only(evaluate(threshold_catalogue, [facts], date(2016, 12, 31)), "t.al.min_current")
    assert (before.verdict, before.reason) == ("not_applicable", "not_yet_in_force")
    assert before.excluded == {"dimension": "effective_from", "unit": "2016-12-31", "scope": "2017-01-01"}
    assert before.measured == {} and before.due is None


def test_missing_fact_is_missing_data(threshold_catalogue):
    verdict = only(evaluate(threshold_catalogue, [unit()], date(2018, 1, 1)), "t.al.min_current")
    assert verdict.verdict == "missing_data" and verdict.missing == ("param.cell_current",)


def test_scope_keys_filter_and_unknown_scope_facts_are_missing_data(threshold_catalogue):
    as_of = date(2018, 1, 1)
    elsewhere = unit("elsewhere", province="530000", params={"cell_current": D("1")})
    existing = unit("existing", commissioned_on=date(2016, 12, 31), params={"cell_current": D("1")})
    closed = unit("closed", status="closed", params={"cell_current": D("1")})
    excluded = {v.unit_id: v for v in evaluate(threshold_catalogue, [elsewhere, existing, closed], as_of).for_rule("t.al.min_current")}
    # Each unit is told which scope condition keeps the rule from it, with its own value and the rule's.
    assert {v.unit_id: (v.verdict, v.reason) for v in [excluded["elsewhere"], excluded["existing"], excluded["closed"]]} == {
        "elsewhere": ("not_applicable", "outside_province"), "existing": ("not_applicable", "other_unit_age"),
        "closed": ("not_applicable", "status_not_covered")}
    assert excluded["elsewhere"].excluded == {"dimension": "province", "unit": "530000", "scope": "150000"}
    assert excluded["elsewhere"].matched == (f"process_type={AL}",)
    assert excluded["existing"].excluded == {"dimension": "unit_age", "unit": "existing", "scope": "new",
                                             "unit_date": "2016-12-31", "divides_on": "2017-01-01"}
    assert excluded["existing"].matched == ("province=150000", f"process_type={AL}")
    assert excluded["closed"].excluded == {"dimension": "status", "unit": "closed",
                                           "scope": "idle,operating,planned,under_construction"}
    undated = unit(commissioned_on=None, params={"cell_current": D("500")})
    assert only(evaluate(threshold_catalogue, [undated], as_of), "t.al.min_current").verdict == "missing_data"
    planned = unit(status="planned", commissioned_on=None, params={"cell_current": D("500")})
    assert only(evaluate(threshold_catalogue, [planned], as_of), "t.al.min_current").verdict == "pass"
    size_unknown = unit(declarations={"al_liquid_ac_power": D("1")})
    assert only(evaluate(threshold_catalogue, [size_unknown], as_of), "t.al.max_power").missing == ("above_designated",)
    small = unit(above_designated=False, declarations={"al_liquid_ac_power": D("99999")})
    verdict = only(evaluate(threshold_catalogue, [small], as_of), "t.al.max_power")
    assert (verdict.verdict, verdict.reason) == ("not_applicable", "below_enterprise_size")
    assert verdict.excluded == {"dimension": "above_designated", "unit": "false", "scope": "true"}


def test_site_flag_as_fact(threshold_catalogue):
    as_of = date(2018, 1, 1)
    assert only(evaluate(threshold_catalogue, [unit(in_park=True)], as_of), "t.al.in_park").verdict == "pass"
    assert only(evaluate(threshold_catalogue, [unit(in_park=False)], as_of), "t.al.in_park").verdict == "fail"
    assert only(evaluate(threshold_catalogue, [unit()], as_of), "t.al.in_park").verdict == "missing_data"


@given(
    limit=st.decimals(min_value=-10**6, max_value=10**6, allow_nan=False, places=2),
    op=st.sampled_from([">=", ">", "<=", "<"]),
    has_value=st.booleans(),
    value=st.decimals(min_value=-10**6, max_value=10**6, allow_nan=False, places=2),
)
@settings(max_examples=60, deadline=None)
def test_missing_data_is_never_pass_or_fail(tmp_path_factory, limit, op, has_value, value):
    catalogue = catalogue_of(tmp_path_factory.mktemp("c"), [provision(
        "t.x.rule", check={"type": "threshold", "measure": "decl.current_efficiency", "op": op, "parameter": "p"},
        parameters={"p": param("percent", ("2017-01-01", str(limit)))})])
    facts = unit(declarations={"current_efficiency": value} if has_value else {})
    verdict = only(evaluate(catalogue, [facts], date(2018, 1, 1)), "t.x.rule").verdict
    if has_value:
        assert verdict in ("pass", "fail")
    else:
        assert verdict == "missing_data"


@pytest.fixture
def dated_catalogue(tmp_path):
    return catalogue_of(tmp_path, [
        provision("t.pb.close", check={"type": "deadline", "parameter": "by", "alternative": ["pb_oxygen_bath"]},
                  parameters={"by": param("date", ("2017-01-01", "2018-12-31"))},
                  scope={"provinces": ["150000"], "metals": ["lead"]}, kind="elimination_deadline"),
        provision("t.al.upgrade", check={"type": "threshold", "measure": "param.cell_current", "op": ">=", "parameter": "floor",
                                         "deadline": "by"},
                  parameters={"floor": param("kA", ("2017-01-01", "200")), "by": param("date", ("2017-01-01", "2017-12-31"))},
                  scope={"provinces": ["150000"], "process_types": [AL]}),
    ])


@pytest.mark.parametrize("as_of, status, expected, reason", [
    (date(2018, 12, 31), "operating", "pass", "due_by_deadline"),
    (date(2019, 1, 1), "operating", "fail", "past_deadline"),
    (date(2019, 1, 1), "idle", "fail", "past_deadline"),
    (date(2019, 1, 1), "closed", "pass", "closed"),
    (date(2019, 1, 1), "eliminated", "pass", "closed"),
])
def test_deadline_either_side(dated_catalogue, as_of, status, expected, reason):
    lead = unit(process_type="pb_blast_furnace", metal="lead", status=status)
    verdict = only(evaluate(dated_catalogue, [lead], as_of), "t.pb.close")
    assert (verdict.verdict, verdict.reason, verdict.due) == (expected, reason, date(2018, 12, 31))


def test_deadline_alternative_process_counts_as_converted(dated_catalogue):
    converted = unit(process_type="pb_oxygen_bath", metal="lead")
    verdict = only(evaluate(dated_catalogue, [converted], date(2019, 1, 1)), "t.pb.close")
    assert (verdict.verdict, verdict.reason) == ("pass", "converted")


def test_dated_threshold_is_pending_then_fails(dated_catalogue):
    small = unit(params={"cell_current": D("160")})
    assert only(evaluate(dated_catalogue, [small], date(2017, 12, 31)), "t.al.upgrade").verdict == "pending"
    assert only(evaluate(dated_catalogue, [small], date(2018, 1, 1)), "t.al.upgrade").verdict == "fail"
    big = unit(params={"cell_current": D("200")})
    assert only(evaluate(dated_catalogue, [big], date(2017, 6, 1)), "t.al.upgrade").verdict == "pass"


def test_elimination_list_lists_units_still_standing(dated_catalogue):
    units = [
        unit("lead-1", process_type="pb_blast_furnace", metal="lead", capacities={"refined_lead": D("50000")}),
        unit("lead-2", process_type="pb_blast_furnace", metal="lead", status="closed"),
        unit("al-1", params={"cell_current": D("160")}),
        unit("al-2", params={"cell_current": D("300")}),
    ]
    before = elimination_list(evaluate(dated_catalogue, units, date(2017, 6, 30)))
    assert [(entry.unit_id, entry.due, entry.overdue) for entry in before] == [
        ("al-1", date(2017, 12, 31), False), ("lead-1", date(2018, 12, 31), False)]
    after = elimination_list(evaluate(dated_catalogue, units, date(2019, 1, 1)))
    assert [(entry.unit_id, entry.overdue) for entry in after] == [("al-1", True), ("lead-1", True)]
    assert after[1].capacities == {"refined_lead": D("50000")}


@pytest.fixture
def aggregate_catalogue(tmp_path):
    return catalogue_of(tmp_path, [
        provision("t.al.cap", check={"type": "cap", "measure": "capacity.primary_aluminium", "group_by": ["province"],
                                     "op": "<=", "parameter": "cap"},
                  parameters={"cap": param("t/a", ("2017-01-01", "1000"))},
                  scope={"provinces": ["150000", "530000"], "metals": ["aluminium"]}, kind="capacity_cap"),
        provision("t.al.target", check={"type": "plan_target", "measure": "capacity.primary_aluminium", "group_by": ["province"],
                                        "op": ">=", "parameter": "target", "deadline": "by", "statuses": ["operating", "idle"]},
                  parameters={"target": param("t/a", ("2017-01-01", "500")), "by": param("date", ("2017-01-01", "2020-12-31"))},
                  scope={"provinces": ["150000"], "metals": ["aluminium"]}, kind="plan_target"),
        provision("t.al.share", check={"type": "share", "numerator": "decl.metal_processed_locally", "denominator": "decl.metal_output",
                                       "numerator_scope": {"process_types": ["al_soderberg_electrolysis"]},
                                       "group_by": ["province"], "op": ">=", "parameter": "rate"},
                  parameters={"rate": param("percent", ("2017-01-01", "50"))},
                  scope={"provinces": ["150000"], "metals": ["aluminium"]}, kind="plan_target"),
    ])


def test_cap_counts_planned_and_building_but_not_idle(aggregate_catalogue):
    units = [
        unit("a", capacities={"primary_aluminium": D("600")}),
        unit("b", status="planned", commissioned_on=None, capacities={"primary_aluminium": D("400")}),
        unit("c", status="idle", capacities={"primary_aluminium": D("900")}),
    ]
    verdicts = {dict(v.group)["province"]: v for v in evaluate(aggregate_catalogue, units, date(2018, 1, 1)).for_rule("t.al.cap")}
    inner = verdicts["150000"]
    assert (inner.verdict, inner.measured["capacity.primary_aluminium"], inner.headroom) == ("pass", D("1000"), D("0"))
    assert set(inner.members) == {"a", "b"}
    # a province in scope with no units still gets its line, with the whole cap as headroom
    assert (verdicts["530000"].verdict, verdicts["530000"].headroom) == ("pass", D("1000"))
    one_more = units + [unit("d", status="under_construction", commissioned_on=None, capacities={"primary_aluminium": D("1")})]
    assert only_group(evaluate(aggregate_catalogue, one_more, date(2018, 1, 1)), "t.al.cap", "150000").verdict == "fail"
    rows = cap_headroom(evaluate(aggregate_catalogue, one_more, date(2018, 1, 1)))
    row = next(r for r in rows if r.rule_id == "t.al.cap" and r.group == {"province": "150000"})
    assert (row.total, row.limit, row.headroom, row.unit) == (D("1001"), D("1000"), D("-1"), "t/a")


def only_group(result, rule_id, province):
    return next(v for v in result.for_rule(rule_id) if dict(v.group)["province"] == province)


@pytest.mark.parametrize("as_of, total, expected", [
    (date(2020, 12, 31), "500", "pending"),
    (date(2021, 1, 1), "500", "pass"),
    (date(2021, 1, 1), "499", "fail"),
    (date(2019, 1, 1), "0", "pending"),
])
def test_plan_target_judged_only_after_its_date(aggregate_catalogue, as_of, total, expected):
    units = [unit(capacities={"primary_aluminium": D(total)})] if total != "0" else []
    verdict = only(evaluate(aggregate_catalogue, units, as_of), "t.al.target")
    assert verdict.verdict == expected and verdict.due == date(2020, 12, 31)


def test_share_with_numerator_scope(aggregate_catalogue):
    smelter = unit("s", declarations={"metal_output": D("100"), "metal_processed_locally": D("90")})
    soderberg = unit("d", process_type="al_soderberg_electrolysis", declarations={"metal_processed_locally": D("50")})
    verdict = only(evaluate(aggregate_catalogue, [smelter, soderberg], date(2018, 1, 1)), "t.al.share")
    # only the Söderberg unit's processing counts in the numerator: 50 / 100 = 50 %
    assert (verdict.verdict, verdict.measured["share"]) == ("pass", D("50"))
    soderberg_less = unit("d", process_type="al_soderberg_electrolysis", declarations={"metal_processed_locally": D("49.99")})
    assert only(evaluate(aggregate_catalogue, [smelter, soderberg_less], date(2018, 1, 1)), "t.al.share").verdict == "fail"
    assert only(evaluate(aggregate_catalogue, [smelter], date(2018, 1, 1)), "t.al.share").verdict == "missing_data"


def test_eligibility_all_conditions(tmp_path):
    catalogue = catalogue_of(tmp_path, [provision(
        "t.al.both", check={"type": "eligibility", "conditions": [
            {"measure": "decl.al_liquid_ac_power", "op": "<", "parameter": "liquid"},
            {"measure": "decl.current_efficiency", "op": ">=", "parameter": "efficiency"}]},
        parameters={"liquid": param("kWh/t", ("2017-01-01", "13000")), "efficiency": param("percent", ("2017-01-01", "92"))})])
    as_of = date(2018, 1, 1)

    def judge(**declared):
        return only(evaluate(catalogue, [unit(declarations={k: D(v) for k, v in declared.items()})], as_of), "t.al.both").verdict

    assert judge(al_liquid_ac_power="12999", current_efficiency="92") == "pass"
    assert judge(al_liquid_ac_power="13000", current_efficiency="95") == "fail"
    assert judge(al_liquid_ac_power="12000") == "missing_data"
    assert judge(al_liquid_ac_power="14000") == "fail"  # one condition already fails whatever the other says


def test_provision_validity_window(tmp_path):
    catalogue = catalogue_of(tmp_path, [provision(
        "t.al.window", check={"type": "threshold", "measure": "param.cell_current", "op": ">=", "parameter": "floor"},
        parameters={"floor": param("kA", ("2017-01-01", "200"))}, until="2020-12-31")])
    facts = unit(params={"cell_current": D("100")})
    assert only(evaluate(catalogue, [facts], date(2020, 12, 31)), "t.al.window").verdict == "fail"
    after = only(evaluate(catalogue, [facts], date(2021, 1, 1)), "t.al.window")
    assert (after.verdict, after.reason) == ("not_applicable", "no_longer_in_force")
    assert after.excluded == {"dimension": "effective_until", "unit": "2021-01-01", "scope": "2020-12-31"}


def test_overrides_and_what_if(threshold_catalogue):
    units = [
        unit("weak", params={"cell_current": D("350")}, capacities={"primary_aluminium": D("120000")}),
        unit("strong", params={"cell_current": D("420")}, capacities={"primary_aluminium": D("500000")}),
        unit("failing", params={"cell_current": D("250")}),
    ]
    as_of = date(2018, 1, 1)
    stricter = parse_override("t.al.min_current.floor=400", threshold_catalogue)
    scenario = evaluate(threshold_catalogue, units, as_of, [stricter])
    assert {v.unit_id: v.verdict for v in scenario.for_rule("t.al.min_current")} == {"weak": "fail", "strong": "pass", "failing": "fail"}
    assert scenario.overrides == (stricter,)
    diff = what_if(threshold_catalogue, units, as_of, [stricter])
    assert [(c.subject, c.before, c.after) for c in diff.newly_failing] == [("weak", "pass", "fail")]
    assert diff.newly_passing == []
    assert diff.capacity_affected == {"primary_aluminium": D("120000")}
    laxer = parse_override("t.al.min_current.floor=200", threshold_catalogue)
    relaxed = what_if(threshold_catalogue, units, as_of, [laxer])
    assert [(c.subject, c.before, c.after) for c in relaxed.newly_passing] == [("failing", "fail", "pass")]
    assert relaxed.capacity_relieved == {} and relaxed.capacity_affected == {}
    stored = scenario.as_dict()
    assert stored["overrides"] == ["t.al.min_current.floor=400"] and stored["catalogue_hash"] == threshold_catalogue.content_hash
    assert stored["counts"] == {"fail": 2, "pass": 1, "missing_data": 6}  # size and park flags unknown


def test_override_moves_a_deadline(dated_catalogue):
    lead = unit(process_type="pb_blast_furnace", metal="lead")
    later = parse_override("t.pb.close.by=2020-12-31", dated_catalogue)
    assert only(evaluate(dated_catalogue, [lead], date(2019, 6, 1)), "t.pb.close").verdict == "fail"
    assert only(evaluate(dated_catalogue, [lead], date(2019, 6, 1), [later]), "t.pb.close").verdict == "pass"


def test_admission_check(threshold_catalogue, aggregate_catalogue):
    proposal = UnitFacts(unit_id="new", province="150000", status="planned", process_type=AL,
                         params={"cell_current": D("420")}, capacities={"primary_aluminium": D("100")},
                         above_designated=True, in_park=True, declarations={"al_liquid_ac_power": D("12800")})
    report = admission_check(threshold_catalogue, proposal, date(2018, 1, 1))
    assert report.decision == "allowed"
    assert {f.rule_id: f.effect for f in report.findings} == {
        "t.al.min_current": "allows", "t.al.max_power": "allows", "t.al.in_park": "allows"}
    weak = UnitFacts(unit_id="new", province="150000", status="planned", process_type=AL, params={"cell_current": D("300")})
    report = admission_check(threshold_catalogue, weak, date(2020, 6, 1))
    assert report.decision == "blocked"
    blocking = [f for f in report.findings if f.effect == "blocks"]
    assert [f.rule_id for f in blocking] == ["t.al.min_current"] and blocking[0].verdict.thresholds == {"floor": D("400")}
    # a cap: fine alone, blocked once the existing capacity leaves no room
    existing = [unit("old", capacities={"primary_aluminium": D("950")})]
    report = admission_check(aggregate_catalogue, proposal, date(2018, 1, 1), existing)
    assert report.decision == "blocked" and [f.rule_id for f in report.findings if f.effect == "blocks"] == ["t.al.cap"]
    assert admission_check(aggregate_catalogue, proposal, date(2018, 1, 1)).decision == "allowed"
    # a proposal that adds nothing to the capped product is not judged by the cap
    alumina = UnitFacts(unit_id="new", province="150000", status="planned", metal="aluminium", capacities={"alumina": D("5000")})
    assert [f.rule_id for f in admission_check(aggregate_catalogue, alumina, date(2018, 1, 1), existing).findings] == []


def test_admission_check_lists_qualitative_provisions_to_review(tmp_path):
    catalogue = catalogue_of(tmp_path, [
        provision("t.al.replace", scope={"provinces": ["150000"], "metals": ["aluminium"], "unit_age": "new"}, kind="capacity_replacement"),
        provision("t.gen.principle", scope={}, kind="guidance"),
        provision("t.gen.province_wide", scope={"provinces": ["150000"]}, kind="guidance"),
        provision("t.cu.other_metal", scope={"provinces": ["150000"], "metals": ["copper"]}, kind="access_standard"),
        provision("t.al.existing_only", scope={"provinces": ["150000"], "unit_age": "existing"}),
    ])
    proposal = UnitFacts(unit_id="new", province="150000", status="planned", process_type=AL)
    report = admission_check(catalogue, proposal, date(2018, 1, 1))
    assert [(f.rule_id, f.effect) for f in report.findings] == [("t.al.replace", "to_review")]
    assert report.decision == "allowed"


def test_noncompliance_counts(threshold_catalogue):
    units = [
        unit("a", prefecture="150200", params={"cell_current": D("100")}),
        unit("b", prefecture="150200", params={"cell_current": D("500")}),
        unit("c", prefecture="150600"),
    ]
    counts = noncompliance_counts(evaluate(threshold_catalogue, units, date(2018, 1, 1)))
    assert counts["prefecture"]["150200"]["fail"] == 1
    assert counts["prefecture"]["150200"]["pass"] == 1
    assert counts["prefecture"]["150600"]["missing_data"] >= 1
    assert counts["metal"]["aluminium"]["fail"] >= 1
    assert counts["process_type"][AL]["fail"] == 1


def test_combine_orders_by_severity():
    assert combine([]) == "not_applicable"
    assert combine(["pass", "pending"]) == "pending"
    assert combine(["pass", "missing_data", "pending"]) == "missing_data"
    assert combine(["missing_data", "fail"]) == "fail"


def test_engine_reuses_its_rule_index(threshold_catalogue):
    engine = Engine(threshold_catalogue, date(2018, 1, 1))
    engine.evaluate([unit(f"u{i}", params={"cell_current": D("400")}) for i in range(50)])
    assert list(engine._index) == [("150000", "aluminium", AL)]


def test_verdict_serialises_for_storage(threshold_catalogue):
    verdict = only(evaluate(threshold_catalogue, [unit(params={"cell_current": D("350")})], date(2018, 1, 1)), "t.al.min_current")
    data = verdict.as_dict()
    assert data["measured"] == {"param.cell_current": "350"} and data["thresholds"] == {"floor": "300"}
    assert data["citation"]["quote"] == "测试"


def test_rule_without_a_value_yet_does_not_apply_even_when_scope_is_undecided(tmp_path):
    catalogue = catalogue_of(tmp_path, [provision(
        "t.al.later", check={"type": "threshold", "measure": "param.cell_current", "op": ">=", "parameter": "floor"},
        parameters={"floor": param("kA", ("2019-01-01", "200"))},
        scope={"provinces": ["150000"], "unit_age": "new"})])
    undated = unit(commissioned_on=None)
    early = only(evaluate(catalogue, [undated], date(2018, 6, 1)), "t.al.later")
    assert (early.verdict, early.reason) == ("not_applicable", "not_yet_in_force")
    assert early.excluded == {"dimension": "parameter_from", "unit": "2018-06-01", "scope": "2019-01-01", "parameter": "floor"}
    assert only(evaluate(catalogue, [undated], date(2019, 6, 1)), "t.al.later").verdict == "missing_data"


@given(extra=st.lists(st.integers(min_value=0, max_value=600), max_size=5), base=st.integers(min_value=0, max_value=1200))
@settings(max_examples=40, deadline=None)
def test_more_capacity_never_turns_a_cap_breach_into_compliance(tmp_path_factory, extra, base):
    catalogue = catalogue_of(tmp_path_factory.mktemp("cap"), [provision(
        "t.al.cap", check={"type": "cap", "measure": "capacity.primary_aluminium", "op": "<=", "parameter": "cap"},
        parameters={"cap": param("t/a", ("2017-01-01", "1000"))}, kind="capacity_cap")])
    as_of = date(2018, 1, 1)
    units = [unit("base", capacities={"primary_aluminium": D(base)})]
    before = evaluate(catalogue, units, as_of)
    grown = units + [unit(f"x{i}", capacities={"primary_aluminium": D(amount)}) for i, amount in enumerate(extra)]
    after = evaluate(catalogue, grown, as_of)
    if only(before, "t.al.cap").verdict == "fail":
        assert only(after, "t.al.cap").verdict == "fail"
    assert only(after, "t.al.cap").headroom == D(1000 - base - sum(extra))
    assert all(change.after == "fail" for change in diff_results(before, after).other_changes + diff_results(before, after).newly_failing)


def test_result_lookups_by_rule_and_unit(threshold_catalogue):
    units = [unit("a", params={"cell_current": D("350")}), unit("b", province="530000")]
    result = evaluate(threshold_catalogue, units, date(2018, 1, 1))
    assert {v.rule_id for v in result.for_unit("a")} == {"t.al.min_current", "t.al.max_power", "t.al.in_park"}
    assert {v.rule_id: v.reason for v in result.for_unit("b")} == {
        "t.al.min_current": "outside_province", "t.al.max_power": "outside_province", "t.al.in_park": "outside_province"}
    assert result.for_rule("t.none") == []
    assert [v.unit_id for v in result.for_rule("t.al.min_current")] == ["a", "b"]


# -- not applicable: which scope condition kept the rule from the unit -----------------------------------------


def test_park_scope_excludes_units_outside_parks(tmp_path):
    catalogue = catalogue_of(tmp_path, [provision(
        "t.al.park_power", check={"type": "threshold", "measure": "decl.al_liquid_ac_power", "op": "<", "parameter": "ceiling"},
        parameters={"ceiling": param("kWh/t", ("2017-01-01", "13000"))},
        scope={"provinces": ["150000"], "process_types": [AL], "park_required": True})])
    outside = only(evaluate(catalogue, [unit(in_park=False, declarations={"al_liquid_ac_power": D("20000")})], date(2018, 1, 1)),
                   "t.al.park_power")
    assert (outside.verdict, outside.reason) == ("not_applicable", "outside_park")
    assert outside.excluded == {"dimension": "in_park", "unit": "false", "scope": "true"}
    inside = only(evaluate(catalogue, [unit(in_park=True, declarations={"al_liquid_ac_power": D("20000")})], date(2018, 1, 1)),
                  "t.al.park_power")
    assert inside.verdict == "fail" and "in_park=true" in inside.matched


def test_rules_about_other_activities_give_no_verdict(threshold_catalogue):
    """Bounded: a copper smelter meets none of the aluminium rules, not even as not_applicable."""
    copper = unit("cu", process_type="cu_flash_smelting", metal="copper")
    assert evaluate(threshold_catalogue, [copper], date(2018, 1, 1)).verdicts == []


def test_aggregate_out_of_force_is_not_applicable_per_group_and_has_no_headroom(aggregate_catalogue):
    units = [unit("a", capacities={"primary_aluminium": D("600")})]
    result = evaluate(aggregate_catalogue, units, date(2016, 12, 31))
    caps = result.for_rule("t.al.cap")
    assert {(dict(v.group)["province"], v.verdict, v.reason) for v in caps} == {
        ("150000", "not_applicable", "not_yet_in_force"), ("530000", "not_applicable", "not_yet_in_force")}
    assert caps[0].excluded == {"dimension": "effective_from", "unit": "2016-12-31", "scope": "2017-01-01"}
    assert cap_headroom(result) == [] and elimination_list(result) == []
    # the cap, the target and the share each give Inner Mongolia's group one not_applicable line
    assert noncompliance_counts(result)["province"]["150000"] == {"not_applicable": 3}


def test_comparisons_keep_not_applicable_apart_from_changes(threshold_catalogue):
    units = [unit("elsewhere", province="530000"), unit("weak", params={"cell_current": D("350")})]
    as_of = date(2018, 1, 1)
    stricter = parse_override("t.al.min_current.floor=400", threshold_catalogue)
    diff = what_if(threshold_catalogue, units, as_of, [stricter])
    # the unit of another province is not_applicable in both runs: no change; the weak one newly fails
    assert [(c.subject, c.before, c.after) for c in diff.newly_failing] == [("weak", "pass", "fail")]
    assert all(change.before != change.after for change in diff.other_changes)
    assert not [c for c in diff.other_changes if c.subject == "elsewhere"]
    # a rule that comes into force between two runs: not_applicable before, a verdict after
    before, after = evaluate(threshold_catalogue, units, date(2016, 6, 1)), evaluate(threshold_catalogue, units, as_of)
    changes = diff_results(before, after)
    assert ("weak", "not_applicable", "pass") in [(c.subject, c.before, c.after) for c in changes.newly_passing
                                                  if c.rule_id == "t.al.min_current"]


def test_admission_lists_rules_that_do_not_bind_the_proposal(threshold_catalogue):
    elsewhere = UnitFacts(unit_id="new", province="530000", status="planned", process_type=AL, params={"cell_current": D("100")})
    report = admission_check(threshold_catalogue, elsewhere, date(2018, 1, 1))
    assert report.decision == "allowed"
    assert {(f.rule_id, f.effect, f.verdict.reason) for f in report.findings} == {
        ("t.al.min_current", "does_not_apply", "outside_province"), ("t.al.max_power", "does_not_apply", "outside_province"),
        ("t.al.in_park", "does_not_apply", "outside_province")}
