"""Compliance benchmark: 100,000 synthetic units against the whole catalogue, indexed engine beside a naive loop.

The registry is generated deterministically (fixed seed) over the seeds' provinces and the vocabulary's process
types, with cell currents, capacities and declarations spread around the catalogue's own thresholds so that every
verdict kind occurs. The peer is a naive evaluator written here: for every unit, every rule in force, full scope
test, then the check; aggregates by a pass over all units per rule. Both must give the same verdicts, including
not_applicable with its reason (for rules naming the unit's metal or process that another scope condition excludes).

Run: .venv/bin/python bench/compliance.py [--units N] [--as-of YYYY-MM-DD]
"""
from __future__ import annotations

import argparse
import operator
import os
import random
import sys
import time
from collections import Counter, defaultdict
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ingot.policy.catalogue import load_catalogue  # noqa: E402
from ingot.policy.engine import Engine  # noqa: E402
from ingot.policy.facts import UnitFacts  # noqa: E402

OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
STATUS_WEIGHTS = {"operating": 70, "idle": 8, "under_construction": 6, "planned": 6, "closed": 7, "eliminated": 3}
PREFECTURES = {"530000": ["530100", "530300", "532500", "532600"], "510000": ["510400", "513400"],
               "150000": ["150200", "150600", "152900"], "630000": ["630100", "632800"]}


def synthetic_registry(count: int, seed: int = 20170302) -> list[UnitFacts]:
    catalogue = load_catalogue()
    vocabulary = catalogue.vocabulary
    rng = random.Random(seed)
    provinces = sorted(vocabulary.provinces)
    process_types = sorted(vocabulary.process_types)
    products_by_metal: dict[str | None, list[str]] = defaultdict(list)
    for code, spec in vocabulary.products.items():
        products_by_metal[spec.get("metal")].append(code)
    measures = sorted(vocabulary.measures)
    # numbers drawn near the catalogue's own parameter values, so that pass and fail both occur
    anchors: dict[str, list[Decimal]] = defaultdict(list)
    for provision in catalogue.checkable():
        for spec in provision.parameters.values():
            if spec.unit not in ("date", "text"):
                anchors[spec.unit].extend(Decimal(str(v.value)) for v in spec.values)
    statuses, weights = zip(*STATUS_WEIGHTS.items())

    def near(unit_code: str) -> Decimal:
        pool = anchors.get(unit_code) or [Decimal(100)]
        base = rng.choice(pool)
        return (base * Decimal(rng.randint(80, 120)) / 100).quantize(Decimal("0.01"))

    units = []
    for index in range(count):
        process_type = rng.choice(process_types)
        metal = vocabulary.process_types[process_type].get("metal")
        province = rng.choice(provinces)
        status = rng.choices(statuses, weights)[0]
        commissioned = None if status in ("planned", "under_construction") else date(2005, 1, 1) + timedelta(days=rng.randint(0, 5000))
        params = {code: near(vocabulary.parameters[code]["unit"]) for code in vocabulary.process_types[process_type]["params"]
                  if vocabulary.parameters[code].get("unit")}
        capacities = {product: Decimal(rng.randint(1, 400) * 1000) for product in products_by_metal.get(metal, [])[:2]}
        declarations = {code: near(vocabulary.measures[code]["unit"]) for code in rng.sample(measures, 4) if rng.random() < 0.9}
        units.append(UnitFacts(
            unit_id=f"U{index:06d}", enterprise_id=f"E{index // 3:06d}", enterprise_name=f"企业{index // 3}",
            unit_name=f"单元{index}", province=province, prefecture=rng.choice(PREFECTURES.get(province, [None])),
            metal=metal, process_type=process_type, status=status, commissioned_on=commissioned,
            approved_on=commissioned - timedelta(days=400) if commissioned and rng.random() < 0.5 else None,
            above_designated=rng.choice([True, True, False, None]), in_park=rng.choice([True, False, None]),
            params=params, capacities=capacities, declarations=declarations,
        ))
    return units


# ---------------------------------------------------------------------------------------------------------------
# The naive peer: no index, no precompiled rules; every unit meets every rule and re-reads the catalogue.

DEFAULTS = {
    "threshold": {"planned", "under_construction", "operating", "idle"},
    "eligibility": {"planned", "under_construction", "operating", "idle"},
    "deadline": {"planned", "under_construction", "operating", "idle", "closed", "eliminated"},
    "cap": {"operating", "under_construction", "planned"},
    "plan_target": {"operating", "idle"},
    "share": {"operating", "idle"},
}


def naive_metal(unit, vocabulary):
    return unit.metal or vocabulary.process_types.get(unit.process_type or "", {}).get("metal")


