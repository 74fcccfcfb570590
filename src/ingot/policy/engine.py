"""The compliance engine: applies the catalogue's checkable rules to unit facts as of a date. Pure — no I/O.

Verdicts are ``pass``, ``fail``, ``not_applicable``, ``missing_data`` and ``pending``. Missing data is never turned
into a pass or a fail. Rules are compiled once per (catalogue, date, overrides) with their parameter values resolved,
and indexed by (province, metal, process type) so a unit only meets the rules whose scope can match it.

``not_applicable`` is given only for rules that were close to applying: the rule names the unit's metal or process
type, but one other scope condition excludes the unit (another province, a date outside the rule's validity, a
status the rule does not count, the other age class, enterprise size, park location). The verdict says which
condition, with the unit's value and the rule's (``excluded``). Rules about other metals and processes give nothing,
so the verdicts stay bounded by what a regulator would want to see on a unit's page, not units × rules.
"""
from __future__ import annotations

import gc
import operator
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

from ingot.policy.catalogue import (
    AGGREGATE_CHECKS,
    Catalogue,
    Citation,
    Override,
    Provision,
    Scope,
)
from ingot.policy.facts import ACTIVE_STATUSES, GONE_STATUSES, UnitFacts

PASS, FAIL, NOT_APPLICABLE, MISSING_DATA, PENDING = "pass", "fail", "not_applicable", "missing_data", "pending"
VERDICTS = (PASS, FAIL, NOT_APPLICABLE, MISSING_DATA, PENDING)
# Worst first: how several verdicts of one rule combine into one (a case file's single expectation, a summary).
SEVERITY = {FAIL: 0, MISSING_DATA: 1, PENDING: 2, PASS: 3, NOT_APPLICABLE: 4}

