"""The compliance engine on the registry engineer's demo region: a realistic mix, reproducible runs, a what-if."""
from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from ingot.core.auth import SYSTEM
from ingot.policy import runs
from ingot.policy.engine import OPS
from ingot.registry.service import today

demo = pytest.importorskip("ingot.registry.demo", reason="the registry's demo generator (ingot.registry.demo) is not in this build yet")


@pytest.fixture
def demo_session(session):
    demo.load_demo(session)
    session.flush()
    return session


def test_demo_registry_gives_a_realistic_mix(demo_session):
    result = runs.evaluate_registry(demo_session, today())
    per_unit = Counter(verdict.verdict for verdict in result.verdicts if verdict.unit_id is not None)
    assert len(result.units) >= 20
    assert per_unit["pass"] > per_unit["fail"] + per_unit["missing_data"] + per_unit["pending"], per_unit
    assert per_unit["fail"] + per_unit["pending"] > 0, per_unit
    assert per_unit["missing_data"] > 0, per_unit
    assert runs.elimination_list(result) or per_unit["fail"], "neither a deadline nor a failing unit in the demo"


def test_demo_runs_are_reproducible(demo_session):
    first = runs.create_run(demo_session, SYSTEM, today())
    second = runs.create_run(demo_session, SYSTEM, today())
    assert first["catalogue_hash"] == second["catalogue_hash"] and first["counts"] == second["counts"]
    comparison = runs.compare_runs(demo_session, SYSTEM, first["id"], second["id"])
    assert comparison["newly_failing"] == comparison["newly_passing"] == comparison["other_changes"] == []
    assert runs.reproduce_run(demo_session, SYSTEM, first["id"])["identical"]


def test_a_stricter_threshold_makes_demo_units_newly_fail(demo_session):
    day = today()
    result = runs.evaluate_registry(demo_session, day)
    # Pick a threshold rule the demo passes, and move its limit just beyond the best passing value.
    passing = [v for v in result.verdicts if v.check_type == "threshold" and v.verdict == "pass" and v.unit_id is not None]
    assert passing, "the demo passes no threshold rule"
    chosen = passing[0]
    (parameter, _limit), = chosen.thresholds.items()
    provision = runs.catalogue().by_id[chosen.rule_id]
    op = provision.check.op
    values = [next(iter(v.measured.values())) for v in passing if v.rule_id == chosen.rule_id]
    stricter = max(values) + 1 if op in (">=", ">") else min(values) - 1
    assert not OPS[op](max(values) if op in (">=", ">") else min(values), stricter)
    override = runs.parse_overrides([f"{chosen.rule_id}.{parameter}={stricter}"])
    diff = runs.what_if(demo_session, SYSTEM, day, override)
    newly = {change.subject for change in diff.newly_failing if change.rule_id == chosen.rule_id}
    assert newly == {v.unit_id for v in passing if v.rule_id == chosen.rule_id}
    assert sum(diff.capacity_affected.values(), Decimal(0)) >= 0
