"""The policy catalogue: schema, loader, integrity checks, dated parameter resolution and what-if overrides.

Each seed document has one YAML file under ``catalogue/``; every provision carries its citation, its scope and its
parameters as dated values with explicit units. Nothing in the Python code knows a policy number: thresholds,
caps and deadlines are read from those files only.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ingot.core.errors import InvalidInput

PROVISION_KINDS = (
    "access_standard",
    "elimination_deadline",
    "capacity_cap",
    "plan_target",
    "capacity_replacement",
    "fee_formula",
    "eligibility_rule",
    "institution",
    "guidance",
)
CHECK_TYPES = ("threshold", "deadline", "cap", "share", "plan_target", "eligibility")
AGGREGATE_CHECKS = frozenset({"cap", "share", "plan_target"})
COMPARISON_OPS = (">=", ">", "<=", "<")
GROUP_KEYS = ("province", "prefecture", "metal", "process_type", "enterprise_id")
NON_VOCABULARY_UNITS = ("date", "text")
SITE_FACTS = {"in_park": "count", "above_designated": "count"}
PROVISION_ID = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+){2,}$")

ParameterValueType = Decimal | date | str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Bilingual(_Strict):
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class Document(_Strict):
    seed: str
    title: Bilingual
    issuer: Bilingual
    issued_on: date | None
    provinces: list[str]


class Scope(_Strict):
    """Which units a provision speaks of; an absent key means any.

    ``unit_age``: ``new`` units were approved (or, failing that, commissioned) on or after ``effective.from``;
    a planned or under-construction unit without dates counts as new. ``enterprise_size: above_designated`` and
    ``park_required: true`` narrow the provision to units of above-designated-size enterprises, or located in an
    industrial park; a rule that *requires* a park location is written as a threshold on ``site.in_park``.
    """

    provinces: list[str] | None = None
    metals: list[str] | None = None
    process_types: list[str] | None = None
    unit_age: Literal["new", "existing", "any"] = "any"
    enterprise_size: Literal["any", "above_designated"] = "any"
    park_required: bool = False


class Effective(_Strict):
    from_: date | None = Field(default=None, alias="from")
    until: date | None = None

    def covers(self, day: date) -> bool:
        return (self.from_ is None or self.from_ <= day) and (self.until is None or day <= self.until)


class DatedValue(_Strict):
    from_: date = Field(alias="from")
    value: str | date

    @field_validator("value", mode="before")
    @classmethod
    def _no_bare_numbers(cls, raw: Any) -> Any:
        # A YAML float would silently lose precision; the schema asks for numbers written as strings.
        if isinstance(raw, bool) or isinstance(raw, (int, float)):
            raise ValueError(f"number {raw!r} must be quoted as a string so it is read exactly as a Decimal")
        return raw


class Parameter(_Strict):
    unit: str
    description: Bilingual
    values: list[DatedValue] = Field(min_length=1)


class Condition(_Strict):
    measure: str
    op: Literal[COMPARISON_OPS]
    parameter: str


class Check(_Strict):
    """How the engine checks a provision; see the engine for each type's semantics.

    ``deadline`` names a date parameter: for ``threshold``/``eligibility`` a shortfall before it is ``pending``;
    for ``plan_target``/``share`` the verdict is ``pending`` until the date has passed. ``statuses`` overrides the
    unit statuses counted (defaults per type in the engine). ``numerator_scope`` narrows the units whose numerator
    counts in a ``share``.
    """

    type: Literal[CHECK_TYPES]
    measure: str | None = None
    op: Literal[COMPARISON_OPS] | None = None
    parameter: str | None = None
    deadline: str | None = None
    group_by: list[str] | None = None
    statuses: list[str] | None = None
    numerator: str | None = None
    denominator: str | None = None
    numerator_scope: Scope | None = None
    alternative: list[str] | None = None
    conditions: list[Condition] | None = None


class Citation(_Strict):
    seed: str
    section: str = Field(min_length=1)
    quote: str = Field(min_length=1)


class Provision(_Strict):
    id: str
    kind: Literal[PROVISION_KINDS]
    title: Bilingual
    checkable: bool
    scope: Scope = Scope()
    effective: Effective = Effective()
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    check: Check | None = None
    citation: Citation
    note: str | None = None


class CatalogueFile(_Strict):
    document: Document
    provisions: list[Provision]


@dataclass(frozen=True)
class CatalogueIssue:
    file: str
    provision_id: str | None
    field: str
    code: str
    message_zh: str
    message_en: str

    def __str__(self) -> str:
        where = f"{self.file}" + (f" · {self.provision_id}" if self.provision_id else "") + f" · {self.field}"
        return f"{where}: [{self.code}] {self.message_en} / {self.message_zh}"


class CatalogueError(InvalidInput):
    """The catalogue failed validation; ``issues`` lists every problem found, each naming file, provision, field."""

    code = "catalogue_invalid"

    def __init__(self, issues: list[CatalogueIssue]):
        self.issues = issues
        head = "; ".join(str(issue) for issue in issues[:5])
        more = f" (+{len(issues) - 5} more)" if len(issues) > 5 else ""
        super().__init__(
            f"政策目录校验失败，共 {len(issues)} 处问题：{head}{more}",
            f"policy catalogue invalid, {len(issues)} issue(s): {head}{more}",
        )

    def as_dict(self) -> dict:
        detail = super().as_dict()
        detail["errors"] = [issue.__dict__ for issue in self.issues]
        return detail


@dataclass(frozen=True)
class Override:
    """A what-if replacement of one parameter of one rule, valid for every date."""

    rule_id: str
    parameter: str
    value: ParameterValueType

    def __str__(self) -> str:
        shown = self.value.isoformat() if isinstance(self.value, date) else str(self.value)
        return f"{self.rule_id}.{self.parameter}={shown}"


@dataclass(frozen=True)
class Vocabulary:
    units: Mapping[str, Any]
    provinces: Mapping[str, Any]
    metals: Mapping[str, Any]
    parameters: Mapping[str, Any]
    process_types: Mapping[str, Any]
    products: Mapping[str, Any]
    unit_statuses: Mapping[str, Any]
    measures: Mapping[str, Any]

    def measure_unit(self, measure: str) -> str | None:
        """The unit of a fact name, or None when the name is not known to the vocabulary."""
        namespace, _, code = measure.partition(".")
        if namespace == "param" and code in self.parameters:
            return self.parameters[code].get("unit") or "text"
        if namespace == "capacity" and code in self.products:
            return "t/a"
        if namespace == "decl" and code in self.measures:
            return self.measures[code]["unit"]
        if namespace == "site" and code in SITE_FACTS:
            return SITE_FACTS[code]
        return None


@dataclass
class Catalogue:
    documents: dict[str, Document]
    provisions: list[Provision]
    source_files: dict[str, str]
    content_hash: str
    vocabulary: Vocabulary
    by_id: dict[str, Provision] = field(init=False)
    document_of: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {provision.id: provision for provision in self.provisions}
        self.document_of = {provision.id: provision.citation.seed for provision in self.provisions}

    def provision(self, rule_id: str) -> Provision:
        try:
            return self.by_id[rule_id]
        except KeyError:
            raise InvalidInput(
                f"政策目录中没有条款 {rule_id}",
                f"no provision {rule_id} in the policy catalogue",
                field="rule",
                code="unknown_rule",
            ) from None

    def checkable(self) -> list[Provision]:
        return [provision for provision in self.provisions if provision.checkable]

    def parameter_value(
        self, rule_id: str, parameter: str, as_of: date, overrides: Iterable[Override] = ()
    ) -> ParameterValueType | None:
        """The value of a rule's parameter in force on ``as_of`` (None before its first dated value)."""
        provision = self.provision(rule_id)
        for override in overrides:
            if override.rule_id == rule_id and override.parameter == parameter:
                return override.value
        if parameter not in provision.parameters:
            raise InvalidInput(
                f"条款 {rule_id} 没有参数 {parameter}",
                f"provision {rule_id} has no parameter {parameter}",
                field="parameter",
                code="unknown_parameter",
            )
        spec = provision.parameters[parameter]
        in_force = None
        for dated in spec.values:
            if dated.from_ <= as_of:
                in_force = dated
        return None if in_force is None else typed_value(spec.unit, in_force.value)


