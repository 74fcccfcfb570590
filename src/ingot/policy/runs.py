"""The compliance service: evaluate the registry as of a date (with what-if overrides), store runs, compare them,
and the regulator's views (elimination list, cap headroom, non-compliance counts, admission check, what-if).

Evaluation always covers the whole registry — a provincial cap is about every unit in the province, whoever asks —
and the reader's scope is applied to the verdicts afterwards (see ``ingot.policy.adapter``).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import replace
from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from functools import lru_cache

from sqlalchemy import func, insert, or_, select
from sqlalchemy.orm import Session

from ingot.core.audit import record_change
from ingot.core.auth import ADMIN, ENTERPRISE, REGULATOR, Principal, division_prefix
from ingot.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from ingot.policy import adapter
from ingot.policy.catalogue import PROVISION_KINDS, Catalogue, Override, load_catalogue, parse_override
from ingot.policy.engine import (
    FAIL,
    NOT_APPLICABLE,
    PASS,
    VERDICTS,
    AdmissionReport,
    Engine,
    EvaluationResult,
    Verdict,
    WhatIfDiff,
    admission_check,
    cap_headroom,
    diff_results,
    elimination_list,
    evaluate,
    exclusion_text,
    noncompliance_counts,
)
from ingot.policy.models import ComplianceRun, ComplianceVerdict

RUN_ROLES = (ADMIN, REGULATOR)
MAX_VERDICT_PAGE = 5000
NONCOMPLIANCE_DIMENSIONS = ("province", "prefecture", "metal", "process_type")


@lru_cache(maxsize=1)
def catalogue() -> Catalogue:
    """The packaged catalogue, validated once per process."""
    return load_catalogue()


# ---------------------------------------------------------------------------------------------------------------
# Catalogue browsing


def select_provisions(cat, *, seed: str | None = None, kind: str | None = None, checkable: bool | None = None, metal: str | None = None):
    """Provisions filtered by seed (file name or its number prefix), kind, checkability and metal."""
    if kind is not None and kind not in PROVISION_KINDS:
        raise InvalidInput(f"未知的条款类别：{kind}（可选 {', '.join(PROVISION_KINDS)}）",
                           f"unknown provision kind {kind!r}; one of {', '.join(PROVISION_KINDS)}", field="kind", code="unknown_kind")
    if metal is not None and metal not in cat.vocabulary.metals:
        raise InvalidInput(f"未知的金属代码：{metal}", f"unknown metal code {metal!r}", field="metal", code="unknown_metal")
    if seed:
        matching = [name for name in cat.documents if name == seed or name.startswith(seed.removesuffix(".txt"))]
        if not matching:
            raise InvalidInput(f"没有种子文件 {seed}（可选 {', '.join(sorted(cat.documents))}）",
                               f"no seed document {seed!r}; one of {', '.join(sorted(cat.documents))}", field="seed", code="unknown_seed")
    return [
        provision for provision in cat.provisions
        if (not seed or provision.citation.seed in matching)
        and (kind is None or provision.kind == kind)
        and (checkable is None or provision.checkable == checkable)
        and (metal is None or (provision.scope.metals is not None and metal in provision.scope.metals)
             or (provision.scope.process_types is not None and any(
                 (cat.vocabulary.process_types.get(p) or {}).get("metal") == metal for p in provision.scope.process_types)))
    ]


def provision_by_id(rule_id: str, cat: Catalogue | None = None):
    """The provision a path names: an unknown id is a resource that does not exist (404), not bad input."""
    cat = cat or catalogue()
    provision = cat.by_id.get(rule_id)
    if provision is None:
        raise NotFound(f"政策目录中没有条款 {rule_id}", f"no provision {rule_id} in the policy catalogue", code="unknown_rule")
    return provision


def provision_summary(provision) -> dict:
    return {
        "id": provision.id, "kind": provision.kind, "checkable": provision.checkable,
        "title": {"zh": provision.title.zh, "en": provision.title.en},
        "seed": provision.citation.seed, "section": provision.citation.section,
    }


def provision_detail(provision) -> dict:
    """Everything about a provision: scope, dated parameters, check, and the quoted citation."""
    return provision.model_dump(mode="json", by_alias=True, exclude_none=True)


# ---------------------------------------------------------------------------------------------------------------
# Input


def parse_as_of(value: str | date | None, *, field: str = "as_of") -> date:
    if isinstance(value, date):
        return value
    if not value:
        raise InvalidInput("请给出评估日期（YYYY-MM-DD）", "an evaluation date (YYYY-MM-DD) is required", field=field, code="required")
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise InvalidInput(
            f"评估日期应为 YYYY-MM-DD 格式：{value!r}", f"the evaluation date must be YYYY-MM-DD: {value!r}", field=field, code="bad_date"
        ) from None


def parse_overrides(texts: Iterable[str] | None, cat: Catalogue | None = None) -> tuple[Override, ...]:
    """``RULE.PARAM=VALUE`` strings → overrides, in a canonical order; one value per parameter."""
    cat = cat or catalogue()
    overrides: dict[tuple[str, str], Override] = {}
    for text in texts or ():
        if not str(text).strip():
            continue
        override = parse_override(str(text), cat)
        key = (override.rule_id, override.parameter)
        if key in overrides and overrides[key] != override:
            raise InvalidInput(
                f"参数 {override.rule_id}.{override.parameter} 被赋予了两个不同的值",
                f"parameter {override.rule_id}.{override.parameter} is given two different values",
                field="set", code="override_twice",
            )
        overrides[key] = override
    return tuple(overrides[key] for key in sorted(overrides))


# ---------------------------------------------------------------------------------------------------------------
# Live evaluation


def evaluate_registry(session: Session, as_of: date, overrides: Sequence[Override] = ()) -> EvaluationResult:
    """Every registry unit on ``as_of`` against the whole catalogue (no scope: aggregates need every unit)."""
    return evaluate(catalogue(), adapter.registry_units(session, as_of), as_of, overrides)


def scoped(principal: Principal, result: EvaluationResult) -> EvaluationResult:
    """The same result with only the verdicts the principal may see."""
    kept = adapter.visible(principal, result.verdicts, result.units)
    return EvaluationResult(result.as_of, result.catalogue_hash, result.overrides, kept, result.units)


def live_result(session: Session, principal: Principal, as_of: date, overrides: Sequence[Override] = ()) -> EvaluationResult:
    return scoped(principal, evaluate_registry(session, as_of, overrides))


def verdict_view(verdict: Verdict, units: dict | None = None, cat: Catalogue | None = None) -> dict:
    """An engine verdict as plain data, with the provision's titles and the unit's names."""
    cat = cat or catalogue()
    view = verdict.as_dict()
    view["measured"] = {name: plain(value) for name, value in verdict.measured.items()}
    view["thresholds"] = {name: plain(value) for name, value in verdict.thresholds.items()}
    view["headroom"] = plain(verdict.headroom)
    provision = cat.by_id.get(verdict.rule_id)
    view["title"] = {"zh": provision.title.zh, "en": provision.title.en} if provision else None
    view["subject"] = verdict.key[1]
    unit = (units or {}).get(verdict.unit_id) if verdict.unit_id is not None else None
    view["unit_name"] = unit.unit_name if unit else ""
    view["enterprise_name"] = unit.enterprise_name if unit else ""
    view["enterprise_id"] = unit.enterprise_id if unit else None
    view["province"] = unit.province if unit else (dict(verdict.group or ()).get("province"))
    return view


def unit_verdicts(session: Session, principal: Principal, unit_id, as_of: date | None = None) -> list[dict]:
    """The verdicts of every per-unit rule on one unit, for the registry's unit page.

    NotFound when the unit is out of the principal's scope; an empty list when it had no status on the date.
    """
    day = as_of or date.today()
    unit = adapter.registry_unit(session, principal, unit_id, day)
    if unit is None:
        return []
    verdicts = Engine(catalogue(), day).evaluate_unit(unit)
    return [verdict_view(verdict, {unit.unit_id: unit}) for verdict in verdicts]


def elimination(session: Session, principal: Principal, as_of: date, overrides: Sequence[Override] = ()):
    return elimination_list(live_result(session, principal, as_of, overrides))


def headroom(session: Session, principal: Principal, as_of: date, overrides: Sequence[Override] = ()):
    return cap_headroom(live_result(session, principal, as_of, overrides))


def noncompliance(session: Session, principal: Principal, as_of: date, overrides: Sequence[Override] = ()) -> dict:
    """Verdict counts per province, prefecture, metal and process type, as plain {dimension: {value: {verdict: n}}}."""
    table = noncompliance_counts(live_result(session, principal, as_of, overrides), NONCOMPLIANCE_DIMENSIONS)
    return {dimension: {value: dict(counter) for value, counter in sorted(values.items())} for dimension, values in table.items()}


def what_if(session: Session, principal: Principal, as_of: date, overrides: Sequence[Override]) -> WhatIfDiff:
    """Baseline against the overridden parameters, within the principal's scope."""
    if not overrides:
        raise InvalidInput("假设分析至少需要一项参数覆盖（规则.参数=值）", "a what-if needs at least one override (RULE.PARAM=VALUE)",
                           field="set", code="no_override")
    units = adapter.registry_units(session, as_of)
    baseline = scoped(principal, evaluate(catalogue(), units, as_of))
    scenario = scoped(principal, evaluate(catalogue(), units, as_of, overrides))
    return diff_results(baseline, scenario)


