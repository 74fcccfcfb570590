"""The /api/policy endpoints end to end: login, scope, errors, exports."""
from __future__ import annotations

from io import BytesIO

from openpyxl import load_workbook

from tests.conftest import login
from tests.policy_db.world import PASSWORD

STRICTER = "nm.al.existing_cell_current.min_cell_current=450"


def test_every_endpoint_needs_a_login(client, world):
    for path in ("/api/policy/provisions", "/api/policy/runs", "/api/policy/elimination?as_of=2018-06-30"):
        assert client.get(path).status_code == 401


def test_catalogue_list_detail_and_coverage(client, world):
    headers = login(client, "nm_reg", PASSWORD)
    listed = client.get("/api/policy/provisions", params={"seed": "003", "checkable": "true"}, headers=headers).json()
    assert listed and all(p["seed"].startswith("003") and p["checkable"] for p in listed)
    aluminium = client.get("/api/policy/provisions", params={"metal": "aluminium"}, headers=headers).json()
    assert "nm.al.existing_cell_current" in {p["id"] for p in aluminium}
    detail = client.get("/api/policy/provisions/nm.al.existing_cell_current", headers=headers).json()
    assert detail["citation"]["quote"] == "现有电解铝生产线要达到160KA及以上预焙槽"
    assert detail["parameters"]["min_cell_current"]["values"][0]["value"] == "160"
    missing = client.get("/api/policy/provisions/no.such.rule", headers=headers)
    assert missing.status_code == 404 and missing.json()["detail"][0]["code"] == "unknown_rule"
    bad_kind = client.get("/api/policy/provisions", params={"kind": "law"}, headers=headers)
    assert bad_kind.status_code == 422 and "未知的条款类别" in bad_kind.json()["detail"][0]["msg"]
    coverage = client.get("/api/policy/coverage", headers=headers).json()
    assert len(coverage["provisions"]) == len(client.get("/api/policy/provisions", headers=headers).json())
    assert set(coverage["summary"]) == {p["seed"] for p in coverage["provisions"]}


def test_runs_create_get_list_verdicts_compare_reproduce_export(client, world):
    headers = login(client, "padmin", PASSWORD)
    created = client.post("/api/policy/runs", json={"as_of": "2018-06-30", "label": "baseline"}, headers=headers)
    assert created.status_code == 201, created.text
    base = created.json()
    stricter = client.post("/api/policy/runs", json={"as_of": "2018-06-30", "overrides": [STRICTER]}, headers=headers).json()
    assert stricter["overrides"] == [STRICTER]
    assert [run["id"] for run in client.get("/api/policy/runs", headers=headers).json()] == [stricter["id"], base["id"]]
    assert client.get(f"/api/policy/runs/{base['id']}", headers=headers).json()["label"] == "baseline"
    failing = client.get(f"/api/policy/runs/{stricter['id']}/verdicts", params={"verdict": "fail", "rule_id": "nm.al.existing_cell_current"},
                         headers=headers).json()
    assert {v["unit_id"] for v in failing} == {world.units["baotou_good"], world.units["baotou_old"]}
    comparison = client.get(f"/api/policy/runs/{base['id']}/compare/{stricter['id']}", headers=headers).json()
    assert [(c["rule_id"], c["unit_id"]) for c in comparison["newly_failing"]] == [("nm.al.existing_cell_current", world.units["baotou_good"])]
    reproduced = client.post(f"/api/policy/runs/{stricter['id']}/reproduce", headers=headers).json()
    assert reproduced["identical"] is True
    exported = client.get(f"/api/policy/runs/{base['id']}/verdicts.xlsx", headers=headers)
    assert exported.headers["content-type"].startswith("application/vnd.openxmlformats")
    sheet = load_workbook(BytesIO(exported.content))["结论 verdicts"]
    rules = [row[0].value for row in sheet.iter_rows(min_row=2)]
    assert "nm.al.existing_cell_current" in rules and len(rules) == sum(base["counts"].values())


def test_run_input_errors_are_specific(client, world):
    headers = login(client, "padmin", PASSWORD)
    bad_date = client.post("/api/policy/runs", json={"as_of": "2018-02-30"}, headers=headers)
    assert bad_date.status_code == 422
    bad_override = client.post("/api/policy/runs", json={"as_of": "2018-06-30", "overrides": ["nm.al.existing_cell_current=4"]}, headers=headers)
    assert bad_override.status_code == 422
    detail = bad_override.json()["detail"][0]
    assert detail["code"] in ("override_syntax", "unknown_rule") and detail["msg"] and detail["msg_en"]
    assert client.get("/api/policy/runs/9999", headers=headers).status_code == 404


