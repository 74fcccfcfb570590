"""Runs every YAML case beside the catalogue: inputs, as-of date, expected verdict of the rule."""
from __future__ import annotations

from datetime import date

import pytest

from ingot.policy.catalogue import load_catalogue
from ingot.policy.coverage import load_cases
from ingot.policy.engine import combine, evaluate
from ingot.policy.facts import facts_from_mapping

CATALOGUE = load_catalogue()
CASES = load_cases()


def _case_id(item: tuple[str, dict]) -> str:
    file_name, case = item
    return f"{file_name[:3]}:{case['rule']}@{case['as_of']}->{case['expect']}"


def units_of(case: dict) -> list:
    if "unit" in case:
        return [facts_from_mapping(case["unit"], "u0")]
    return [facts_from_mapping(raw, f"u{index}") for index, raw in enumerate(case["units"])]


@pytest.mark.parametrize("item", CASES, ids=[_case_id(item) for item in CASES])
def test_case(item):
    _, case = item
    provision = CATALOGUE.provision(case["rule"])
    assert provision.checkable, f"{case['rule']} is not checkable; cases are for checkable rules"
    as_of = case["as_of"] if isinstance(case["as_of"], date) else date.fromisoformat(case["as_of"])
    result = evaluate(CATALOGUE, units_of(case), as_of)
    verdicts = result.for_rule(case["rule"])
    observed = combine(v.verdict for v in verdicts)
    detail = [v.as_dict() for v in verdicts]
    assert observed == case["expect"], f"expected {case['expect']}, got {observed}: {detail}"


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


def test_every_case_names_a_catalogued_rule():
    unknown = sorted({case["rule"] for _, case in CASES} - set(CATALOGUE.by_id))
    assert not unknown, f"cases refer to rules not in the catalogue: {unknown}"