def admission(session: Session, principal: Principal, proposed: dict, as_of: date, overrides: Sequence[Override] = ()) -> AdmissionReport:
    """Which rules allow or block a proposed unit; caps are judged with it added to every registered unit."""
    unit = adapter.proposed_unit(proposed)
    if principal.role == ENTERPRISE and not principal.sees_everything:
        # An enterprise may only try a project of its own: the proposal is filed under its enterprise.
        unit = replace(unit, enterprise_id=str(principal.enterprise_id))
    return admission_check(catalogue(), unit, as_of, adapter.registry_units(session, as_of), overrides)


# ---------------------------------------------------------------------------------------------------------------
# Stored runs


def _require_run_role(principal: Principal) -> None:
    if principal.role not in RUN_ROLES:
        raise Forbidden("仅管理员和监管人员可保存合规检查", "only administrators and regulators may store compliance runs", code="forbidden_role")


def plain(value) -> str | None:
    """An exact number without the trailing zeros a database column's scale adds (150.000000 → 150)."""
    if value is None:
        return None
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        normal = value.normalize()
        return format(normal if normal != normal.to_integral() else normal.quantize(Decimal(1)), "f")
    return str(value)


def _verdict_row(run_id: int, verdict: Verdict, units: dict) -> dict:
    """Column values of one stored verdict (rows are inserted in bulk: a run over a large registry has many)."""
    unit = units.get(verdict.unit_id) if verdict.unit_id is not None else None
    group = dict(verdict.group or ()) or None
    geography = group or {}
    return dict(
        run_id=run_id,
        rule_id=verdict.rule_id,
        check_type=verdict.check_type,
        verdict=verdict.verdict,
        reason=verdict.reason,
        subject=verdict.key[1],
        unit_id=int(verdict.unit_id) if verdict.unit_id is not None and verdict.unit_id.isdigit() else None,
        enterprise_id=int(unit.enterprise_id) if unit and unit.enterprise_id.isdigit() else (
            int(geography["enterprise_id"]) if str(geography.get("enterprise_id", "")).isdigit() else None),
        enterprise_name=unit.enterprise_name if unit else "",
        unit_name=unit.unit_name if unit else "",
        group=group,
        province=unit.province if unit else geography.get("province"),
        prefecture=unit.prefecture if unit else geography.get("prefecture"),
        metal=(unit.metal if unit else geography.get("metal")) or None,
        process_type=(unit.process_type if unit else geography.get("process_type")) or None,
        measured={name: plain(value) for name, value in verdict.measured.items()},
        thresholds={name: plain(value) for name, value in verdict.thresholds.items()},
        units=dict(verdict.units),
        matched=list(verdict.matched),
        missing=list(verdict.missing),
        excluded=dict(verdict.excluded) if verdict.excluded else None,
        capacities={product: plain(amount) for product, amount in (unit.capacities.items() if unit else ())},
        due=verdict.due,
        headroom=verdict.headroom,
        citation_seed=verdict.citation.seed,
        citation_section=verdict.citation.section,
        citation_quote=verdict.citation.quote,
    )


