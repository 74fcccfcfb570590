"""Runs every YAML case beside the catalogue: inputs, as-of date, expected verdict of the rule.

A ``not_applicable`` case names its ``reason``, and the runner checks the verdicts the engine actually gave: each one
is ``not_applicable`` with that reason (and, where the case gives ``excluded``, that dimension and those values).
The one exception is ``reason: not_considered``: the rule names other metals or processes (or, for a cap, target or
share, no unit falls in its scope), so the engine gives no verdict at all — the runner checks that the inputs really
are outside that scope, so an empty answer cannot pass for the wrong reason.
"""
from __future__ import annotations

from datetime import date

import pytest

from ingot.policy.catalogue import AGGREGATE_CHECKS, load_catalogue
from ingot.policy.coverage import load_cases
from ingot.policy.engine import EXCLUSION_REASONS, NOT_APPLICABLE, Engine, combine, evaluate
from ingot.policy.facts import facts_from_mapping

CATALOGUE = load_catalogue()
CASES = load_cases()
NOT_CONSIDERED = "not_considered"


def _case_id(item: tuple[str, dict]) -> str:
    file_name, case = item
    reason = f":{case['reason']}" if "reason" in case else ""
    return f"{file_name[:3]}:{case['rule']}@{case['as_of']}->{case['expect']}{reason}"


def units_of(case: dict) -> list:
    if "unit" in case:
        return [facts_from_mapping(case["unit"], "u0")]
    return [facts_from_mapping(raw, f"u{index}") for index, raw in enumerate(case["units"])]


def _outside_scope(provision, units, engine: Engine) -> list[str]:
    """Units the rule's scope would take in (so an absent verdict would be wrong for this case)."""
    scope = provision.scope
    inside = []
    for unit in units:
        metal = engine.metal_of(unit)
        covers_activity = (scope.metals is None or metal in scope.metals) and (
            scope.process_types is None or unit.process_type in scope.process_types)
        in_province = scope.provinces is None or unit.province in scope.provinces
        if provision.check.type in AGGREGATE_CHECKS:
            if covers_activity and in_province:
                inside.append(unit.unit_id)
        elif covers_activity:
            inside.append(unit.unit_id)
    return inside


@pytest.mark.parametrize("item", CASES, ids=[_case_id(item) for item in CASES])
def test_case(item):
    _, case = item
    provision = CATALOGUE.provision(case["rule"])
    assert provision.checkable, f"{case['rule']} is not checkable; cases are for checkable rules"
    as_of = case["as_of"] if isinstance(case["as_of"], date) else date.fromisoformat(case["as_of"])
    units = units_of(case)
    result = evaluate(CATALOGUE, units, as_of)
    verdicts = result.for_rule(case["rule"])
    detail = [v.as_dict() for v in verdicts]
    if case["expect"] != NOT_APPLICABLE:
        assert "reason" not in case, "only not_applicable cases name a reason"
        assert combine(v.verdict for v in verdicts) == case["expect"], f"expected {case['expect']}: {detail}"
        return
    reason = case.get("reason")
    assert reason in (*EXCLUSION_REASONS.values(), NOT_CONSIDERED), f"a not_applicable case must name its reason, got {reason!r}"
    if reason == NOT_CONSIDERED:
        assert verdicts == [], f"expected no verdict at all: {detail}"
        inside = _outside_scope(provision, units, Engine(CATALOGUE, as_of))
        assert not inside, f"units {inside} are within the rule's scope, so 'not considered' is not why it gives nothing"
        return
    assert verdicts, "expected a not_applicable verdict saying why, got no verdict at all"
    assert {(v.verdict, v.reason) for v in verdicts} == {(NOT_APPLICABLE, reason)}, detail
    for verdict in verdicts:
        assert verdict.excluded and EXCLUSION_REASONS[verdict.excluded["dimension"]] == reason
        assert verdict.measured == {} and verdict.due is None, "a rule that does not apply measures nothing"
        for key, value in (case.get("excluded") or {}).items():
            assert verdict.excluded.get(key) == str(value), f"excluded.{key}: {verdict.excluded}"


def test_every_checkable_rule_has_pass_and_fail_cases():
    expectations: dict[str, set[str]] = {}
    for _, case in CASES:
        expectations.setdefault(case["rule"], set()).add(case["expect"])
    lacking = []
    for provision in CATALOGUE.checkable():
        seen = expectations.get(provision.id, set())
        if not {"pass", "fail"} <= seen:
            lacking.append(f"{provision.id} (has: {sorted(seen) or 'no case'})")
    assert not lacking, "checkable rules without both a pass and a fail case:\n" + "\n".join(lacking)


def test_every_exclusion_the_catalogue_can_give_has_a_case():
    """Each reason for not_applicable that the catalogue's scopes and dates make possible is shown by a case."""
    checkable = CATALOGUE.checkable()
    per_unit = [p for p in checkable if p.check.type not in AGGREGATE_CHECKS]
    possible = {"not_yet_in_force", NOT_CONSIDERED}
    if any(p.scope.provinces is not None and (p.scope.metals or p.scope.process_types) for p in per_unit):
        possible.add("outside_province")
    if any(p.effective.until is not None for p in checkable):
        possible.add("no_longer_in_force")
    if per_unit:
        possible.add("status_not_covered")
    if any(p.scope.unit_age != "any" for p in per_unit):
        possible.add("other_unit_age")
    if any(p.scope.enterprise_size == "above_designated" for p in per_unit):
        possible.add("below_enterprise_size")
    if any(p.scope.park_required for p in per_unit):
        possible.add("outside_park")
    shown = {case.get("reason") for _, case in CASES if case["expect"] == NOT_APPLICABLE}
    assert possible <= shown, f"no case shows: {sorted(possible - shown)}"
    # per-unit and aggregate rules alike show why they do not apply before they take effect
    early = {CATALOGUE.by_id[case["rule"]].check.type in AGGREGATE_CHECKS
             for _, case in CASES if case.get("reason") == "not_yet_in_force"}
    assert early == {True, False}


def test_every_case_names_a_catalogued_rule():
    unknown = sorted({case["rule"] for _, case in CASES} - set(CATALOGUE.by_id))
    assert not unknown, f"cases refer to rules not in the catalogue: {unknown}"