def typed_value(unit: str, raw: str | date) -> ParameterValueType:
    """A parameter value read by its unit: a date, free text, or an exact Decimal."""
    if unit == "date":
        return raw if isinstance(raw, date) else date.fromisoformat(str(raw))
    if unit == "text":
        return str(raw)
    if isinstance(raw, date):
        raise ValueError(f"a date where a number in {unit} was expected")
    number = Decimal(raw)
    if not number.is_finite():
        raise ValueError(f"{raw!r} is not a finite number")
    return number


def parse_override(text: str, catalogue: Catalogue) -> Override:
    """Read ``RULE.PARAM=VALUE`` (rule ids contain dots: the parameter is the last dotted part)."""
    target, sep, raw_value = text.partition("=")
    rule_id, dot, parameter = target.strip().rpartition(".")
    if not sep or not dot or not raw_value.strip():
        raise InvalidInput(
            f"参数覆盖 {text!r} 格式应为 规则.参数=值",
            f"override {text!r} must have the form RULE.PARAM=VALUE",
            field="set",
            code="override_syntax",
        )
    whole = target.strip()
    if whole in catalogue.by_id:
        # "RULE=VALUE": the whole target is a rule id, so the parameter is what is missing.
        names = ", ".join(catalogue.by_id[whole].parameters) or "无 none"
        raise InvalidInput(
            f"参数覆盖 {text!r} 缺少参数名，应为 {whole}.参数=值（可用：{names}）",
            f"override {text!r} names no parameter: write {whole}.PARAM=VALUE (parameters: {names})",
            field="set",
            code="override_syntax",
        )
    provision = catalogue.provision(rule_id)
    if parameter not in provision.parameters:
        raise InvalidInput(
            f"条款 {rule_id} 没有参数 {parameter}，可用：{', '.join(provision.parameters) or '无'}",
            f"provision {rule_id} has no parameter {parameter}; it has: {', '.join(provision.parameters) or 'none'}",
            field="set",
            code="unknown_parameter",
        )
    unit = provision.parameters[parameter].unit
    try:
        value = typed_value(unit, raw_value.strip())
    except (ValueError, InvalidOperation):
        raise InvalidInput(
            f"参数 {rule_id}.{parameter} 的值 {raw_value.strip()!r} 不是有效的 {unit} 值",
            f"value {raw_value.strip()!r} is not a valid {unit} value for {rule_id}.{parameter}",
            field="set",
            code="override_value",
        ) from None
    return Override(rule_id, parameter, value)


