"""Registry → engine: the units the compliance engine judges, and who may see which verdict.

The engine itself is pure; this module is the only place where policy reads the registry, and it does so through the
registry's own service (``unit_facts_as_of``), never its tables.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal

from sqlalchemy.orm import Session

from ingot.core.auth import ENTERPRISE, REGULATOR, SYSTEM, Principal, division_prefix
from ingot.core.errors import InvalidInput
from ingot.policy.facts import UnitFacts, facts_from_mapping
from ingot.registry import service as registry


def registry_units(session: Session, on: date, principal: Principal = SYSTEM) -> list[UnitFacts]:
    """Every unit the principal may see that has a status on ``on``, with its facts in force that day."""
    return list(registry.unit_facts_as_of(session, on, principal))


def registry_unit(session: Session, principal: Principal, unit_id, on: date) -> UnitFacts | None:
    """One unit's facts on ``on``, read for that unit alone; NotFound when it does not exist or is out of scope.

    None means the unit exists but had no status yet on that date (it was not registered as existing then).
    The facts are the same as ``registry_units`` gives for the unit (a test holds the two together).
    """
    detail = registry.get_unit_detail(session, principal, unit_id, on)
    if detail.get("status") is None:
        return None
    # The unit is visible, so its enterprise's size and park flags may be read on the system's behalf.
    enterprise = registry.get_record(session, SYSTEM, "enterprise", detail["enterprise_id"])
    division = detail["division_code"]

    def amounts(key: str) -> dict[str, Decimal]:
        return {code: Decimal(value) for code, value in (detail.get(key) or {}).items() if value is not None}

    return UnitFacts(
        unit_id=str(detail["id"]), province=division[:2] + "0000", prefecture=division[:4] + "00", status=detail["status"],
        metal=detail.get("metal"), process_type=detail["process_type"], enterprise_id=str(detail["enterprise_id"]),
        enterprise_name=detail["enterprise_name"], unit_name=detail["name"],
        commissioned_on=date.fromisoformat(detail["commissioned_on"]) if detail.get("commissioned_on") else None,
        approved_on=date.fromisoformat(detail["approved_on"]) if detail.get("approved_on") else None,
        above_designated=bool(enterprise["above_designated"]), in_park=enterprise.get("park_id") is not None,
        params=amounts("params"), capacities=amounts("capacities"), declarations=amounts("declarations"),
    )


def proposed_unit(raw: Mapping) -> UnitFacts:
    """A unit that does not exist yet (admission check), from plain data; the engine's own validation applies."""
    if not isinstance(raw, Mapping):
        raise InvalidInput("拟建项目须为键值对象", "the proposed unit must be an object of fields", field="unit", code="not_an_object")
    values = dict(raw)
    values.setdefault("unit_id", "proposed")
    values.setdefault("status", "planned")
    return facts_from_mapping(values, default_id="proposed")


# ---------------------------------------------------------------------------------------------------------------
# Scope: runs are evaluated over the whole registry (caps and shares need every unit of a province); the reader's
# scope is applied to each verdict when it is shown.


def _within(prefix: str, code: str | None) -> bool:
    return bool(code) and code.startswith(prefix)


def sees_unit_verdict(principal: Principal, enterprise_id: int | str | None, division_code: str | None) -> bool:
    """A per-unit verdict: the unit's own enterprise, or a regulator of its province or prefecture."""
    if principal.sees_everything:
        return True
    if principal.role == ENTERPRISE:
        return enterprise_id not in (None, "") and int(enterprise_id) == principal.enterprise_id
    return principal.sees_division(division_code)


def sees_group_verdict(principal: Principal, group: Mapping[str, str] | None) -> bool:
    """An aggregate verdict (a cap or a share over a group of units).

    A regulator sees groups inside its area and groups that enclose it (a prefecture regulator sees its province's
    cap, which binds its prefecture too); groups with no geography (a metal nationwide) are seen by every regulator.
    An enterprise user sees only groups formed of its own enterprise.
    """
    if principal.sees_everything:
        return True
    group = group or {}
    if principal.role == ENTERPRISE:
        return str(group.get("enterprise_id", "")) == str(principal.enterprise_id)
    if principal.role != REGULATOR or not principal.division_code:
        return False
    own = division_prefix(principal.division_code)
    place = group.get("prefecture") or group.get("province")
    if not place:
        return True
    return _within(own, place) or _within(division_prefix(place), principal.division_code)


def verdict_visible(principal: Principal, verdict, units: Mapping[str, UnitFacts]) -> bool:
    """An engine verdict (live evaluation) seen through the principal's scope."""
    if verdict.unit_id is not None:
        unit = units.get(verdict.unit_id)
        if unit is None:
            return principal.sees_everything
        return sees_unit_verdict(principal, unit.enterprise_id, unit.prefecture or unit.province)
    return sees_group_verdict(principal, dict(verdict.group or ()))


def visible(principal: Principal, verdicts: Iterable, units: Mapping[str, UnitFacts]) -> list:
    return [verdict for verdict in verdicts if verdict_visible(principal, verdict, units)]
