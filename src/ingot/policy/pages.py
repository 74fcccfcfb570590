"""Web pages of the policy context: the catalogue browser (/policy) and the compliance pages (/compliance…).

Pages call the same services as the API; every page needs a login and shows only what the caller's scope allows.
Form input errors are shown on the form itself, in the reader's language.
"""
from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Annotated
from decimal import Decimal
from importlib.resources import files

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from ingot.api.deps import MAX_RECORD_ID, UNIT_OF_WORK, RecordId, current_principal, language
from ingot.core.auth import Principal
from ingot.core.errors import DomainError, InvalidInput
from ingot.policy import runs
from ingot.policy.catalogue import PROVISION_KINDS
from ingot.policy.engine import VERDICTS
from ingot.registry.service import division_rows, today
from ingot.web.charts import stacked_bars
from ingot.web.rendering import add_template_dir, render

router = APIRouter(include_in_schema=False)
add_template_dir(files("ingot.policy") / "templates")

# UI wording of this context's pages, zh-CN first; kept here so the shared messages file stays untouched.
TEXT = {
    "catalogue": ("政策目录", "Policy catalogue"),
    "compliance": ("合规检查", "Compliance"),
    "seed": ("文件", "Document"),
    "kind": ("类别", "Kind"),
    "checkable": ("可检查", "Checkable"),
    "qualitative": ("定性条款", "Qualitative"),
    "provisions": ("条款", "provisions"),
    "section": ("条文", "Section"),
    "parameter": ("参数", "Parameter"),
    "from": ("自", "From"),
    "scope": ("适用范围", "Scope"),
    "effective": ("有效期", "In force"),
    "check": ("检查方式", "Check"),
    "as_of": ("评估日期", "Evaluation date"),
    "evaluate": ("评估", "Evaluate"),
    "verdicts": ("结论", "Verdicts"),
    "by_province": ("各省结论", "Verdicts by province"),
    "by_metal": ("各金属结论", "Verdicts by metal"),
    "by_prefecture": ("各市州结论", "Verdicts by prefecture"),
    "by_process": ("各工艺结论", "Verdicts by process type"),
    "elimination": ("淘汰清单", "Elimination list"),
    "headroom": ("产能控制余量", "Cap headroom"),
    "what_if": ("假设分析", "What-if"),
    "admission": ("新建项目准入检查", "Admission check"),
    "runs": ("合规运行记录", "Compliance runs"),
    "rule": ("条款", "Rule"),
    "subject": ("对象", "Subject"),
    "measured": ("实测", "Measured"),
    "threshold": ("限值", "Threshold"),
    "due": ("期限", "Due"),
    "overdue": ("已逾期", "Overdue"),
    "why": ("适用原因", "Why it applies"),
    "capacity": ("产能", "Capacity"),
    "total": ("登记合计", "Registered total"),
    "limit": ("限值", "Limit"),
    "group": ("分组", "Group"),
    "overrides": ("参数覆盖（每行一项：条款.参数=值）", "Overrides (one per line: RULE.PARAM=VALUE)"),
    "newly_failing": ("新增不合规", "Newly failing"),
    "newly_passing": ("新增合规", "Newly passing"),
    "other_changes": ("其他变化", "Other changes"),
    "capacity_affected": ("受影响产能", "Capacity affected"),
    "capacity_relieved": ("解除产能", "Capacity relieved"),
    "before": ("基线", "Baseline"),
    "after": ("假设", "Scenario"),
    "decision": ("结论", "Decision"),
    "effect": ("作用", "Effect"),
    "params": ("技术参数（每行一项：代码=值）", "Parameters (one per line: code=value)"),
    "capacities": ("产能（每行一项：产品=吨/年）", "Capacities (one per line: product=t/a)"),
    "declarations": ("绩效申报（每行一项：指标=值）", "Declarations (one per line: measure=value)"),
    "approved_on": ("批准日期", "Approved on"),
    "in_park": ("位于园区", "In an industrial park"),
    "above_designated": ("规模以上企业", "Above designated size"),
    "create_run": ("保存一次合规运行", "Store a compliance run"),
    "label": ("说明", "Label"),
    "compare_with": ("与另一运行比较", "Compare with run"),
    "catalogue_hash": ("目录哈希", "Catalogue hash"),
    "created_by": ("执行人", "Run by"),
    "export": ("导出 Excel", "Export to Excel"),
    "unit_verdicts": ("本单元合规结论", "Compliance of this unit"),
    "no_verdicts": ("该日期没有适用于本单元的可检查条款", "No checkable rule applies to this unit on that date"),
    "considered_not_applicable": ("已考虑但不适用的条款", "Rules considered that do not apply"),
    "excl_province": ("所在省份不在本条款适用范围内", "the unit's province is outside the rule's provinces"),
    "excl_effective_from": ("评估日期早于条款生效日", "the evaluation date is before the rule takes effect"),
    "excl_effective_from_date": ("生效日", "in force from"),
    "excl_parameter_from": ("评估日期早于参数生效日", "the evaluation date is before the rule's parameter has a value"),
    "excl_parameter_from_date": ("参数生效日", "parameter from"),
    "excl_effective_until": ("评估日期晚于条款失效日", "the evaluation date is after the rule ends"),
    "excl_effective_until_date": ("失效日", "in force until"),
    "excl_status": ("本条款不检查该状态的单元", "the rule does not judge units in this status"),
    "excl_unit_age": ("新建与现有单元分别适用不同条款", "the unit belongs to the other age class (new / existing)"),
    "excl_above_designated": ("本条款仅适用于规模以上企业", "the rule covers above-designated-size enterprises only"),
    "excl_in_park": ("本条款仅适用于园区内的单元", "the rule covers units in industrial parks only"),
    "unit_value": ("本单元", "unit"),
    "rule_scope": ("条款范围", "rule"),
    "divides_on": ("新旧分界日", "dividing date"),
    "age_new": ("新建", "new"),
    "age_existing": ("现有", "existing"),
    "does_not_apply": ("不适用", "does not apply"),
    "none": ("无", "None"),
    "same_catalogue": ("同一政策目录", "Same catalogue"),
    "reproduce": ("复现", "Reproduce"),
    "identical": ("复现结果与保存结果一致", "The re-run gives the stored verdicts"),
    "differs": ("复现结果与保存结果不同", "The re-run differs from the stored verdicts"),
    "allows": ("允许", "allows"),
    "blocks": ("阻止", "blocks"),
    "needs_data": ("缺数据", "needs data"),
    "to_review": ("需审查", "to review"),
    "allowed": ("准入", "allowed"),
    "blocked": ("不予准入", "blocked"),
    "incomplete": ("资料不全", "incomplete"),
    "pass": ("合规", "pass"),
    "fail": ("不合规", "fail"),
    "not_applicable": ("不适用", "not applicable"),
    "missing_data": ("缺少数据", "missing data"),
    "pending": ("未到期", "pending"),
}