# ---------------------------------------------------------------------------------------------------------------
# Loading


def package_catalogue_dir() -> Traversable:
    return resources.files("ingot.policy") / "catalogue"


def load_vocabulary(
    vocabulary_path: Path | Traversable | None = None, measures_path: Path | Traversable | None = None
) -> Vocabulary:
    vocabulary_file = vocabulary_path or resources.files("ingot") / "registry" / "vocabulary.yaml"
    measures_file = measures_path or resources.files("ingot.policy") / "measures.yaml"
    raw = yaml.safe_load(vocabulary_file.read_text(encoding="utf-8"))
    measures = yaml.safe_load(measures_file.read_text(encoding="utf-8"))["measures"]
    return Vocabulary(
        units=raw["units"],
        provinces=raw["provinces"],
        metals=raw["metals"],
        parameters=raw["parameters"],
        process_types=raw["process_types"],
        products=raw["products"],
        unit_statuses=raw["unit_statuses"],
        measures=measures,
    )


def _canonical(data: Any) -> Any:
    if isinstance(data, dict):
        return {str(key): _canonical(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_canonical(item) for item in data]
    if isinstance(data, date):
        return data.isoformat()
    return data


def load_catalogue(
    directory: Path | Traversable | None = None,
    *,
    vocabulary: Vocabulary | None = None,
) -> Catalogue:
    """Read and validate every ``*.yaml`` in the catalogue folder; raise CatalogueError listing all problems."""
    folder = directory if directory is not None else package_catalogue_dir()
    vocab = vocabulary or load_vocabulary()
    issues: list[CatalogueIssue] = []
    documents: dict[str, Document] = {}
    provisions: list[Provision] = []
    raw_by_file: dict[str, Any] = {}
    source_files: dict[str, str] = {}
    seen_ids: dict[str, str] = {}

    entries = sorted((entry for entry in folder.iterdir() if entry.name.endswith(".yaml")), key=lambda e: e.name)
    if not entries:
        raise CatalogueError(
            [CatalogueIssue(str(folder), None, "(folder)", "empty", "目录中没有政策文件", "no catalogue files found")]
        )
    for entry in entries:
        name = entry.name
        try:
            raw = yaml.safe_load(entry.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            issues.append(CatalogueIssue(name, None, "(file)", "yaml_syntax", f"YAML 语法错误：{exc}", f"YAML syntax error: {exc}"))
            continue
        try:
            parsed = CatalogueFile.model_validate(raw)
        except ValidationError as exc:
            issues.extend(_schema_issues(name, raw, exc))
            continue
        raw_by_file[name] = raw
        seed_stem = parsed.document.seed.removesuffix(".txt")
        if name.removesuffix(".yaml") != seed_stem:
            issues.append(
                CatalogueIssue(
                    name, None, "document.seed", "file_name_mismatch",
                    f"文件名应为 {seed_stem}.yaml（与 document.seed 一致）",
                    f"file should be named {seed_stem}.yaml to match document.seed",
                )
            )
        for index, code in enumerate(parsed.document.provinces):
            if code not in vocab.provinces:
                issues.append(_unknown(name, None, f"document.provinces[{index}]", "province", code))
        documents[parsed.document.seed] = parsed.document
        source_files[parsed.document.seed] = name
        for provision in parsed.provisions:
            if provision.id in seen_ids:
                issues.append(
                    CatalogueIssue(
                        name, provision.id, "id", "duplicate_id",
                        f"条款编号重复（已在 {seen_ids[provision.id]} 中出现）",
                        f"provision id is not unique (already used in {seen_ids[provision.id]})",
                    )
                )
            seen_ids[provision.id] = name
            issues.extend(_provision_issues(name, parsed.document, provision, vocab))
            provisions.append(provision)
    if issues:
        raise CatalogueError(issues)
    digest = hashlib.sha256()
    digest.update(json.dumps(_canonical(raw_by_file), sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode())
    digest.update(json.dumps(_canonical(dict(vocab.measures)), sort_keys=True, ensure_ascii=False).encode())
    return Catalogue(documents, provisions, source_files, digest.hexdigest(), vocab)


def _schema_issues(file_name: str, raw: Any, exc: ValidationError) -> list[CatalogueIssue]:
    issues = []
    for error in exc.errors():
        location = list(error["loc"])
        provision_id = None
        if len(location) >= 2 and location[0] == "provisions" and isinstance(location[1], int):
            try:
                provision_id = raw["provisions"][location[1]].get("id")
            except (KeyError, IndexError, TypeError, AttributeError):
                provision_id = None
        field_path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location).lstrip(".")
        field_path = field_path or "(file)"
        issues.append(
            CatalogueIssue(
                file_name, provision_id, field_path, f"schema_{error['type']}",
                f"结构不符合目录规范：{error['msg']}", f"does not match the catalogue schema: {error['msg']}",
            )
        )
    return issues


def _unknown(file_name: str, provision_id: str | None, field_path: str, what: str, code: Any) -> CatalogueIssue:
    labels = {
        "province": "省级行政区划代码", "metal": "金属代码", "process_type": "工艺类型代码", "status": "单元状态",
        "unit": "计量单位", "measure": "事实名称", "group": "分组键", "parameter": "参数名",
    }
    return CatalogueIssue(
        file_name, provision_id, field_path, f"unknown_{what}",
        f"未知的{labels.get(what, what)}：{code}", f"unknown {what} code: {code}",
    )


def _provision_issues(file_name: str, document: Document, provision: Provision, vocab: Vocabulary) -> list[CatalogueIssue]:
    issues: list[CatalogueIssue] = []
    pid = provision.id

    def issue(field_path: str, code: str, zh: str, en: str) -> None:
        issues.append(CatalogueIssue(file_name, pid, field_path, code, zh, en))

    if not PROVISION_ID.match(pid):
        issue("id", "bad_id", "条款编号须为小写的 地区.主题.名称", "provision id must be lowercase <region>.<topic>.<name>")
    if provision.citation.seed != document.seed:
        issue("citation.seed", "citation_seed_mismatch", f"引文来源应为 {document.seed}", f"citation must cite {document.seed}")
    _scope_issues(provision.scope, "scope", issues, file_name, pid, vocab)
    effective = provision.effective
    if effective.from_ and effective.until and effective.until < effective.from_:
        issue("effective.until", "effective_order", "失效日期早于生效日期", "effective.until is before effective.from")
    if provision.checkable and provision.scope.unit_age != "any" and effective.from_ is None:
        issue(
            "scope.unit_age", "unit_age_needs_date",
            "区分新建与现有单元时，必须给出 effective.from 作为分界日期",
            "scope.unit_age new/existing needs effective.from as the dividing date",
        )
    for name, spec in provision.parameters.items():
        where = f"parameters.{name}"
        if spec.unit not in vocab.units and spec.unit not in NON_VOCABULARY_UNITS:
            issues.append(_unknown(file_name, pid, f"{where}.unit", "unit", spec.unit))
            continue
        previous: date | None = None
        for index, dated in enumerate(spec.values):
            try:
                typed_value(spec.unit, dated.value)
            except (ValueError, InvalidOperation):
                issue(
                    f"{where}.values[{index}].value", "bad_value",
                    f"值 {dated.value!r} 不是有效的 {spec.unit} 值", f"value {dated.value!r} is not a valid {spec.unit} value",
                )
            if previous is not None and dated.from_ <= previous:
                issue(
                    f"{where}.values[{index}].from", "values_order",
                    "参数取值须按生效日期严格递增排列", "parameter values must be in strictly increasing date order",
                )
            previous = dated.from_
    if provision.checkable and provision.check is None:
        issue("check", "check_missing", "可校验条款必须给出 check", "a checkable provision needs a check")
    if not provision.checkable and provision.check is not None:
        issue("check", "check_on_qualitative", "不可校验条款不得带有 check", "a provision with checkable: false must not have a check")
    if provision.check is not None:
        _check_issues(provision, issue, vocab, file_name, issues)
    return issues


def _scope_issues(scope: Scope, where: str, issues: list, file_name: str, pid: str, vocab: Vocabulary) -> None:
    for key, known, what in (
        ("provinces", vocab.provinces, "province"),
        ("metals", vocab.metals, "metal"),
        ("process_types", vocab.process_types, "process_type"),
    ):
        codes = getattr(scope, key)
        if codes is not None and not codes:
            issues.append(
                CatalogueIssue(file_name, pid, f"{where}.{key}", "empty_scope_list",
                               "范围列表不能为空（省略该键表示不限）", "a scope list must not be empty (omit the key to mean any)")
            )
        for index, code in enumerate(codes or ()):
            if code not in known:
                issues.append(_unknown(file_name, pid, f"{where}.{key}[{index}]", what, code))


def _check_issues(provision: Provision, issue, vocab: Vocabulary, file_name: str, issues: list) -> None:
    check = provision.check
    assert check is not None
    parameters = provision.parameters

    def need(attribute: str) -> Any:
        value = getattr(check, attribute)
        if value is None:
            issue(f"check.{attribute}", "check_field_missing", f"{check.type} 检查必须给出 {attribute}",
                  f"a {check.type} check needs {attribute}")
        return value

    def parameter_ref(field_path: str, name: str | None, *, unit: str | None = None) -> None:
        if name is None:
            return
        if name not in parameters:
            issue(field_path, "unknown_parameter", f"check 引用了不存在的参数 {name}",
                  f"check refers to parameter {name}, which the provision does not define")
            return
        if unit is not None and parameters[name].unit != unit:
            issue(field_path, "unit_mismatch", f"参数 {name} 的单位应为 {unit}，实为 {parameters[name].unit}",
                  f"parameter {name} must be in {unit}, found {parameters[name].unit}")

    def measure_ref(field_path: str, measure: str | None) -> str | None:
        if measure is None:
            return None
        unit = vocab.measure_unit(measure)
        if unit is None:
            issues.append(_unknown(file_name, provision.id, field_path, "measure", measure))
        return unit

    for index, status in enumerate(check.statuses or ()):
        if status not in vocab.unit_statuses:
            issues.append(_unknown(file_name, provision.id, f"check.statuses[{index}]", "status", status))
    for index, key in enumerate(check.group_by or ()):
        if key not in GROUP_KEYS:
            issues.append(_unknown(file_name, provision.id, f"check.group_by[{index}]", "group", key))
    for index, code in enumerate(check.alternative or ()):
        if code not in vocab.process_types:
            issues.append(_unknown(file_name, provision.id, f"check.alternative[{index}]", "process_type", code))
    if check.numerator_scope is not None:
        _scope_issues(check.numerator_scope, "check.numerator_scope", issues, file_name, provision.id, vocab)
    parameter_ref("check.deadline", check.deadline, unit="date")

    if check.type == "threshold":
        unit = measure_ref("check.measure", need("measure"))
        need("op")
        parameter_ref("check.parameter", need("parameter"), unit=unit)
    elif check.type == "eligibility":
        if not need("conditions"):
            return
        for index, condition in enumerate(check.conditions or ()):
            unit = measure_ref(f"check.conditions[{index}].measure", condition.measure)
            parameter_ref(f"check.conditions[{index}].parameter", condition.parameter, unit=unit)
    elif check.type == "deadline":
        parameter_ref("check.parameter", need("parameter"), unit="date")
    elif check.type in ("cap", "plan_target"):
        unit = measure_ref("check.measure", need("measure"))
        op = need("op")
        parameter_ref("check.parameter", need("parameter"), unit=unit)
        allowed = ("<=", "<") if check.type == "cap" else (">=", ">")
        if op is not None and op not in allowed:
            issue("check.op", "op_direction", f"{check.type} 检查的比较符只能是 {' 或 '.join(allowed)}",
                  f"a {check.type} check compares with {' or '.join(allowed)} only")
        if check.type == "plan_target":
            need("deadline")
    elif check.type == "share":
        measure_ref("check.numerator", need("numerator"))
        measure_ref("check.denominator", need("denominator"))
        need("op")
        parameter_ref("check.parameter", need("parameter"), unit="percent")