def naive_scope(provision, unit, metal):
    """The reason it does not apply when a unit-level scope key excludes it, 'missing' when undecidable, else True."""
    scope = provision.scope
    undecided = False
    if scope.unit_age != "any" and provision.effective.from_ is not None:
        reference = unit.approved_on or unit.commissioned_on
        if reference is None:
            age = "new" if unit.status in ("planned", "under_construction") else None
        else:
            age = "new" if reference >= provision.effective.from_ else "existing"
        if age is None:
            undecided = True
        elif age != scope.unit_age:
            return "other_unit_age"
    if scope.enterprise_size == "above_designated":
        if unit.above_designated is None:
            undecided = True
        elif not unit.above_designated:
            return "below_enterprise_size"
    if scope.park_required:
        if unit.in_park is None:
            undecided = True
        elif not unit.in_park:
            return "outside_park"
    return "missing" if undecided else True


def naive_dormant(catalogue, provision, as_of):
    """Why a provision says nothing on the date whatever the unit, or None when it is in force."""
    check = provision.check
    if provision.effective.from_ is not None and as_of < provision.effective.from_:
        return "not_yet_in_force"
    if provision.effective.until is not None and as_of > provision.effective.until:
        return "no_longer_in_force"
    if check.type == "threshold":
        names = [check.parameter, check.deadline]
    elif check.type == "eligibility":
        names = [c.parameter for c in check.conditions] + [check.deadline]
    else:
        names = [check.parameter, check.deadline]
    if any(catalogue.parameter_value(provision.id, name, as_of) is None for name in names if name):
        return "not_yet_in_force"
    return None


def naive_evaluate(catalogue, units, as_of):
    """(rule, subject, verdict, reason of a not_applicable or "") for every verdict."""
    verdicts = []
    vocabulary = catalogue.vocabulary
    rules = catalogue.checkable()
    value = lambda p, name: catalogue.parameter_value(p.id, name, as_of) if name else None  # noqa: E731
    for unit in units:
        metal = naive_metal(unit, vocabulary)
        for provision in rules:
            check = provision.check
            if check.type not in ("threshold", "eligibility", "deadline"):
                continue
            scope = provision.scope
            if scope.metals is not None and metal not in scope.metals:
                continue
            if scope.process_types is not None and unit.process_type not in scope.process_types:
                continue
            if scope.provinces is not None and unit.province not in scope.provinces:
                if scope.metals is not None or scope.process_types is not None:
                    verdicts.append((provision.id, unit.unit_id, "not_applicable", "outside_province"))
                continue
            dormant = naive_dormant(catalogue, provision, as_of)
            if dormant is not None:
                verdicts.append((provision.id, unit.unit_id, "not_applicable", dormant))
                continue
            if unit.status not in (set(check.statuses) if check.statuses else DEFAULTS[check.type]):
                verdicts.append((provision.id, unit.unit_id, "not_applicable", "status_not_covered"))
                continue
            scoped = naive_scope(provision, unit, metal)
            if scoped not in (True, "missing"):
                verdicts.append((provision.id, unit.unit_id, "not_applicable", scoped))
                continue
            if check.type == "deadline":
                deadline = value(provision, check.parameter)
                if scoped == "missing":
                    verdicts.append((provision.id, unit.unit_id, "missing_data", ""))
                    continue
                if unit.status in ("closed", "eliminated") or unit.process_type in (check.alternative or ()):
                    verdict = "pass"
                else:
                    verdict = "pass" if as_of <= deadline else "fail"
                verdicts.append((provision.id, unit.unit_id, verdict, ""))
                continue
            conditions = [(check.measure, check.op, check.parameter)] if check.type == "threshold" else \
                [(c.measure, c.op, c.parameter) for c in check.conditions]
            limits = [value(provision, p) for _, _, p in conditions]
            deadline = value(provision, check.deadline)
            if scoped == "missing":
                verdicts.append((provision.id, unit.unit_id, "missing_data", ""))
                continue
            failed = missing = False
            for (measure, op, _), limit in zip(conditions, limits):
                fact = unit.fact(measure)
                if fact is None:
                    missing = True
                elif not OPS[op](fact, limit):
                    failed = True
            if failed:
                verdict = "pending" if deadline is not None and as_of <= deadline else "fail"
            else:
                verdict = "missing_data" if missing else "pass"
            verdicts.append((provision.id, unit.unit_id, verdict, ""))
    for provision in rules:
        check = provision.check
        if check.type not in ("cap", "plan_target", "share"):
            continue
        group_by = check.group_by or ["province"]
        dormant = naive_dormant(catalogue, provision, as_of)
        if dormant is not None:
            # one not_applicable per group the scope names; none when a grouping key is not named by the scope
            named = {"province": provision.scope.provinces, "metal": provision.scope.metals,
                     "process_type": provision.scope.process_types}
            if all(named.get(g) is not None for g in group_by):
                keys = [""]
                for g in group_by:
                    keys = [f"{key},{g}={v}" if key else f"{g}={v}" for key in keys for v in named[g]]
                verdicts.extend((provision.id, key, "not_applicable", dormant) for key in keys)
            continue
        limit, deadline = value(provision, check.parameter), value(provision, check.deadline)
        statuses = set(check.statuses) if check.statuses else DEFAULTS[check.type]
        groups = defaultdict(list)
        if group_by == ["province"] and provision.scope.provinces is not None:
            for province in provision.scope.provinces:
                groups[f"province={province}"] = []
        undecided = False
        for unit in units:
            if unit.status not in statuses:
                continue
            metal = naive_metal(unit, vocabulary)
            if not naive_scope_plain(provision.scope, unit, metal):
                continue
            scoped = naive_scope(provision, unit, metal)
            if scoped == "missing":
                undecided = True
                continue
            if scoped is not True:
                continue
            key = ",".join(f"{g}={(metal if g == 'metal' else getattr(unit, g)) or ''}" for g in group_by)
            groups[key].append(unit)
        for key, members in groups.items():
            if undecided:
                verdicts.append((provision.id, key, "missing_data", ""))
                continue
            if check.type == "share":
                numerators = [u.fact(check.numerator) for u in members if check.numerator_scope is None
                              or naive_scope_plain(check.numerator_scope, u, naive_metal(u, vocabulary))]
                denominators = [u.fact(check.denominator) for u in members]
                numerators = [n for n in numerators if n is not None]
                denominators = [d for d in denominators if d is not None]
                if not numerators or not sum(denominators, Decimal(0)):
                    verdicts.append((provision.id, key, "missing_data", ""))
                    continue
                measured = sum(numerators, Decimal(0)) * 100 / sum(denominators, Decimal(0))
            else:
                measured = sum((u.fact(check.measure) or Decimal(0) for u in members), Decimal(0))
            if deadline is not None and as_of <= deadline and check.type != "cap":
                verdict = "pending"
            else:
                verdict = "pass" if OPS[check.op](measured, limit) else "fail"
            verdicts.append((provision.id, key, verdict, ""))
    return verdicts