def text(lang: str):
    return lambda key: TEXT.get(key, (key, key))[1 if lang == "en" else 0]


def _page(request: Request, template: str, principal: Principal, lang: str, status_code: int = 200, **context):
    vocabulary = runs.catalogue().vocabulary
    return render(request, template, principal, lang, status_code=status_code, tt=text(lang), vocabulary=vocabulary,
                  verdict_names=VERDICTS, **context)


def _as_of(value: str | None) -> date:
    return runs.parse_as_of(value) if value else today()


def _lines(raw: str | None) -> list[str]:
    return [line.strip() for line in (raw or "").replace(",", "\n").splitlines() if line.strip()]


# -- catalogue ---------------------------------------------------------------------------------------------------


@router.get("/policy")
def catalogue_page(
    request: Request,
    seed: str | None = None,
    kind: str | None = None,
    metal: str | None = None,
    checkable: str | None = None,
    principal: Principal = Depends(current_principal),
    lang: str = Depends(language),
):
    cat = runs.catalogue()
    wanted = {"yes": True, "no": False}.get(checkable or "")
    error = None
    try:
        provisions = runs.select_provisions(cat, seed=seed or None, kind=kind or None, checkable=wanted, metal=metal or None)
    except DomainError as problem:
        provisions, error = [], problem.message(lang)
    return _page(request, "policy_catalogue.html", principal, lang, status_code=422 if error else 200, cat=cat, provisions=provisions,
                 kinds=PROVISION_KINDS, error=error,
                 chosen={"seed": seed or "", "kind": kind or "", "metal": metal or "", "checkable": checkable or ""})


@router.get("/policy/provisions/{rule_id}")
def provision_page(rule_id: str, request: Request, principal: Principal = Depends(current_principal), lang: str = Depends(language)):
    cat = runs.catalogue()
    provision = runs.provision_by_id(rule_id, cat)
    return _page(request, "policy_provision.html", principal, lang, cat=cat, provision=provision)


# -- compliance dashboard ----------------------------------------------------------------------------------------


# Worst first, so the palette's first colours (red, blue, green, amber) fall on fail, pending, pass, missing data.
CHART_ORDER = ("fail", "pending", "pass", "missing_data", "not_applicable")