def run_view(run: ComplianceRun, counts: dict | None = None, unit_count: int | None = None) -> dict:
    return {
        "id": run.id,
        "catalogue_hash": run.catalogue_hash,
        "as_of": run.as_of.isoformat(),
        "overrides": list(run.overrides or []),
        "label": run.label,
        "created_by": run.created_by,
        "created_at": run.created_at.isoformat(),
        "unit_count": run.unit_count if unit_count is None else unit_count,
        "counts": dict(counts if counts is not None else run.counts or {}),
    }


def create_run(
    session: Session, principal: Principal, as_of: date, overrides: Sequence[Override] = (), label: str = ""
) -> dict:
    """Evaluate the registry as of the date and store the run with every verdict and the catalogue's hash."""
    _require_run_role(principal)
    if len(label or "") > 200:
        raise InvalidInput("运行说明最长 200 字", "the run label may have at most 200 characters", field="label", code="too_long")
    result = evaluate_registry(session, as_of, overrides)
    run = ComplianceRun(
        catalogue_hash=result.catalogue_hash,
        as_of=as_of,
        overrides=[str(override) for override in overrides],
        label=label or "",
        created_by_id=principal.user_id,
        created_by=principal.username,
        unit_count=len(result.units),
        counts={verdict: count for verdict, count in sorted(result.counts().items())},
    )
    session.add(run)
    session.flush()
    rows = [_verdict_row(run.id, verdict, result.units) for verdict in result.verdicts]
    if rows:
        session.execute(insert(ComplianceVerdict), rows)
    record_change(session, principal, "compliance_run", run.id, "create", None, run_view(run), division_code=principal.division_code)
    return get_run(session, principal, run.id)


