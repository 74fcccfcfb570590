"""Build small catalogues in a temporary folder, so engine and loader tests do not depend on the seed data."""
from __future__ import annotations

from pathlib import Path

import yaml

from ingot.policy.catalogue import load_catalogue

SEED = "900_test.txt"


def provision(rule_id: str, *, check: dict | None = None, parameters: dict | None = None, scope: dict | None = None,
              effective_from: str | None = "2017-01-01", until: str | None = None, kind: str = "access_standard") -> dict:
    data = {
        "id": rule_id,
        "kind": kind,
        "title": {"zh": "测试条款", "en": "test provision"},
        "checkable": check is not None,
        "scope": {"provinces": ["150000"]} if scope is None else scope,
        "effective": {"from": effective_from, "until": until},
        "parameters": parameters or {},
        "citation": {"seed": SEED, "section": "一、", "quote": "测试"},
    }
    if check is not None:
        data["check"] = check
    return data


def param(unit: str, *values: tuple[str, str]) -> dict:
    return {"unit": unit, "description": {"zh": "参数", "en": "parameter"},
            "values": [{"from": start, "value": value} for start, value in values]}


def write_catalogue(folder: Path, provisions: list[dict], *, file_name: str | None = None, document: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "document": document or {
            "seed": SEED, "title": {"zh": "测试文件", "en": "test document"}, "issuer": {"zh": "测试", "en": "test"},
            "issued_on": "2017-01-01", "provinces": ["150000"],
        },
        "provisions": provisions,
    }
    path = folder / (file_name or SEED.replace(".txt", ".yaml"))
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def catalogue_of(tmp_path: Path, provisions: list[dict]):
    write_catalogue(tmp_path / "catalogue", provisions)
    return load_catalogue(tmp_path / "catalogue")