def _chart(counts: dict[str, dict[str, int]], names, tt) -> str:
    """Stacked bars of verdicts; every row carries every verdict so each verdict keeps its colour on every chart."""
    rows = [(names(value), [(tt(verdict), Decimal(by_verdict.get(verdict, 0))) for verdict in CHART_ORDER])
            for value, by_verdict in counts.items()]
    return stacked_bars(rows, unit="") if rows else ""


def division_names(lang: str) -> dict[str, str]:
    return {code: (en if lang == "en" else zh) for code, zh, en, _level, _parent in division_rows()}


@router.get("/compliance")
def dashboard(
    request: Request,
    as_of: str | None = None,
    principal: Principal = Depends(current_principal),
    lang: str = Depends(language),
    session: Session = UNIT_OF_WORK,
):
    day = _as_of(as_of)
    result = runs.live_result(session, principal, day)
    counts = runs.noncompliance_counts(result, runs.NONCOMPLIANCE_DIMENSIONS)
    vocabulary = runs.catalogue().vocabulary
    en = lang == "en"

    def province_name(code: str) -> str:
        entry = vocabulary.provinces.get(code) or {}
        return entry.get("en" if en else "zh", code or "—")

    def metal_name(code: str) -> str:
        entry = vocabulary.metals.get(code) or {}
        return entry.get("en" if en else "zh", code or "—")

    plain_counts = {dimension: {value: dict(counter) for value, counter in sorted(values.items())} for dimension, values in counts.items()}
    totals = Counter(verdict.verdict for verdict in result.verdicts)
    return _page(
        request, "policy_dashboard.html", principal, lang, as_of=day, totals=totals, counts=plain_counts,
        province_chart=_chart(plain_counts["province"], province_name, text(lang)),
        metal_chart=_chart(plain_counts["metal"], metal_name, text(lang)), divisions=division_names(lang),
        failing=[runs.verdict_view(v, result.units) for v in result.verdicts if v.verdict == "fail"][:200],
    )


@router.get("/compliance/elimination")
def elimination_page(
    request: Request, as_of: str | None = None, principal: Principal = Depends(current_principal),
    lang: str = Depends(language), session: Session = UNIT_OF_WORK,
):
    day = _as_of(as_of)
    entries = [runs.elimination_view(entry) for entry in runs.elimination(session, principal, day)]
    return _page(request, "policy_elimination.html", principal, lang, as_of=day, entries=entries, divisions=division_names(lang))


@router.get("/compliance/headroom")
def headroom_page(
    request: Request, as_of: str | None = None, principal: Principal = Depends(current_principal),
    lang: str = Depends(language), session: Session = UNIT_OF_WORK,
):
    day = _as_of(as_of)
    rows = [runs.headroom_view(row) for row in runs.headroom(session, principal, day)]
    return _page(request, "policy_headroom.html", principal, lang, as_of=day, rows=rows)


@router.get("/compliance/what-if")
def what_if_page(
    request: Request, as_of: str | None = None, overrides: str | None = None, principal: Principal = Depends(current_principal),
    lang: str = Depends(language), session: Session = UNIT_OF_WORK,
):
    diff, error = None, None
    if overrides is not None:
        try:
            day = _as_of(as_of)
            diff = runs.what_if_view(runs.what_if(session, principal, day, runs.parse_overrides(_lines(overrides))))
        except DomainError as problem:
            error = problem.message(lang)
    return _page(request, "policy_what_if.html", principal, lang, status_code=422 if error else 200, as_of=as_of or today().isoformat(),
                 overrides=overrides or "", diff=diff, error=error)


def _pairs(raw: str | None, field: str) -> dict[str, str]:
    pairs = {}
    for line in _lines(raw):
        code, sep, value = line.partition("=")
        if not sep or not code.strip() or not value.strip():
            raise InvalidInput(f"{field}：“{line}”应写成 代码=值", f"{field}: {line!r} must read code=value", field=field, code="pair_syntax")
        pairs[code.strip()] = value.strip()
    return pairs