OPS: dict[str, Callable[[Decimal, Decimal], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt,
}
HUNDRED = Decimal(100)
_NOTHING: Mapping = MappingProxyType({})  # the measured values, thresholds and units of a verdict that does not apply

DEFAULT_STATUSES = {
    "threshold": ACTIVE_STATUSES,
    "eligibility": ACTIVE_STATUSES,
    "deadline": ACTIVE_STATUSES | GONE_STATUSES,
    # Capacity that exists or is coming: what a cap must hold back.
    "cap": frozenset({"operating", "under_construction", "planned"}),
    # Formed capacity and declared performance: what a target or a share is measured on.
    "plan_target": frozenset({"operating", "idle"}),
    "share": frozenset({"operating", "idle"}),
}
NOT_YET_BUILT = frozenset({"planned", "under_construction"})
BUCKET_ATTRIBUTES = frozenset({"province", "metal", "process_type"})

# Why a rule does not apply: reason code by the scope dimension that excluded the unit (or group).
EXCLUSION_REASONS = {
    "province": "outside_province",
    "effective_from": "not_yet_in_force",
    "parameter_from": "not_yet_in_force",
    "effective_until": "no_longer_in_force",
    "status": "status_not_covered",
    "unit_age": "other_unit_age",
    "above_designated": "below_enterprise_size",
    "in_park": "outside_park",
}


@dataclass(slots=True)
class Verdict:
    rule_id: str
    verdict: str
    check_type: str
    reason: str
    citation: Citation
    unit_id: str | None = None
    group: tuple[tuple[str, str], ...] | None = None
    measured: dict[str, Decimal | None] = field(default_factory=dict)
    thresholds: dict[str, Decimal | date] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    matched: tuple[str, ...] = ()
    due: date | None = None
    headroom: Decimal | None = None
    members: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    # For not_applicable: {"dimension", "unit" (the unit's value), "scope" (the rule's)}, and the dates for unit_age.
    excluded: dict[str, str] | None = None

    @property
    def key(self) -> tuple[str, str]:
        """Identifies what was judged: the rule and the unit or group, for comparing two runs."""
        subject = self.unit_id if self.unit_id is not None else ",".join(f"{k}={v}" for k, v in self.group or ())
        return self.rule_id, subject

    def as_dict(self) -> dict:
        return {
            "rule_id": self.rule_id,
            "verdict": self.verdict,
            "check_type": self.check_type,
            "reason": self.reason,
            "unit_id": self.unit_id,
            "group": dict(self.group) if self.group else None,
            "measured": {k: (None if v is None else str(v)) for k, v in self.measured.items()},
            "thresholds": {k: (v.isoformat() if isinstance(v, date) else str(v)) for k, v in self.thresholds.items()},
            "units": dict(self.units),
            "matched": list(self.matched),
            "due": self.due.isoformat() if self.due else None,
            "headroom": None if self.headroom is None else str(self.headroom),
            "members": list(self.members),
            "missing": list(self.missing),
            "excluded": dict(self.excluded) if self.excluded else None,
            "citation": {"seed": self.citation.seed, "section": self.citation.section, "quote": self.citation.quote},
        }


def combine(verdicts: Iterable[str]) -> str:
    """The worst of several verdicts; no verdict at all means the rule did not apply."""
    worst = NOT_APPLICABLE
    for verdict in verdicts:
        if SEVERITY[verdict] < SEVERITY[worst]:
            worst = verdict
    return worst


@dataclass
class EvaluationResult:
    as_of: date
    catalogue_hash: str
    overrides: tuple[Override, ...]
    verdicts: list[Verdict]
    units: dict[str, UnitFacts]
    _by_rule: dict[str, list[Verdict]] | None = field(default=None, init=False, repr=False, compare=False)
    _by_unit: dict[str, list[Verdict]] | None = field(default=None, init=False, repr=False, compare=False)

    def for_rule(self, rule_id: str) -> list[Verdict]:
        if self._by_rule is None:
            self._by_rule = defaultdict(list)
            for verdict in self.verdicts:
                self._by_rule[verdict.rule_id].append(verdict)
        return list(self._by_rule.get(rule_id, ()))

    def for_unit(self, unit_id: str) -> list[Verdict]:
        if self._by_unit is None:
            self._by_unit = defaultdict(list)
            for verdict in self.verdicts:
                if verdict.unit_id is not None:
                    self._by_unit[verdict.unit_id].append(verdict)
        return list(self._by_unit.get(unit_id, ()))

    def counts(self) -> Counter:
        return Counter(verdict.verdict for verdict in self.verdicts)

    def as_dict(self) -> dict:
        """Everything needed to store the run and reproduce it: date, catalogue hash, overrides, verdicts."""
        return {
            "as_of": self.as_of.isoformat(),
            "catalogue_hash": self.catalogue_hash,
            "overrides": [str(override) for override in self.overrides],
            "counts": dict(self.counts()),
            "verdicts": [verdict.as_dict() for verdict in self.verdicts],
        }


class _CompiledRule:
    """A checkable provision with its scope as sets and its parameters resolved for one date."""

    __slots__ = (
        "provision", "check", "rule_id", "provinces", "metals", "process_types", "unit_age", "divide_on",
        "above_designated_only", "park_only", "statuses", "values", "units", "deadline", "numerator_scope",
        "alternative", "group_by", "compare", "conditions", "conditions_in_force", "names_activity", "dormant",
    )

    def __init__(self, catalogue: Catalogue, provision: Provision, as_of: date, overrides: Sequence[Override]):
        check = provision.check
        assert check is not None
        self.provision = provision
        self.check = check
        self.rule_id = provision.id
        scope = provision.scope
        self.provinces = frozenset(scope.provinces) if scope.provinces is not None else None
        self.metals = frozenset(scope.metals) if scope.metals is not None else None
        self.process_types = frozenset(scope.process_types) if scope.process_types is not None else None
        self.unit_age = scope.unit_age
        self.divide_on = provision.effective.from_
        self.above_designated_only = scope.enterprise_size == "above_designated"
        self.park_only = scope.park_required
        self.statuses = frozenset(check.statuses) if check.statuses else DEFAULT_STATUSES[check.type]
        self.values = {
            name: catalogue.parameter_value(provision.id, name, as_of, overrides) for name in provision.parameters
        }
        self.units = {name: spec.unit for name, spec in provision.parameters.items()}
        self.deadline = self.values.get(check.deadline) if check.deadline else None
        self.numerator_scope = check.numerator_scope
        self.alternative = frozenset(check.alternative or ())
        self.group_by = tuple(check.group_by or ("province",))
        self.compare = OPS[check.op] if check.op else None
        self.conditions = (
            [(check.measure, check.op, check.parameter)] if check.type == "threshold"
            else [(c.measure, c.op, c.parameter) for c in check.conditions or ()]
        )
        # A per-unit rule whose parameters have no value yet on the date says nothing, not even "missing data".
        if check.type == "deadline":
            needed = [check.parameter]
        elif check.type in AGGREGATE_CHECKS:
            needed = [check.parameter, check.deadline]
        else:
            needed = [p for _, _, p in self.conditions] + [check.deadline]
        self.conditions_in_force = self.parameters_in_force(needed)
        self.names_activity = self.metals is not None or self.process_types is not None
        self.dormant = self._dormancy(as_of, [name for name in needed if name])

    def _dormancy(self, as_of: date, needed: list[str]) -> dict[str, str] | None:
        """Why the rule says nothing on ``as_of`` whatever the unit (None when it is in force): dates only."""
        effective = self.provision.effective
        if effective.from_ is not None and as_of < effective.from_:
            return {"dimension": "effective_from", "unit": as_of.isoformat(), "scope": effective.from_.isoformat()}
        if effective.until is not None and as_of > effective.until:
            return {"dimension": "effective_until", "unit": as_of.isoformat(), "scope": effective.until.isoformat()}
        if not self.conditions_in_force:
            lacking = [name for name in needed if self.values.get(name) is None]
            first = max(self.provision.parameters[name].values[0].from_ for name in lacking)
            return {"dimension": "parameter_from", "unit": as_of.isoformat(), "scope": first.isoformat(),
                    "parameter": ",".join(lacking)}
        return None

    def covers_activity(self, metal: str | None, process_type: str | None) -> bool:
        return (self.metals is None or metal in self.metals) and (self.process_types is None or process_type in self.process_types)

    def matches_index(self, province: str, metal: str | None, process_type: str | None) -> bool:
        return (
            (self.provinces is None or province in self.provinces)
            and (self.metals is None or metal in self.metals)
            and (self.process_types is None or process_type in self.process_types)
        )

    def parameters_in_force(self, names: Iterable[str | None]) -> bool:
        return all(self.values.get(name) is not None for name in names if name)


class Engine:
    """Compiles the catalogue for one date (and optional what-if overrides) and evaluates units against it."""

    def __init__(self, catalogue: Catalogue, as_of: date, overrides: Iterable[Override] = ()):
        self.catalogue = catalogue
        self.as_of = as_of
        self.overrides = tuple(overrides)
        self._metal_of_process = {
            code: spec.get("metal") for code, spec in catalogue.vocabulary.process_types.items()
        }
        self.per_unit_rules: list[_CompiledRule] = []
        self.aggregate_rules: list[_CompiledRule] = []
        # Rules out of force on the date are compiled too: they give not_applicable (with the date) where they
        # would otherwise apply.
        for provision in catalogue.checkable():
            rule = _CompiledRule(catalogue, provision, as_of, self.overrides)
            (self.aggregate_rules if rule.check.type in AGGREGATE_CHECKS else self.per_unit_rules).append(rule)
        self._index: dict[tuple[str, str | None, str | None], tuple[_Candidate, ...]] = {}

    # -- per unit -----------------------------------------------------------------------------------------------

    def metal_of(self, unit: UnitFacts) -> str | None:
        return unit.metal or self._metal_of_process.get(unit.process_type or "")

    def _candidates(self, province: str, metal: str | None, process_type: str | None) -> tuple[_Candidate, ...]:
        """The per-unit rules a unit of this (province, metal, process) meets, in catalogue order.

        A candidate either is judged unit by unit, or already carries the exclusion that holds for every unit of
        the bucket (another province, a date outside the rule's validity).
        """
        key = (province, metal, process_type)
        candidates = self._index.get(key)
        if candidates is None:
            found = []
            for rule in self.per_unit_rules:
                if not rule.covers_activity(metal, process_type):
                    continue
                matched = _scope_reasons(rule, province, metal, process_type)
                if rule.provinces is not None and province not in rule.provinces:
                    if not rule.names_activity:
                        continue  # a rule about another province in general was never close to this unit
                    excluded = {"dimension": "province", "unit": province, "scope": ",".join(sorted(rule.provinces))}
                    found.append(_Candidate.excluding(rule, matched[1:], excluded))
                elif rule.dormant is not None:
                    found.append(_Candidate.excluding(rule, matched, rule.dormant))
                else:
                    found.append(_Candidate(rule, matched, None, None))
            candidates = tuple(found)
            self._index[key] = candidates
        return candidates

    def evaluate_unit(self, unit: UnitFacts) -> list[Verdict]:
        metal = self.metal_of(unit)
        return [self._judge_candidate(candidate, unit) for candidate in self._candidates(unit.province, metal, unit.process_type)]

    def _judge_candidate(self, candidate: _Candidate, unit: UnitFacts) -> Verdict:
        if candidate.head is not None:
            return Verdict(*candidate.head, unit.unit_id, *candidate.tail)
        return self._judge_unit(candidate.rule, unit, candidate.matched)

    @staticmethod
    def _not_applicable(rule: _CompiledRule, unit_id: str, matched: tuple[str, ...], excluded: dict[str, str]) -> Verdict:
        candidate = _Candidate.excluding(rule, matched, excluded)
        return Verdict(*candidate.head, unit_id, *candidate.tail)

    def _refine_scope(self, rule: _CompiledRule, unit: UnitFacts) -> tuple[dict[str, str] | None, list[str], list[str]]:
        """The scope keys beyond the index: (what excludes the unit or None, why it applies, facts missing to decide)."""
        why: list[str] = []
        missing: list[str] = []
        scope_age, divide_on = rule.unit_age, rule.divide_on
        if scope_age != "any" and divide_on is not None:
            reference = unit.age_reference_date()
            if reference is None:
                age = "new" if unit.status in NOT_YET_BUILT else None
            else:
                age = "new" if reference >= divide_on else "existing"
            if age is None:
                missing.append("approved_on/commissioned_on")
            elif age != scope_age:
                return {"dimension": "unit_age", "unit": age, "scope": scope_age,
                        "unit_date": reference.isoformat() if reference else "", "divides_on": divide_on.isoformat()}, why, missing
            else:
                shown = reference.isoformat() if reference else unit.status
                why.append(f"unit_age={age} ({shown} vs {divide_on.isoformat()})")
        if rule.above_designated_only:
            if unit.above_designated is None:
                missing.append("above_designated")
            elif not unit.above_designated:
                return {"dimension": "above_designated", "unit": "false", "scope": "true"}, why, missing
            else:
                why.append("enterprise_size=above_designated")
        if rule.park_only:
            if unit.in_park is None:
                missing.append("in_park")
            elif not unit.in_park:
                return {"dimension": "in_park", "unit": "false", "scope": "true"}, why, missing
            else:
                why.append("in_park=true")
        return None, why, missing

    def _judge_unit(self, rule: _CompiledRule, unit: UnitFacts, scope_matched: tuple[str, ...]) -> Verdict:
        check = rule.check
        if unit.status not in rule.statuses:
            excluded = {"dimension": "status", "unit": unit.status, "scope": ",".join(sorted(rule.statuses))}
            return self._not_applicable(rule, unit.unit_id, scope_matched, excluded)
        excluded, why, missing = self._refine_scope(rule, unit)
        if excluded is not None:
            return self._not_applicable(rule, unit.unit_id, scope_matched + tuple(why), excluded)
        matched = scope_matched + tuple(why) + (f"status={unit.status}",)
        base = Verdict(
            rule_id=rule.rule_id, verdict=MISSING_DATA, check_type=check.type, reason="scope_undetermined",
            citation=rule.provision.citation, unit_id=unit.unit_id, matched=matched, missing=tuple(missing),
        )
        if missing:
            return base
        if check.type == "deadline":
            return self._judge_deadline(rule, unit, base)
        outcome = PASS
        lacking = []
        for measure, op, parameter in rule.conditions:
            value = unit.fact(measure)
            limit = rule.values[parameter]
            base.measured[measure] = value
            base.thresholds[parameter] = limit
            base.units[parameter] = rule.units[parameter]
            if value is None:
                lacking.append(measure)
            elif not OPS[op](value, limit):
                outcome = FAIL
        base.due = rule.deadline
        if outcome == FAIL:
            if rule.deadline is not None and self.as_of <= rule.deadline:
                base.verdict, base.reason = PENDING, "due_by_deadline"
            else:
                base.verdict, base.reason = FAIL, "threshold_not_met"
        elif lacking:
            base.reason, base.missing = "fact_missing", tuple(lacking)
        else:
            base.verdict, base.reason = PASS, "threshold_met"
        return base

    def _judge_deadline(self, rule: _CompiledRule, unit: UnitFacts, base: Verdict) -> Verdict:
        deadline = rule.values[rule.check.parameter]
        base.thresholds[rule.check.parameter] = deadline
        base.units[rule.check.parameter] = "date"
        base.due = deadline
        if unit.status in GONE_STATUSES:
            base.verdict, base.reason = PASS, "closed"
        elif unit.process_type in rule.alternative:
            base.verdict, base.reason = PASS, "converted"
        elif self.as_of <= deadline:
            base.verdict, base.reason = PASS, "due_by_deadline"
        else:
            base.verdict, base.reason = FAIL, "past_deadline"
        return base

    # -- aggregates ---------------------------------------------------------------------------------------------

    def _aggregate(self, rule: _CompiledRule, buckets: dict[tuple[str, str | None, str | None], list[UnitFacts]]) -> list[Verdict]:
        check = rule.check
        if rule.dormant is not None:
            return self._dormant_groups(rule)
        groups: dict[tuple[tuple[str, str], ...], list[UnitFacts]] = defaultdict(list)
        if rule.group_by == ("province",) and rule.provinces is not None:
            for province in sorted(rule.provinces):
                groups[(("province", province),)] = []
        lacking_age: list[str] = []
        # Grouping by bucket attributes lets whole buckets be grouped at once; scope keys beyond the index
        # (age, size, park) and unit-level groupings need a look at each unit.
        bucket_level = all(attribute in BUCKET_ATTRIBUTES for attribute in rule.group_by)
        refine = (rule.unit_age != "any" and rule.divide_on is not None) or rule.above_designated_only or rule.park_only
        statuses = rule.statuses
        for (province, metal, process_type), members in buckets.items():
            if not rule.matches_index(province, metal, process_type):
                continue
            if bucket_level and not refine:
                selected = [unit for unit in members if unit.status in statuses]
                if selected:
                    values = {"province": province, "metal": metal or "", "process_type": process_type or ""}
                    groups[tuple((attribute, values[attribute]) for attribute in rule.group_by)].extend(selected)
                continue
            for unit in members:
                if unit.status not in statuses:
                    continue
                excluded, _, missing = self._refine_scope(rule, unit)
                if missing:
                    lacking_age.append(unit.unit_id)
                    continue
                if excluded is None:
                    key = tuple((attribute, _attribute(unit, attribute, metal)) for attribute in rule.group_by)
                    groups[key].append(unit)
        verdicts = []
        for key, members in sorted(groups.items()):
            if check.type == "share":
                verdicts.append(self._judge_share(rule, key, members, lacking_age))
            else:
                verdicts.append(self._judge_total(rule, key, members, lacking_age))
        return verdicts

    def _dormant_groups(self, rule: _CompiledRule) -> list[Verdict]:
        """A cap, target or share out of force on the date: not_applicable for each group its scope names.

        Only groups the scope enumerates (its provinces, metals, process types) are given one, so an undated
        grouping such as by enterprise says nothing rather than inventing groups.
        """
        lists = {"province": rule.provinces, "metal": rule.metals, "process_type": rule.process_types}
        if any(lists.get(attribute) is None for attribute in rule.group_by):
            return []
        keys: list[tuple[tuple[str, str], ...]] = [()]
        for attribute in rule.group_by:
            keys = [key + ((attribute, value),) for key in keys for value in sorted(lists[attribute])]
        return [
            Verdict(rule_id=rule.rule_id, verdict=NOT_APPLICABLE, check_type=rule.check.type,
                    reason=EXCLUSION_REASONS[rule.dormant["dimension"]], citation=rule.provision.citation, group=key,
                    matched=tuple(f"{name}={value}" for name, value in key), excluded=rule.dormant)
            for key in keys
        ]

    def _base_aggregate(self, rule: _CompiledRule, key, members: list[UnitFacts]) -> Verdict:
        scope_keys = [f"{name}={value}" for name, value in key]
        return Verdict(
            rule_id=rule.rule_id, verdict=MISSING_DATA, check_type=rule.check.type, reason="fact_missing",
            citation=rule.provision.citation, group=key, matched=tuple(scope_keys) + (f"statuses={','.join(sorted(rule.statuses))}",),
            members=tuple(unit.unit_id for unit in members), due=rule.deadline,
        )

    def _judge_total(self, rule: _CompiledRule, key, members: list[UnitFacts], lacking_age: list[str]) -> Verdict:
        check = rule.check
        verdict = self._base_aggregate(rule, key, members)
        limit = rule.values[check.parameter]
        get = _getter(check.measure)
        total = sum((value for unit in members if (value := get(unit)) is not None), Decimal(0))
        verdict.measured[check.measure] = total
        verdict.thresholds[check.parameter] = limit
        verdict.units[check.parameter] = rule.units[check.parameter]
        verdict.headroom = limit - total
        if lacking_age:
            verdict.missing = tuple(lacking_age)
            verdict.reason = "scope_undetermined"
            return verdict
        met = rule.compare(total, limit)
        if check.type == "plan_target" and rule.deadline is not None and self.as_of <= rule.deadline:
            verdict.verdict, verdict.reason = PENDING, "target_date_not_reached"
        elif met:
            verdict.verdict, verdict.reason = PASS, "within_cap" if check.type == "cap" else "target_reached"
        else:
            verdict.verdict, verdict.reason = FAIL, "cap_exceeded" if check.type == "cap" else "target_missed"
        return verdict

    def _judge_share(self, rule: _CompiledRule, key, members: list[UnitFacts], lacking_age: list[str]) -> Verdict:
        check = rule.check
        verdict = self._base_aggregate(rule, key, members)
        limit = rule.values[check.parameter]
        verdict.thresholds[check.parameter] = limit
        verdict.units[check.parameter] = rule.units[check.parameter]
        numerator_total: Decimal | None = None
        denominator_total: Decimal | None = None
        get_numerator, get_denominator = _getter(check.numerator), _getter(check.denominator)
        for unit in members:
            denominator = get_denominator(unit)
            if denominator is not None:
                denominator_total = (denominator_total or Decimal(0)) + denominator
            if rule.numerator_scope is not None and not _matches_scope(rule.numerator_scope, unit, self.metal_of(unit)):
                continue
            numerator = get_numerator(unit)
            if numerator is not None:
                numerator_total = (numerator_total or Decimal(0)) + numerator
        verdict.measured[check.numerator] = numerator_total
        verdict.measured[check.denominator] = denominator_total
        if lacking_age:
            verdict.missing, verdict.reason = tuple(lacking_age), "scope_undetermined"
            return verdict
        if numerator_total is None or not denominator_total:
            lacking = [check.numerator] if numerator_total is None else []
            if not denominator_total:
                lacking.append(check.denominator)
            verdict.missing = tuple(lacking)
            return verdict
        share = numerator_total * HUNDRED / denominator_total
        verdict.measured["share"] = share
        verdict.headroom = share - limit
        if rule.deadline is not None and self.as_of <= rule.deadline:
            verdict.verdict, verdict.reason = PENDING, "target_date_not_reached"
        elif rule.compare(share, limit):
            verdict.verdict, verdict.reason = PASS, "share_met"
        else:
            verdict.verdict, verdict.reason = FAIL, "share_not_met"
        return verdict

    # -- whole run ----------------------------------------------------------------------------------------------

    def evaluate(self, units: Iterable[UnitFacts]) -> EvaluationResult:
        # A large registry means hundreds of thousands of verdicts, none of them garbage and none in a reference
        # cycle: the cyclic collector would rescan them again and again (about 40 % of the time), so it waits.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._evaluate(units)
        finally:
            if collecting:
                gc.enable()

    def _evaluate(self, units: Iterable[UnitFacts]) -> EvaluationResult:
        verdicts: list[Verdict] = []
        by_id: dict[str, UnitFacts] = {}
        buckets: dict[tuple[str, str | None, str | None], list[UnitFacts]] = defaultdict(list)
        metal_of_process = self._metal_of_process
        for unit in units:
            by_id[unit.unit_id] = unit
            metal = unit.metal or metal_of_process.get(unit.process_type or "")
            buckets[(unit.province, metal, unit.process_type)].append(unit)
        # Units sharing (province, metal, process) meet the same rules; most buckets meet none and are skipped whole.
        # A rule excluded for the whole bucket gives every member the same not_applicable, built in one sweep.
        extend = verdicts.extend
        judge = self._judge_unit
        for (province, metal, process_type), members in buckets.items():
            candidates = self._candidates(province, metal, process_type)
            if not candidates:
                continue
            judged = [(candidate.rule, candidate.matched) for candidate in candidates if candidate.head is None]
            if judged:
                extend([judge(rule, unit, matched) for unit in members for rule, matched in judged])
            for candidate in candidates:
                if candidate.head is not None:
                    head, tail = candidate.head, candidate.tail
                    extend([Verdict(*head, unit.unit_id, *tail) for unit in members])
        for rule in self.aggregate_rules:
            verdicts.extend(self._aggregate(rule, buckets))
        return EvaluationResult(self.as_of, self.catalogue.content_hash, self.overrides, verdicts, by_id)


class _Candidate(NamedTuple):
    """A per-unit rule met by a bucket of units: the scope keys it matched, and the exclusion shared by the bucket.

    An excluded candidate carries the not_applicable verdict's fields before and after the unit id, so each unit's
    verdict is built in one positional call: most verdicts of a large registry are these, and keywords plus fresh
    empty dicts would cost twice as much.
    """

    rule: _CompiledRule
    matched: tuple[str, ...]
    head: tuple | None
    tail: tuple | None

    @classmethod
    def excluding(cls, rule: _CompiledRule, matched: tuple[str, ...], excluded: dict[str, str]) -> _Candidate:
        # Verdict fields in declaration order: rule_id, verdict, check_type, reason, citation | unit_id | group,
        # measured, thresholds, units, matched, due, headroom, members, missing, excluded.
        head = (rule.rule_id, NOT_APPLICABLE, rule.check.type, EXCLUSION_REASONS[excluded["dimension"]], rule.provision.citation)
        tail = (None, _NOTHING, _NOTHING, _NOTHING, matched, None, None, (), (), excluded)
        return cls(rule, matched, head, tail)


def _scope_reasons(rule: _CompiledRule, province: str, metal: str | None, process_type: str | None) -> tuple[str, ...]:
    """The scope keys of the rule the unit matched; the province first, so it can be left out when it excluded."""
    reasons = [f"province={province}"] if rule.provinces is not None else []
    if rule.metals is not None:
        reasons.append(f"metal={metal}")
    if rule.process_types is not None:
        reasons.append(f"process_type={process_type}")
    return tuple(reasons)


def _getter(measure: str) -> Callable[[UnitFacts], Decimal | None]:
    """A fast accessor for one fact name, resolved once per rule instead of once per unit."""
    namespace, _, code = measure.partition(".")
    if namespace == "capacity":
        return lambda unit: unit.capacities.get(code)
    if namespace == "decl":
        return lambda unit: unit.declarations.get(code)
    if namespace == "param":
        return lambda unit: unit.params.get(code)
    return lambda unit: unit.fact(measure)


def _attribute(unit: UnitFacts, attribute: str, metal: str | None) -> str:
    if attribute == "metal":
        return metal or ""
    return getattr(unit, attribute) or ""


def _matches_scope(scope: Scope, unit: UnitFacts, metal: str | None) -> bool:
    return (
        (scope.provinces is None or unit.province in scope.provinces)
        and (scope.metals is None or metal in scope.metals)
        and (scope.process_types is None or unit.process_type in scope.process_types)
    )


def evaluate(
    catalogue: Catalogue, units: Iterable[UnitFacts], as_of: date, overrides: Iterable[Override] = ()
) -> EvaluationResult:
    return Engine(catalogue, as_of, overrides).evaluate(units)


def exclusion_text(excluded: dict | None) -> str:
    """Why a rule did not apply, in one line of codes and values (CLI tables, spreadsheet cells).

    e.g. ``province 530000 ∉ 150000``, ``effective_from 2016-12-31 < 2017-01-01``,
    ``unit_age existing (2008-03-01 < 2013-01-01) ≠ new``.
    """
    if not excluded:
        return ""
    dimension, unit, scope = excluded.get("dimension", ""), excluded.get("unit", ""), excluded.get("scope", "")
    if dimension in ("effective_from", "parameter_from"):
        named = f" ({excluded['parameter']})" if excluded.get("parameter") else ""
        return f"{dimension}{named} {unit} < {scope}"
    if dimension == "effective_until":
        return f"{dimension} {unit} > {scope}"
    if dimension == "unit_age":
        reference = excluded.get("unit_date") or "—"
        side = "≥" if unit == "new" else "<"
        return f"unit_age {unit} ({reference} {side} {excluded.get('divides_on', '')}) ≠ {scope}"
    if dimension in ("province", "status"):
        return f"{dimension} {unit} ∉ {scope}"
    return f"{dimension} {unit} ≠ {scope}"


# ---------------------------------------------------------------------------------------------------------------
# Derived views


@dataclass(frozen=True)
class EliminationEntry:
    unit_id: str
    enterprise_name: str
    unit_name: str
    province: str
    prefecture: str | None
    process_type: str | None
    rule_id: str
    due: date
    overdue: bool
    capacities: dict[str, Decimal]
    citation: Citation


def elimination_list(result: EvaluationResult) -> list[EliminationEntry]:
    """Units that must close or upgrade: still standing under a deadline, or short of a dated threshold."""
    entries = []
    for verdict in result.verdicts:
        if verdict.unit_id is None or verdict.due is None:
            continue
        must_act = (
            (verdict.check_type == "deadline" and verdict.reason in ("due_by_deadline", "past_deadline"))
            or (verdict.check_type != "deadline" and verdict.verdict in (PENDING, FAIL))
        )
        if not must_act:
            continue
        unit = result.units[verdict.unit_id]
        entries.append(
            EliminationEntry(
                unit.unit_id, unit.enterprise_name, unit.unit_name, unit.province, unit.prefecture, unit.process_type,
                verdict.rule_id, verdict.due, result.as_of > verdict.due, dict(unit.capacities), verdict.citation,
            )
        )
    return sorted(entries, key=lambda entry: (entry.due, entry.province, entry.rule_id, entry.unit_id))


@dataclass(frozen=True)
class HeadroomRow:
    rule_id: str
    check_type: str
    group: dict[str, str]
    measure: str
    total: Decimal
    limit: Decimal
    unit: str
    headroom: Decimal
    verdict: str
    due: date | None
    citation: Citation


def cap_headroom(result: EvaluationResult) -> list[HeadroomRow]:
    """Every capacity cap and capacity target: the registered total against the limit, by group."""
    rows = []
    for verdict in result.verdicts:
        if verdict.check_type not in ("cap", "plan_target") or verdict.verdict == NOT_APPLICABLE:
            continue  # a cap out of force on the date has no headroom to show
        (measure, total), = verdict.measured.items()
        (parameter, limit), = verdict.thresholds.items()
        rows.append(
            HeadroomRow(
                verdict.rule_id, verdict.check_type, dict(verdict.group or ()), measure, total, limit,
                verdict.units[parameter], verdict.headroom, verdict.verdict, verdict.due, verdict.citation,
            )
        )
    return rows


def noncompliance_counts(
    result: EvaluationResult, dimensions: Sequence[str] = ("province", "prefecture", "metal", "process_type")
) -> dict[str, dict[str, Counter]]:
    """Verdict counts per value of each dimension; per-unit verdicts by the unit, aggregate ones by their group."""
    table: dict[str, dict[str, Counter]] = {dimension: defaultdict(Counter) for dimension in dimensions}
    for verdict in result.verdicts:
        if verdict.unit_id is not None:
            unit = result.units[verdict.unit_id]
            for dimension in dimensions:
                table[dimension][getattr(unit, dimension) or ""][verdict.verdict] += 1
        else:
            group = dict(verdict.group or ())
            for dimension in dimensions:
                if dimension in group:
                    table[dimension][group[dimension]][verdict.verdict] += 1
    return {dimension: dict(values) for dimension, values in table.items()}


@dataclass(frozen=True)
class AdmissionFinding:
    rule_id: str
    effect: str  # allows | blocks | needs_data | to_review | does_not_apply
    verdict: Verdict | None
    title_zh: str
    title_en: str
    citation: Citation


@dataclass(frozen=True)
class AdmissionReport:
    decision: str  # allowed | blocked | incomplete
    findings: list[AdmissionFinding]


def admission_check(
    catalogue: Catalogue,
    proposed: UnitFacts,
    as_of: date,
    existing: Iterable[UnitFacts] = (),
    overrides: Iterable[Override] = (),
) -> AdmissionReport:
    """Which rules allow or block a proposed unit, and which qualitative provisions its sponsor must still meet.

    The proposal is judged as a planned unit approved on ``as_of`` unless it says otherwise; caps are judged with
    the proposal added to the existing units, so a proposal that would push a cap over is blocked.
    """
    engine = Engine(catalogue, as_of, overrides)
    if proposed.status not in NOT_YET_BUILT:
        proposed = replace(proposed, status="planned")
    if proposed.age_reference_date() is None:
        proposed = replace(proposed, approved_on=as_of)
    metal = engine.metal_of(proposed)
    findings: list[AdmissionFinding] = []

    def finding(effect: str, provision: Provision, verdict: Verdict | None) -> None:
        findings.append(AdmissionFinding(provision.id, effect, verdict, provision.title.zh, provision.title.en, provision.citation))

    proposal_verdicts = engine.evaluate_unit(proposed)
    for verdict in proposal_verdicts:
        provision = catalogue.by_id[verdict.rule_id]
        effect = {PASS: "allows", FAIL: "blocks", PENDING: "blocks", MISSING_DATA: "needs_data"}.get(verdict.verdict)
        if effect is None:
            continue  # rules that do not apply are listed after the ones that decide
        finding(effect, provision, verdict)
    existing_units = [unit for unit in existing if unit.unit_id != proposed.unit_id]
    with_proposal = engine.evaluate(existing_units + [proposed])
    for verdict in with_proposal.verdicts:
        if verdict.check_type != "cap" or proposed.unit_id not in verdict.members:
            continue
        (measure, _), = verdict.measured.items()
        if not proposed.fact(measure):
            continue  # the proposal adds nothing to what this cap limits
        provision = catalogue.by_id[verdict.rule_id]
        effect = {PASS: "allows", FAIL: "blocks", MISSING_DATA: "needs_data"}.get(verdict.verdict, "to_review")
        finding(effect, provision, verdict)
    for provision in catalogue.provisions:
        if provision.checkable or not provision.effective.covers(as_of):
            continue
        scope = provision.scope
        if scope.unit_age == "existing" or not _matches_scope(scope, proposed, metal):
            continue
        if scope.metals is None and scope.process_types is None:
            continue  # a statement about a whole province or document says nothing particular about this proposal
        finding("to_review", provision, None)
    # What the sponsor may ask about: rules on this kind of unit that do not bind this proposal, and why not.
    for verdict in proposal_verdicts:
        if verdict.verdict == NOT_APPLICABLE:
            finding("does_not_apply", catalogue.by_id[verdict.rule_id], verdict)
    effects = {item.effect for item in findings}
    decision = "blocked" if "blocks" in effects else "incomplete" if "needs_data" in effects else "allowed"
    return AdmissionReport(decision, findings)


@dataclass(frozen=True)
class WhatIfChange:
    rule_id: str
    subject: str
    before: str
    after: str
    verdict: Verdict


@dataclass(frozen=True)
class WhatIfDiff:
    baseline: EvaluationResult
    scenario: EvaluationResult
    newly_failing: list[WhatIfChange]
    newly_passing: list[WhatIfChange]
    other_changes: list[WhatIfChange]
    capacity_affected: dict[str, Decimal]  # registered capacity of the units that newly fail, by product
    capacity_relieved: dict[str, Decimal]  # registered capacity of the units that newly pass, by product


def diff_results(baseline: EvaluationResult, scenario: EvaluationResult) -> WhatIfDiff:
    """What changed between two runs (a what-if against its baseline, or two stored runs) and the capacity involved."""
    before = {verdict.key: verdict.verdict for verdict in baseline.verdicts}
    failing: list[WhatIfChange] = []
    passing: list[WhatIfChange] = []
    other: list[WhatIfChange] = []
    affected: dict[str, Decimal] = defaultdict(Decimal)
    relieved: dict[str, Decimal] = defaultdict(Decimal)
    for verdict in scenario.verdicts:
        old = before.get(verdict.key, NOT_APPLICABLE)
        if old == verdict.verdict:
            continue
        change = WhatIfChange(verdict.rule_id, verdict.key[1], old, verdict.verdict, verdict)
        if verdict.verdict == FAIL:
            failing.append(change)
            tally = affected
        elif verdict.verdict == PASS:
            passing.append(change)
            tally = relieved
        else:
            other.append(change)
            continue
        if verdict.unit_id is not None:
            for product, amount in scenario.units[verdict.unit_id].capacities.items():
                tally[product] += amount
    after_keys = {verdict.key for verdict in scenario.verdicts}
    for verdict in baseline.verdicts:
        if verdict.key not in after_keys and verdict.verdict != NOT_APPLICABLE:
            other.append(WhatIfChange(verdict.rule_id, verdict.key[1], verdict.verdict, NOT_APPLICABLE, verdict))
    return WhatIfDiff(baseline, scenario, failing, passing, other, dict(affected), dict(relieved))


def what_if(
    catalogue: Catalogue, units: Sequence[UnitFacts], as_of: date, overrides: Iterable[Override]
) -> WhatIfDiff:
    """Baseline against overridden parameters: units newly failing and newly passing, and the capacity involved."""
    units = list(units)
    return diff_results(evaluate(catalogue, units, as_of), evaluate(catalogue, units, as_of, overrides))
