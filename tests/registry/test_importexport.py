"""Import all-or-nothing with a row-level report, templates, export round trips, and the CLI commands."""
from __future__ import annotations

import csv
import io

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select
from typer.testing import CliRunner

from ingot.core.audit import AuditEntry
from ingot.core.errors import ImportRejected
from ingot.registry import importexport, service
from ingot.registry.models import Enterprise, ProductionUnit, UnitParameter
from ingot.registry.service import ListQuery

from .helpers import ADMIN_P, build_world, uscc


def csv_bytes(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode("utf-8")


HEADER = ["name", "uscc", "ownership", "division_code", "park_name", "group_name", "above_designated"]


def test_one_bad_row_changes_nothing_and_every_error_is_reported(session):
    service.load_divisions(session)
    content = csv_bytes([
        HEADER,
        ["甲示例企业", uscc(1), "private", "530100", "", "", "是"],
        ["乙示例企业", "91350100M000100Y44", "private", "530100", "", "", "否"],
        ["丙示例企业", uscc(3), "feudal", "530100", "", "", "否"],
        ["丁示例企业", uscc(4), "private", "530100", "没有的园区", "", "否"],
    ])
    before_audit = session.scalar(select(func.count()).select_from(AuditEntry))
    with pytest.raises(ImportRejected) as rejected:
        importexport.import_file(session, ADMIN_P, "enterprises", "enterprises.csv", content)
    report = {(e["row"], e["column"]) for e in rejected.value.errors}
    assert report == {(3, "uscc"), (4, "ownership"), (5, "park_name")}
    assert all(e["msg"] and e["msg_en"] for e in rejected.value.errors)
    assert session.scalar(select(func.count()).select_from(Enterprise)) == 0
    assert session.scalar(select(func.count()).select_from(AuditEntry)) == before_audit


def test_a_clean_file_imports_every_row_with_audit(session):
    service.load_divisions(session)
    content = csv_bytes([HEADER, ["甲示例企业", uscc(1), "private", "530100", "", "", "是"], ["乙示例企业", uscc(2, "510400"), "state_owned", "510400", "", "", "否"]])
    counts = importexport.import_file(session, ADMIN_P, "enterprises", "e.csv", content)
    assert counts == {"created": 2, "updated": 0, "rows": 2}
    assert session.scalar(select(func.count()).where(AuditEntry.entity == "enterprise")) == 2


def test_units_with_parameters_and_capacities_from_xlsx(session):
    world = build_world(session)
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "data"
    sheet.append([c.name for c in importexport.TEMPLATES["units"]])
    sheet.append([world.kunming["uscc"], "一厂", "二号系列", "al_prebake_electrolysis", "2016-08-01", "2015-01-10", "operating", "2016-08-01",
                  "cell_current=500; cell_count=300", "primary_aluminium=500000", ""])
    buffer = io.BytesIO()
    workbook.save(buffer)
    counts = importexport.import_file(session, ADMIN_P, "units", "units.xlsx", buffer.getvalue())
    assert counts["created"] == 1
    unit_id = session.scalar(select(ProductionUnit.id).where(ProductionUnit.name == "二号系列"))
    detail = service.get_unit_detail(session, ADMIN_P, unit_id)
    assert detail["params"] == {"cell_current": "500", "cell_count": "300"} and detail["capacities"] == {"primary_aluminium": "500000"}
    assert detail["status"] == "operating"


def test_unit_row_with_a_parameter_the_process_lacks_is_reported_on_its_column(session):
    world = build_world(session)
    header = [c.name for c in importexport.TEMPLATES["units"]]
    content = csv_bytes([header, [world.kunming["uscc"], "一厂", "二号系列", "al_prebake_electrolysis", "2016-08-01", "", "operating", "",
                                  "ore_capacity=500", "", ""],
                         [world.kunming["uscc"], "没有的厂区", "三号系列", "al_prebake_electrolysis", "", "", "", "", "", "", ""]])
    with pytest.raises(ImportRejected) as rejected:
        importexport.import_file(session, ADMIN_P, "units", "u.csv", content)
    assert [(e["row"], e["column"]) for e in rejected.value.errors] == [(2, "parameters"), (3, "site_name")]
    assert session.scalar(select(func.count()).select_from(ProductionUnit).where(ProductionUnit.name == "二号系列")) == 0


def test_unknown_columns_and_unreadable_files_are_refused(session):
    service.load_divisions(session)
    with pytest.raises(ImportRejected) as rejected:
        importexport.import_file(session, ADMIN_P, "enterprises", "e.csv", csv_bytes([["name", "colour"], ["x", "red"]]))
    assert {e["column"] for e in rejected.value.errors} >= {"uscc", "colour"}
    from ingot.core.errors import InvalidInput

    for name, content in (("e.xlsx", b"not a workbook"), ("e.txt", b"a,b"), ("e.csv", b"\xff\xfe\x00bad")):
        with pytest.raises(InvalidInput):
            importexport.import_file(session, ADMIN_P, "enterprises", name, content)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_round_trip_rebuilds_the_same_registry(session, fmt, tmp_path):
    world = build_world(session)
    service.add_fact(session, ADMIN_P, world.kunming_unit["id"], "capacities", {"product_code": "primary_aluminium", "value": "400000", "effective_from": "2012-05-01"})
    exported = {entity: importexport.export_bytes(session, ADMIN_P, entity, fmt) for entity in ("enterprises", "sites", "units")}
    original_units = [(u["name"], u["process_type"], u["status"]) for u in service.list_units(session, ADMIN_P, ListQuery(sort="id")).items]
    original_params = session.scalar(select(func.count()).select_from(UnitParameter))
    # Re-importing into the same registry recognises every row and changes nothing.
    for entity in ("enterprises", "sites", "units"):
        counts = importexport.import_file(session, ADMIN_P, entity, f"x.{fmt}", exported[entity])
        assert counts["created"] == 0
    assert session.scalar(select(func.count()).select_from(UnitParameter)) == original_params
    # Into an empty registry the three files rebuild the same records.
    for table in ("unit_parameters", "unit_capacities", "unit_status_events", "production_units", "sites", "enterprises"):
        session.execute(__import__("sqlalchemy").text(f"DELETE FROM {table}"))
    for entity in ("enterprises", "sites", "units"):
        importexport.import_file(session, ADMIN_P, entity, f"x.{fmt}", exported[entity])
    rebuilt = [(u["name"], u["process_type"], u["status"]) for u in service.list_units(session, ADMIN_P, ListQuery(sort="id")).items]
    assert sorted(rebuilt) == sorted(original_units)
    unit_id = session.scalar(select(ProductionUnit.id).join(ProductionUnit.site).where(ProductionUnit.process_type == "al_prebake_electrolysis"))
    assert service.get_unit_detail(session, ADMIN_P, unit_id)["capacities"] == {"primary_aluminium": "400000"}


def test_templates_describe_their_columns(session):
    workbook = load_workbook(io.BytesIO(importexport.template_bytes("units", "xlsx")))
    assert [c.value for c in workbook["data"][1]] == [c.name for c in importexport.TEMPLATES["units"]]
    assert workbook["说明 guide"].max_row == len(importexport.TEMPLATES["units"]) + 1
    assert importexport.template_bytes("sites", "csv").decode("utf-8-sig").strip() == "enterprise_uscc,name,division_code,address"


def test_template_import_and_export_endpoints(client, session):
    from ingot.core import auth
    from tests.conftest import login

    build_world(session)
    auth.create_user(session, username="root", password="correct-horse-42", role=auth.ADMIN)
    session.commit()
    headers = login(client, "root", "correct-horse-42")
    template = client.get("/api/registry/templates/enterprises/download", params={"format": "csv"}, headers=headers)
    assert template.status_code == 200 and template.text.lstrip("\ufeff").startswith("name,uscc")
    bad = csv_bytes([HEADER, ["x", "123", "private", "530100", "", "", ""]])
    rejected = client.post("/api/registry/import/enterprises", files={"file": ("e.csv", bad, "text/csv")}, headers=headers)
    assert rejected.status_code == 422
    assert rejected.json()["detail"][0]["errors"][0]["column"] == "uscc"
    good = csv_bytes([HEADER, ["新示例企业", uscc(99), "private", "530100", "", "", "是"]])
    accepted = client.post("/api/registry/import/enterprises", files={"file": ("e.csv", good, "text/csv")}, headers=headers)
    assert accepted.status_code == 200 and accepted.json()["created"] == 1
    exported = client.get("/api/registry/export/enterprises", params={"format": "xlsx", "province": "530000"}, headers=headers)
    assert exported.status_code == 200
    names = [row[0] for row in load_workbook(io.BytesIO(exported.content))["data"].iter_rows(min_row=2, values_only=True)]
    assert "新示例企业" in names and len(names) == 3
    parks = client.get("/api/registry/export/divisions", params={"format": "csv", "province": "630000"}, headers=headers)
    assert parks.status_code == 200 and "海西蒙古族藏族自治州" in parks.text


def test_cli_import_reports_errors_and_exits_non_zero(db_url, session, tmp_path):
    from ingot.registry.cli import app

    service.load_divisions(session)
    session.commit()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_bytes([HEADER, ["x", "91350100M000100Y44", "private", "530100", "", "", ""]]))
    runner = CliRunner()
    result = runner.invoke(app, ["import", str(bad), "--entity", "enterprises"])
    assert result.exit_code == 1
    good = tmp_path / "good.csv"
    good.write_bytes(csv_bytes([HEADER, ["甲示例企业", uscc(1), "private", "530100", "", "", "是"]]))
    result = runner.invoke(app, ["import", str(good), "--entity", "enterprises"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["export", "enterprises", "--format", "csv", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "甲示例企业" in out.read_text(encoding="utf-8-sig")
    assert runner.invoke(app, ["export", "users", "-o", str(out)]).exit_code == 2
