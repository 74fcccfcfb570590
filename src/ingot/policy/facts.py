"""What the engine knows about a production unit on the evaluation date.

The registry adapter builds these from the database (status as of the date, declarations of the relevant year);
the engine never reads anything else. Quantities are Decimal in the unit the vocabulary gives for their code.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from ingot.core.errors import InvalidInput

FACT_NAMESPACES = ("param", "capacity", "decl", "site")

# Statuses in which a unit still exists physically; closed and eliminated units have left the industry.
ACTIVE_STATUSES = frozenset({"planned", "under_construction", "operating", "idle"})
GONE_STATUSES = frozenset({"closed", "eliminated"})


@dataclass(frozen=True, slots=True)
class UnitFacts:
    unit_id: str
    province: str
    status: str
    metal: str | None = None
    process_type: str | None = None
    enterprise_id: str = ""
    enterprise_name: str = ""
    unit_name: str = ""
    prefecture: str | None = None
    commissioned_on: date | None = None
    approved_on: date | None = None
    above_designated: bool | None = None
    in_park: bool | None = None
    params: Mapping[str, Decimal] = field(default_factory=dict)
    capacities: Mapping[str, Decimal] = field(default_factory=dict)
    declarations: Mapping[str, Decimal] = field(default_factory=dict)

    def fact(self, name: str) -> Decimal | None:
        """The value of a fact such as ``param.cell_current`` or ``decl.current_efficiency``; None when unknown.

        ``site.in_park`` and ``site.above_designated`` expose the unit's flags as 1/0 so that a rule requiring a
        park location can be written as a threshold.
        """
        namespace, _, code = name.partition(".")
        if namespace == "param":
            return self.params.get(code)
        if namespace == "capacity":
            return self.capacities.get(code)
        if namespace == "decl":
            return self.declarations.get(code)
        if namespace == "site":
            flag = {"in_park": self.in_park, "above_designated": self.above_designated}.get(code)
            return None if flag is None else Decimal(int(flag))
        return None

    def age_reference_date(self) -> date | None:
        """The date that decides whether the unit is new or existing under a provision: approval first."""
        return self.approved_on or self.commissioned_on


_UNIT_KEYS = frozenset({
    "unit_id", "enterprise_id", "enterprise_name", "unit_name", "province", "prefecture", "metal", "process_type",
    "status", "commissioned_on", "approved_on", "above_designated", "in_park", "params", "capacities", "declarations",
})


def facts_from_mapping(raw: Mapping, default_id: str = "unit") -> UnitFacts:
    """Build UnitFacts from plain data (a test case, a JSON request); numbers must be strings or integers."""
    unknown = set(raw) - _UNIT_KEYS
    if unknown:
        names = ", ".join(sorted(unknown))
        raise InvalidInput(f"未知的单元字段：{names}", f"unknown unit field(s): {names}", field=names, code="unknown_field")
    for required in ("province", "status"):
        if not raw.get(required):
            raise InvalidInput(f"缺少单元字段 {required}", f"unit field {required} is required", field=required, code="required")

    def day(name: str) -> date | None:
        value = raw.get(name)
        if value is None or isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise InvalidInput(f"{name} 应为 YYYY-MM-DD 格式的日期：{value!r}", f"{name} must be a YYYY-MM-DD date: {value!r}",
                               field=name, code="bad_date") from None

    def amounts(name: str) -> dict[str, Decimal]:
        result = {}
        for code, value in (raw.get(name) or {}).items():
            where = f"{name}.{code}"
            if isinstance(value, float) or isinstance(value, bool):
                raise InvalidInput(f"{where}：数值 {value!r} 须写成字符串，以便精确读取",
                                   f"{where}: write {value!r} as a string so it is read exactly", field=where, code="inexact_number")
            try:
                number = Decimal(str(value))
            except InvalidOperation:
                number = None
            if number is None or not number.is_finite():
                raise InvalidInput(f"{where}：{value!r} 不是数值", f"{where}: {value!r} is not a number", field=where, code="not_a_number")
            result[code] = number
        return result

    return UnitFacts(
        unit_id=str(raw.get("unit_id", default_id)),
        enterprise_id=str(raw.get("enterprise_id", "")),
        enterprise_name=str(raw.get("enterprise_name", "")),
        unit_name=str(raw.get("unit_name", "")),
        province=str(raw["province"]),
        prefecture=raw.get("prefecture"),
        metal=raw.get("metal"),
        process_type=raw.get("process_type"),
        status=str(raw["status"]),
        commissioned_on=day("commissioned_on"),
        approved_on=day("approved_on"),
        above_designated=raw.get("above_designated"),
        in_park=raw.get("in_park"),
        params=amounts("params"),
        capacities=amounts("capacities"),
        declarations=amounts("declarations"),
    )