def _run(session: Session, run_id) -> ComplianceRun:
    try:
        run = session.get(ComplianceRun, int(run_id))
    except (TypeError, ValueError):
        run = None
    if run is None:
        raise NotFound(f"合规检查记录不存在：{run_id}", f"no such compliance run: {run_id}", field="run_id")
    return run


def row_visible(principal: Principal, row: ComplianceVerdict) -> bool:
    if row.unit_id is not None:
        return adapter.sees_unit_verdict(principal, row.enterprise_id, row.prefecture or row.province)
    return adapter.sees_group_verdict(principal, row.group)


def _unit_scope_clause(principal: Principal):
    """SQL narrowing of per-unit verdict rows to the principal's scope (None: no narrowing needed)."""
    if principal.sees_everything:
        return None
    if principal.role == ENTERPRISE:
        return ComplianceVerdict.enterprise_id == (principal.enterprise_id or -1)
    if principal.role == REGULATOR and principal.division_code:
        return ComplianceVerdict.prefecture.startswith(division_prefix(principal.division_code))
    return ComplianceVerdict.id == -1


def _visible_rows(session: Session, principal: Principal, run_id: int, filters=()) -> list[ComplianceVerdict]:
    statement = select(ComplianceVerdict).where(ComplianceVerdict.run_id == run_id, *filters)
    clause = _unit_scope_clause(principal)
    if clause is not None:
        # Per-unit rows are narrowed in SQL; aggregate rows are few and are judged by row_visible.
        statement = statement.where(or_(ComplianceVerdict.unit_id.is_(None), clause))
    rows = session.scalars(statement.order_by(ComplianceVerdict.id))
    return [row for row in rows if row_visible(principal, row)]


def _scoped_unit_counts(session: Session, principal: Principal, run_ids: list[int]) -> dict[int, int]:
    """Per run, how many units in the principal's scope the run judged (the stored total covers the whole country)."""
    statement = (
        select(ComplianceVerdict.run_id, func.count(func.distinct(ComplianceVerdict.unit_id)))
        .where(ComplianceVerdict.run_id.in_(run_ids), ComplianceVerdict.unit_id.is_not(None), _unit_scope_clause(principal))
        .group_by(ComplianceVerdict.run_id)
    )
    found = dict(session.execute(statement).all())
    return {run_id: found.get(run_id, 0) for run_id in run_ids}


