"""The shared controlled vocabulary (vocabulary.yaml), loaded once, and the checks every registry write uses.

The declared-measure vocabulary lives with the policy context (policy/measures.yaml); it is read lazily so the
registry works before that file exists and picks it up as soon as it does.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from ingot.core.errors import InvalidInput


@dataclass(frozen=True)
class Vocabulary:
    units: dict[str, dict[str, Any]]
    provinces: dict[str, dict[str, Any]]
    metals: dict[str, dict[str, Any]]
    parameters: dict[str, dict[str, Any]]
    process_types: dict[str, dict[str, Any]]
    products: dict[str, dict[str, Any]]
    unit_statuses: dict[str, dict[str, Any]]
    ownership_types: dict[str, dict[str, Any]]
    park_levels: dict[str, dict[str, Any]]

    def label(self, section: str, code: str, language: str = "zh-CN") -> str:
        entry = getattr(self, section).get(code) or {}
        return entry.get("en" if language.startswith("en") else "zh", code)

    def metal_of(self, process_type: str) -> str | None:
        return (self.process_types.get(process_type) or {}).get("metal")

    def process_types_of_metal(self, metal: str) -> list[str]:
        return [code for code, spec in self.process_types.items() if spec.get("metal") == metal]


@lru_cache(maxsize=1)
def vocabulary() -> Vocabulary:
    raw = yaml.safe_load((resources.files("ingot") / "registry" / "vocabulary.yaml").read_text(encoding="utf-8"))
    return Vocabulary(**{name: {str(k): v for k, v in (raw.get(name) or {}).items()} for name in Vocabulary.__dataclass_fields__})


@lru_cache(maxsize=1)
def _measures_cached() -> dict[str, dict[str, Any]] | None:
    path = resources.files("ingot") / "policy" / "measures.yaml"
    if not path.is_file():
        return None
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {str(k): v for k, v in (raw.get("measures") or {}).items()}


def measures() -> dict[str, dict[str, Any]] | None:
    """The declared-measure vocabulary, or None while policy/measures.yaml does not exist yet."""
    found = _measures_cached()
    if found is None:
        _measures_cached.cache_clear()
    return found


def _known(section: str, code: str | None, field: str, what_zh: str, what_en: str) -> str:
    if not code or code not in getattr(vocabulary(), section):
        raise InvalidInput(f"{field}：未知的{what_zh}“{code}”", f"{field}: unknown {what_en} '{code}'", field=field, code="unknown_code")
    return code


def check_metal(code: str | None, field: str = "metal") -> str:
    return _known("metals", code, field, "金属", "metal")


def check_process_type(code: str | None, field: str = "process_type") -> str:
    return _known("process_types", code, field, "工艺类型", "process type")


def check_product(code: str | None, field: str = "product_code") -> str:
    return _known("products", code, field, "产品", "product")


def check_status(code: str | None, field: str = "status") -> str:
    return _known("unit_statuses", code, field, "状态", "unit status")


def check_ownership(code: str | None, field: str = "ownership") -> str:
    return _known("ownership_types", code, field, "所有制类型", "ownership type")


def check_park_level(code: str | None, field: str = "level") -> str:
    return _known("park_levels", code, field, "园区级别", "park level")


def check_parameter(process_type: str, code: str, unit: str | None, field: str = "code") -> str | None:
    """A parameter the process type carries, in the vocabulary's unit; returns that unit (None for enumerations)."""
    vocab = vocabulary()
    spec = vocab.parameters.get(code)
    if spec is None:
        raise InvalidInput(f"{field}：未知的技术参数“{code}”", f"{field}: unknown parameter '{code}'", field=field, code="unknown_code")
    carried = vocab.process_types[process_type].get("params") or []
    if code not in carried:
        raise InvalidInput(
            f"{field}：工艺“{vocab.label('process_types', process_type)}”没有参数“{code}”（可用：{', '.join(carried) or '无'}）",
            f"{field}: process type '{process_type}' does not carry parameter '{code}' (it carries: {', '.join(carried) or 'none'})",
            field=field,
            code="parameter_not_carried",
        )
    expected = spec.get("unit")
    if (unit or None) != expected:
        raise InvalidInput(
            f"unit：参数“{code}”的单位须为 {expected or '（无单位）'}，收到 {unit or '（空）'}",
            f"unit: parameter '{code}' is measured in {expected or '(no unit)'}, got {unit or '(empty)'}",
            field="unit",
            code="wrong_unit",
        )
    return expected


def check_enum_parameter(code: str, value_label: str | None) -> None:
    allowed = vocabulary().parameters[code].get("enum")
    if allowed and value_label not in allowed:
        raise InvalidInput(
            f"value：参数“{code}”须取 {', '.join(allowed)} 之一", f"value: parameter '{code}' must be one of {', '.join(allowed)}",
            field="value", code="not_in_enum",
        )


def check_capacity_unit(unit: str | None) -> str:
    if unit != "t/a":
        raise InvalidInput(f"unit：产能单位须为 t/a，收到 {unit or '（空）'}", f"unit: rated capacity is in t/a, got {unit or '(empty)'}", field="unit", code="wrong_unit")
    return unit


def check_measure(code: str | None, unit: str | None) -> None:
    """Validate a declared measure against policy/measures.yaml when it exists; otherwise only the unit code."""
    known = measures()
    if unit not in vocabulary().units:
        raise InvalidInput(f"unit：未知的计量单位“{unit}”", f"unit: unknown unit '{unit}'", field="unit", code="unknown_code")
    if known is None:
        if not code:
            raise InvalidInput("measure_code：不能为空", "measure_code: must not be empty", field="measure_code")
        return
    spec = known.get(code or "")
    if spec is None:
        raise InvalidInput(f"measure_code：未知的申报指标“{code}”", f"measure_code: unknown declared measure '{code}'", field="measure_code", code="unknown_code")
    if spec.get("unit") != unit:
        raise InvalidInput(
            f"unit：指标“{code}”的单位须为 {spec.get('unit')}，收到 {unit}",
            f"unit: measure '{code}' is declared in {spec.get('unit')}, got {unit}",
            field="unit", code="wrong_unit",
        )