def naive_scope_plain(scope, unit, metal):
    return ((scope.provinces is None or unit.province in scope.provinces)
            and (scope.metals is None or metal in scope.metals)
            and (scope.process_types is None or unit.process_type in scope.process_types))


def verdict_signature(result):
    """The engine's verdicts in the naive peer's form, the reason kept for not_applicable."""
    return [(v.rule_id, v.key[1], v.verdict, v.reason if v.verdict == "not_applicable" else "") for v in result.verdicts]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2019, 6, 30))
    args = parser.parse_args()

    catalogue = load_catalogue()
    started = time.perf_counter()
    units = synthetic_registry(args.units)
    generated = time.perf_counter() - started
    checkable = len(catalogue.checkable())
    print(f"catalogue: {len(catalogue.provisions)} provisions, {checkable} checkable, hash {catalogue.content_hash[:12]}")
    print(f"registry: {len(units):,} synthetic units (generated in {generated:.2f} s), as of {args.as_of}")

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    started, cpu = time.perf_counter(), time.process_time()
    result = Engine(catalogue, args.as_of).evaluate(units)
    engine_seconds, engine_cpu = time.perf_counter() - started, time.process_time() - cpu

    started, cpu = time.perf_counter(), time.process_time()
    naive = naive_evaluate(catalogue, units, args.as_of)
    naive_seconds, naive_cpu = time.perf_counter() - started, time.process_time() - cpu

    engine_verdicts = Counter(verdict_signature(result))
    naive_verdicts = Counter(naive)
    agree = engine_verdicts == naive_verdicts
    print(f"{'evaluator':<28}{'seconds':>10}{'CPU s':>10}{'units/s':>14}{'verdicts':>12}")
    print(f"{'ingot engine (indexed)':<28}{engine_seconds:>10.3f}{engine_cpu:>10.3f}{len(units) / engine_seconds:>14,.0f}"
          f"{len(result.verdicts):>12,}")
    print(f"{'naive per-unit, per-rule':<28}{naive_seconds:>10.3f}{naive_cpu:>10.3f}{len(units) / naive_seconds:>14,.0f}{len(naive):>12,}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"speed-up: {naive_seconds / engine_seconds:.1f}x; verdicts by kind: {dict(sorted(result.counts().items()))}")
    print(f"engine and naive peer agree on every verdict: {agree}")
    if not agree:
        only_engine = engine_verdicts - naive_verdicts
        only_naive = naive_verdicts - engine_verdicts
        print("only in engine:", list(only_engine.items())[:5])
        print("only in naive:", list(only_naive.items())[:5])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