def _scoped_counts(session: Session, principal: Principal, run_ids: list[int]) -> dict[int, dict[str, int]]:
    """Verdict counts per run as the principal may see them, counted in SQL for the (many) per-unit rows."""
    counts: dict[int, Counter] = {run_id: Counter() for run_id in run_ids}
    if not run_ids:
        return {}
    per_unit = (
        select(ComplianceVerdict.run_id, ComplianceVerdict.verdict, func.count())
        .where(ComplianceVerdict.run_id.in_(run_ids), ComplianceVerdict.unit_id.is_not(None), _unit_scope_clause(principal))
        .group_by(ComplianceVerdict.run_id, ComplianceVerdict.verdict)
    )
    for run_id, verdict, count in session.execute(per_unit):
        counts[run_id][verdict] += count
    aggregates = select(ComplianceVerdict).where(ComplianceVerdict.run_id.in_(run_ids), ComplianceVerdict.unit_id.is_(None))
    for row in session.scalars(aggregates):
        if row_visible(principal, row):
            counts[row.run_id][row.verdict] += 1
    return {run_id: dict(sorted(counter.items())) for run_id, counter in counts.items()}


def get_run(session: Session, principal: Principal, run_id) -> dict:
    """A stored run with its verdict counts as the principal may see them."""
    run = _run(session, run_id)
    if principal.sees_everything:
        return run_view(run)
    return run_view(run, _scoped_counts(session, principal, [run.id])[run.id], _scoped_unit_counts(session, principal, [run.id])[run.id])


def list_runs(session: Session, principal: Principal, *, limit: int = 50, offset: int = 0) -> list[dict]:
    if not 1 <= limit <= 500 or offset < 0:
        raise InvalidInput("分页参数超出范围（1–500）", "paging out of range (limit 1-500, offset >= 0)", field="limit", code="bad_page")
    stored = list(session.scalars(select(ComplianceRun).order_by(ComplianceRun.id.desc()).limit(limit).offset(offset)))
    if principal.sees_everything:
        return [run_view(run) for run in stored]
    ids = [run.id for run in stored]
    counts, units = _scoped_counts(session, principal, ids), _scoped_unit_counts(session, principal, ids)
    return [run_view(run, counts[run.id], units[run.id]) for run in stored]


def stored_verdict_view(row: ComplianceVerdict, cat: Catalogue | None = None) -> dict:
    cat = cat or catalogue()
    provision = cat.by_id.get(row.rule_id)
    return {
        "rule_id": row.rule_id,
        "title": {"zh": provision.title.zh, "en": provision.title.en} if provision else None,
        "verdict": row.verdict,
        "check_type": row.check_type,
        "reason": row.reason,
        "subject": row.subject,
        "unit_id": row.unit_id,
        "unit_name": row.unit_name,
        "enterprise_id": row.enterprise_id,
        "enterprise_name": row.enterprise_name,
        "group": row.group,
        "province": row.province,
        "prefecture": row.prefecture,
        "metal": row.metal,
        "process_type": row.process_type,
        "measured": dict(row.measured or {}),
        "thresholds": dict(row.thresholds or {}),
        "units": dict(row.units or {}),
        "matched": list(row.matched or []),
        "missing": list(row.missing or []),
        "excluded": dict(row.excluded) if row.excluded else None,
        "capacities": dict(row.capacities or {}),
        "due": row.due.isoformat() if row.due else None,
        "headroom": plain(row.headroom),
        "citation": {"seed": row.citation_seed, "section": row.citation_section, "quote": row.citation_quote},
    }