def test_scope_on_the_api(client, world):
    admin = login(client, "padmin", PASSWORD)
    run = client.post("/api/policy/runs", json={"as_of": "2018-06-30"}, headers=admin).json()
    enterprise = login(client, "good_ent", PASSWORD)
    own = client.get(f"/api/policy/runs/{run['id']}/verdicts", headers=enterprise).json()
    assert own and {v["unit_id"] for v in own} == {world.units["baotou_good"]}
    assert client.post("/api/policy/runs", json={"as_of": "2018-06-30"}, headers=enterprise).status_code == 403
    assert client.get(f"/api/policy/units/{world.units['baotou_old']}/verdicts", headers=enterprise).status_code == 404
    mine = client.get(f"/api/policy/units/{world.units['baotou_good']}/verdicts", params={"as_of": "2018-06-30"}, headers=enterprise).json()
    assert {v["verdict"] for v in mine["verdicts"]} >= {"pass"}
    kunming = login(client, "km_reg", PASSWORD)
    elimination = client.get("/api/policy/elimination", params={"as_of": "2018-06-30"}, headers=kunming).json()
    assert elimination["entries"] == []
    nm = login(client, "nm_reg", PASSWORD)
    counts = client.get("/api/policy/noncompliance", params={"as_of": "2018-06-30"}, headers=nm).json()["counts"]
    assert set(counts["province"]) == {"150000"}
    # A provincial regulator's own run answers with its province's figures, not the country's.
    own_run = client.post("/api/policy/runs", json={"as_of": "2018-06-30"}, headers=nm).json()
    national = client.get(f"/api/policy/runs/{own_run['id']}", headers=admin).json()
    assert own_run["unit_count"] < national["unit_count"] and own_run["counts"] != national["counts"]
    assert own_run == client.get(f"/api/policy/runs/{own_run['id']}", headers=nm).json()
    nm_units = {v["unit_id"] for v in client.get(f"/api/policy/runs/{own_run['id']}/verdicts", headers=nm).json() if v["unit_id"]}
    assert own_run["unit_count"] == len(nm_units)


def test_regulator_views_and_exports(client, world):
    headers = login(client, "padmin", PASSWORD)
    elimination = client.get("/api/policy/elimination", params={"as_of": "2018-06-30"}, headers=headers).json()
    lead = [e for e in elimination["entries"] if e["rule_id"] == "yn.nf.blast_furnace_closure_2018"]
    assert lead[0]["due"] == "2018-12-31" and lead[0]["capacities"] == {"refined_lead": "30000"} and lead[0]["citation"]["quote"]
    headroom = client.get("/api/policy/headroom", params={"as_of": "2018-06-30"}, headers=headers).json()["rows"]
    nm = [r for r in headroom if r["rule_id"] == "nm.al.smelting_capacity_2020"]
    assert nm[0]["total"] == "820000" and nm[0]["unit"] == "t/a"
    later = client.get("/api/policy/elimination", params={"as_of": "2019-06-30", "set": "yn.nf.blast_furnace_closure_2018.closure_deadline=2020-12-31"},
                       headers=headers).json()
    assert [e["overdue"] for e in later["entries"] if e["rule_id"] == "yn.nf.blast_furnace_closure_2018"] == [False]
    for path in ("/api/policy/elimination.xlsx", "/api/policy/headroom.xlsx", "/api/policy/noncompliance.xlsx"):
        response = client.get(path, params={"as_of": "2018-06-30"}, headers=headers)
        assert response.status_code == 200 and load_workbook(BytesIO(response.content)).sheetnames
    by_province = load_workbook(BytesIO(client.get("/api/policy/noncompliance.xlsx", params={"as_of": "2018-06-30"}, headers=headers).content))
    rows = {row[0].value: [cell.value for cell in row[1:]] for row in by_province["省份 province"].iter_rows(min_row=2)}
    assert rows["150000"][1] >= 1  # the fail column
    what_if = client.post("/api/policy/what-if", json={"as_of": "2018-06-30", "overrides": [STRICTER]}, headers=headers).json()
    assert what_if["capacity_affected"] == {"primary_aluminium": "500000"}
    assert client.post("/api/policy/what-if", json={"as_of": "2018-06-30", "overrides": []}, headers=headers).status_code == 422
    sheet = client.get("/api/policy/what-if.xlsx", params={"as_of": "2018-06-30", "set": STRICTER}, headers=headers)
    book = load_workbook(BytesIO(sheet.content))
    assert [row[0].value for row in book["新增不合规 failing"].iter_rows(min_row=2)] == ["nm.al.existing_cell_current"]


def test_admission_endpoint(client, world):
    headers = login(client, "good_ent", PASSWORD)
    proposal = {"province": "150000", "process_type": "al_prebake_electrolysis", "status": "planned", "params": {"cell_current": "300"}}
    response = client.post("/api/policy/admission", json={"as_of": "2018-01-01", "unit": proposal}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["decision"] == "blocked"
    assert "nm.al.new_cell_current" in {f["rule_id"] for f in body["findings"] if f["effect"] == "blocks"}
    bad = client.post("/api/policy/admission", json={"as_of": "2018-01-01", "unit": {"province": "150000", "colour": "red", "status": "planned"}},
                      headers=headers)
    assert bad.status_code == 422 and bad.json()["detail"][0]["code"] == "unknown_field"