@router.get("/compliance/admission")
def admission_page(
    request: Request,
    as_of: str | None = None,
    province: str | None = None,
    process_type: str | None = None,
    approved_on: str | None = None,
    params: str | None = None,
    capacities: str | None = None,
    declarations: str | None = None,
    in_park: str | None = None,
    above_designated: str | None = None,
    principal: Principal = Depends(current_principal),
    lang: str = Depends(language),
    session: Session = UNIT_OF_WORK,
):
    report, error = None, None
    form = {"as_of": as_of or today().isoformat(), "province": province or "", "process_type": process_type or "",
            "approved_on": approved_on or "", "params": params or "", "capacities": capacities or "", "declarations": declarations or "",
            "in_park": bool(in_park), "above_designated": bool(above_designated)}
    if province is not None:
        try:
            proposal = {"province": province, "process_type": process_type or None, "status": "planned",
                        "params": _pairs(params, "params"), "capacities": _pairs(capacities, "capacities"),
                        "declarations": _pairs(declarations, "declarations"), "in_park": bool(in_park),
                        "above_designated": bool(above_designated)}
            if approved_on:
                proposal["approved_on"] = approved_on
            report = runs.admission_view(runs.admission(session, principal, proposal, _as_of(as_of)), principal)
        except DomainError as problem:
            error = problem.message(lang)
    return _page(request, "policy_admission.html", principal, lang, status_code=422 if error else 200, form=form, report=report, error=error)


# -- stored runs -------------------------------------------------------------------------------------------------


@router.get("/compliance/runs")
def runs_page(request: Request, principal: Principal = Depends(current_principal), lang: str = Depends(language),
              session: Session = UNIT_OF_WORK):
    return _page(request, "policy_runs.html", principal, lang, runs_list=runs.list_runs(session, principal, limit=100),
                 may_run=principal.role in runs.RUN_ROLES, today=today().isoformat(), error=None)


@router.post("/compliance/runs")
def create_run_page(
    request: Request,
    as_of: str = Form(""),
    overrides: str = Form(""),
    label: str = Form(""),
    principal: Principal = Depends(current_principal),
    lang: str = Depends(language),
    session: Session = UNIT_OF_WORK,
):
    try:
        run = runs.create_run(session, principal, runs.parse_as_of(as_of), runs.parse_overrides(_lines(overrides)), label)
    except DomainError as problem:
        session.rollback()
        return _page(request, "policy_runs.html", principal, lang, status_code=problem.status_code,
                     runs_list=runs.list_runs(session, principal, limit=100), may_run=principal.role in runs.RUN_ROLES,
                     today=as_of or today().isoformat(), error=problem.message(lang))
    return RedirectResponse(f"/compliance/runs/{run['id']}", status_code=303)


@router.get("/compliance/runs/{run_id}")
def run_page(
    run_id: RecordId, request: Request, verdict: str | None = None, rule_id: str | None = None,
    principal: Principal = Depends(current_principal), lang: str = Depends(language), session: Session = UNIT_OF_WORK,
):
    run = runs.get_run(session, principal, run_id)
    verdicts = runs.run_verdicts(session, principal, run_id, verdict=verdict or None, rule_id=rule_id or None, limit=runs.MAX_VERDICT_PAGE)
    others = [other for other in runs.list_runs(session, principal, limit=100) if other["id"] != run_id]
    return _page(request, "policy_run.html", principal, lang, run=run, verdicts=verdicts, others=others,
                 chosen={"verdict": verdict or "", "rule_id": rule_id or ""})


@router.get("/compliance/runs/{run_id}/compare")
def compare_page(
    run_id: RecordId, other: Annotated[int, Query(ge=1, le=MAX_RECORD_ID)], request: Request, principal: Principal = Depends(current_principal),
    lang: str = Depends(language), session: Session = UNIT_OF_WORK,
):
    return _page(request, "policy_compare.html", principal, lang, comparison=runs.compare_runs(session, principal, run_id, other))


# -- a unit's verdicts -------------------------------------------------------------------------------------------


@router.get("/compliance/units/{unit_id}")
def unit_page(
    unit_id: RecordId, request: Request, as_of: str | None = None, principal: Principal = Depends(current_principal),
    lang: str = Depends(language), session: Session = UNIT_OF_WORK,
):
    day = _as_of(as_of)
    return _page(request, "policy_unit.html", principal, lang, as_of=day, unit_id=unit_id,
                 verdicts=runs.unit_verdicts(session, principal, unit_id, day))


def unit_verdicts_fragment(session: Session, principal: Principal, unit_id, as_of: date | None, lang: str):
    """The compliance section of a registry unit page, as ready HTML (Markup) the unit page can place anywhere."""
    from markupsafe import Markup

    from ingot.web.rendering import templates

    day = as_of or today()
    template = templates.env.get_template("policy_unit_verdicts.html")
    return Markup(template.render(verdicts=runs.unit_verdicts(session, principal, unit_id, day), as_of=day, lang=lang, tt=text(lang)))