def run_verdicts(
    session: Session,
    principal: Principal,
    run_id,
    *,
    verdict: str | None = None,
    rule_id: str | None = None,
    unit_id: int | None = None,
    province: str | None = None,
    metal: str | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[dict]:
    """The stored verdicts of a run that the principal may see, filtered."""
    run = _run(session, run_id)
    if verdict is not None and verdict not in VERDICTS:
        raise InvalidInput(f"未知的结论：{verdict}（可选 {', '.join(VERDICTS)}）", f"unknown verdict {verdict!r}; one of {', '.join(VERDICTS)}",
                           field="verdict", code="unknown_verdict")
    if not 1 <= limit <= MAX_VERDICT_PAGE or offset < 0:
        raise InvalidInput(f"分页参数超出范围（1–{MAX_VERDICT_PAGE}）", f"paging out of range (limit 1-{MAX_VERDICT_PAGE}, offset >= 0)",
                           field="limit", code="bad_page")
    filters = [
        column == value
        for column, value in (
            (ComplianceVerdict.verdict, verdict), (ComplianceVerdict.rule_id, rule_id), (ComplianceVerdict.unit_id, unit_id),
            (ComplianceVerdict.province, province), (ComplianceVerdict.metal, metal),
        )
        if value is not None
    ]
    if principal.sees_everything:
        statement = select(ComplianceVerdict).where(ComplianceVerdict.run_id == run.id, *filters)
        selected = list(session.scalars(statement.order_by(ComplianceVerdict.id).limit(limit).offset(offset)))
    else:
        selected = _visible_rows(session, principal, run.id, filters)[offset:offset + limit]
    cat = catalogue()
    return [stored_verdict_view(row, cat) for row in selected]


def _capacity_of(rows: Iterable[ComplianceVerdict]) -> dict[str, str]:
    """Registered capacity of the distinct units among the rows, by product (each unit counted once)."""
    seen: set[int] = set()
    totals: dict[str, Decimal] = {}
    for row in rows:
        if row.unit_id is None or row.unit_id in seen:
            continue
        seen.add(row.unit_id)
        for product, amount in (row.capacities or {}).items():
            totals[product] = totals.get(product, Decimal(0)) + Decimal(amount)
    return {product: plain(total) for product, total in sorted(totals.items())}


def compare_runs(session: Session, principal: Principal, base_id, other_id) -> dict:
    """What changed from one stored run to another: newly failing, newly passing, other changes, capacity involved."""
    base, other = _run(session, base_id), _run(session, other_id)
    before = {(row.rule_id, row.subject): row for row in _visible_rows(session, principal, base.id)}
    after = {(row.rule_id, row.subject): row for row in _visible_rows(session, principal, other.id)}
    failing, passing, changed = [], [], []
    for key, row in after.items():
        old = before[key].verdict if key in before else NOT_APPLICABLE
        if old == row.verdict:
            continue
        (failing if row.verdict == FAIL else passing if row.verdict == PASS else changed).append((old, row))
    for key, row in before.items():
        if key not in after and row.verdict != NOT_APPLICABLE:
            changed.append((row.verdict, _gone(row)))
    cat = catalogue()

    def change(old: str, row: ComplianceVerdict) -> dict:
        return {"before": old, "after": row.verdict, **stored_verdict_view(row, cat)}

    return {
        "base": get_run(session, principal, base.id),
        "other": get_run(session, principal, other.id),
        "same_catalogue": base.catalogue_hash == other.catalogue_hash,
        "newly_failing": [change(old, row) for old, row in failing],
        "newly_passing": [change(old, row) for old, row in passing],
        "other_changes": [change(old, row) for old, row in changed],
        "capacity_affected": _capacity_of(row for _old, row in failing),
        "capacity_relieved": _capacity_of(row for _old, row in passing),
    }


def _gone(row: ComplianceVerdict) -> ComplianceVerdict:
    """A stand-in for a verdict the later run no longer gives (the rule stopped applying)."""
    copy = ComplianceVerdict(**{column.name: getattr(row, column.name) for column in ComplianceVerdict.__table__.columns})
    copy.verdict, copy.reason, copy.excluded = NOT_APPLICABLE, "not_in_run", None
    return copy


def reproduce_run(session: Session, principal: Principal, run_id) -> dict:
    """Evaluate a stored run again (same catalogue, date and overrides) and report any verdict that differs.

    A run can only be reproduced by the catalogue it was made with; the registry's dated facts make the inputs
    the same unless someone back-dated a change, which the differences then show.
    """
    _require_run_role(principal)
    run = _run(session, run_id)
    cat = catalogue()
    if cat.content_hash != run.catalogue_hash:
        raise Conflict(
            f"政策目录已变更（运行时 {run.catalogue_hash[:12]}，当前 {cat.content_hash[:12]}），无法原样复现",
            f"the catalogue changed (run {run.catalogue_hash[:12]}, now {cat.content_hash[:12]}); the run cannot be reproduced as it was",
            field="run_id", code="catalogue_changed",
        )
    overrides = parse_overrides(run.overrides, cat)
    result = scoped(principal, evaluate_registry(session, run.as_of, overrides))
    stored = {(row.rule_id, row.subject): row.verdict for row in _visible_rows(session, principal, run.id)}
    fresh = {verdict.key: verdict.verdict for verdict in result.verdicts}
    differences = [
        {"rule_id": rule, "subject": subject, "stored": stored.get((rule, subject)), "now": fresh.get((rule, subject))}
        for rule, subject in sorted(set(stored) | set(fresh))
        if stored.get((rule, subject)) != fresh.get((rule, subject))
    ]
    return {"run": get_run(session, principal, run.id), "identical": not differences, "differences": differences}


def run_result(session: Session, principal: Principal, run_id) -> tuple[dict, list[dict]]:
    """A run and every verdict of it the principal may see, unpaged (for exports)."""
    run = _run(session, run_id)
    cat = catalogue()
    return get_run(session, principal, run.id), [stored_verdict_view(row, cat) for row in _visible_rows(session, principal, run.id)]


# ---------------------------------------------------------------------------------------------------------------
# Plain-data views shared by the API, the pages and the CLI


def citation_view(citation) -> dict:
    return {"seed": citation.seed, "section": citation.section, "quote": citation.quote}


def elimination_view(entry) -> dict:
    return {
        "unit_id": entry.unit_id, "enterprise_name": entry.enterprise_name, "unit_name": entry.unit_name,
        "province": entry.province, "prefecture": entry.prefecture, "process_type": entry.process_type,
        "rule_id": entry.rule_id, "due": entry.due.isoformat(), "overdue": entry.overdue,
        "capacities": {product: plain(amount) for product, amount in sorted(entry.capacities.items())},
        "citation": citation_view(entry.citation),
    }


def headroom_view(row) -> dict:
    return {
        "rule_id": row.rule_id, "check_type": row.check_type, "group": dict(row.group), "measure": row.measure,
        "total": plain(row.total), "limit": plain(row.limit), "unit": row.unit, "headroom": plain(row.headroom),
        "verdict": row.verdict, "due": row.due.isoformat() if row.due else None, "citation": citation_view(row.citation),
    }


def what_if_view(diff: WhatIfDiff, cat: Catalogue | None = None) -> dict:
    cat = cat or catalogue()

    def change(item) -> dict:
        view = verdict_view(item.verdict, diff.scenario.units, cat)
        return {"before": item.before, "after": item.after, **view}

    return {
        "as_of": diff.scenario.as_of.isoformat(),
        "overrides": [str(override) for override in diff.scenario.overrides],
        "newly_failing": [change(item) for item in diff.newly_failing],
        "newly_passing": [change(item) for item in diff.newly_passing],
        "other_changes": [change(item) for item in diff.other_changes],
        "capacity_affected": {product: plain(amount) for product, amount in sorted(diff.capacity_affected.items())},
        "capacity_relieved": {product: plain(amount) for product, amount in sorted(diff.capacity_relieved.items())},
    }


def admission_view(report: AdmissionReport, principal: Principal) -> dict:
    """The decision and each finding; an enterprise user is not shown other enterprises' totals behind a cap."""
    hide_totals = principal.role == ENTERPRISE and not principal.sees_everything
    findings = []
    for finding in report.findings:
        item = {
            "rule_id": finding.rule_id, "effect": finding.effect, "title": {"zh": finding.title_zh, "en": finding.title_en},
            "citation": citation_view(finding.citation), "verdict": None,
        }
        if finding.verdict is not None:
            verdict = finding.verdict
            aggregate = verdict.unit_id is None or verdict.check_type in ("cap", "share", "plan_target")
            item["verdict"] = {
                "verdict": verdict.verdict, "reason": verdict.reason, "check_type": verdict.check_type,
                "measured": {} if hide_totals and aggregate else {k: plain(v) for k, v in verdict.measured.items()},
                "thresholds": {k: plain(v) for k, v in verdict.thresholds.items()},
                "units": dict(verdict.units), "matched": list(verdict.matched), "missing": list(verdict.missing),
                "excluded": dict(verdict.excluded) if verdict.excluded else None,
                "due": verdict.due.isoformat() if verdict.due else None,
                "headroom": None if hide_totals and aggregate else plain(verdict.headroom),
            }
        findings.append(item)
    return {"decision": report.decision, "findings": findings}
