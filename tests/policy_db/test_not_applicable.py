"""not_applicable carried through: stored runs, comparisons, the API, the CLI, exports, the unit page and the dashboard.

In the policy world, Inner Mongolia's rules for *new* aluminium lines name the existing Baotou lines' process type
but not their age class, and they name the Kunming line's process type but not its province: both are shown as
considered and not applicable, with why. The lead blast furnace in Yunnan meets no aluminium rule at all.
"""
from __future__ import annotations

import json
from collections import Counter
from datetime import date
from io import BytesIO

from openpyxl import load_workbook
from typer.testing import CliRunner

from ingot.cli import app
from ingot.policy import runs
from ingot.policy.pages import unit_verdicts_fragment
from tests.conftest import login
from tests.policy_db.world import ADMIN_P, PASSWORD

AS_OF = date(2018, 6, 30)
NEW_LINES = "nm.al.new_cell_current"


def _by_rule(views, unit_id):
    return {v["rule_id"]: v for v in views if str(v["unit_id"]) == str(unit_id)}


def test_live_verdicts_say_why_a_rule_does_not_apply(session, world):
    result = runs.evaluate_registry(session, AS_OF)
    views = [runs.verdict_view(v, result.units) for v in result.verdicts]
    old = _by_rule(views, world.units["baotou_old"])[NEW_LINES]
    assert (old["verdict"], old["reason"]) == ("not_applicable", "other_unit_age")
    assert old["excluded"] == {"dimension": "unit_age", "unit": "existing", "scope": "new", "unit_date": "2006-03-01",
                               "divides_on": "2013-01-01"}
    assert old["measured"] == {} and old["citation"]["quote"]
    kunming = _by_rule(views, world.units["kunming_al"])[NEW_LINES]
    assert kunming["excluded"] == {"dimension": "province", "unit": "530000", "scope": "150000"}
    # the lead furnace is never compared with aluminium rules
    lead_rules = set(_by_rule(views, world.units["honghe_lead"]))
    assert not {rule for rule in lead_rules if rule.startswith("nm.al.")}


def test_stored_run_keeps_not_applicable_with_its_reason_and_compares_cleanly(session, world):
    base = runs.create_run(session, ADMIN_P, AS_OF)
    assert base["counts"]["not_applicable"] > 0
    stored = runs.run_verdicts(session, ADMIN_P, base["id"], verdict="not_applicable", limit=runs.MAX_VERDICT_PAGE)
    assert stored and all(v["excluded"] and v["reason"] for v in stored)
    old = _by_rule(stored, world.units["baotou_old"])[NEW_LINES]
    assert old["excluded"]["dimension"] == "unit_age" and old["reason"] == "other_unit_age"
    assert Counter(v["verdict"] for v in runs.run_verdicts(session, ADMIN_P, base["id"], limit=runs.MAX_VERDICT_PAGE)) == base["counts"]
    # the same scenario twice: no verdict changes, not_applicable included
    again = runs.create_run(session, ADMIN_P, AS_OF)
    same = runs.compare_runs(session, ADMIN_P, base["id"], again["id"])
    assert same["newly_failing"] == same["newly_passing"] == same["other_changes"] == []
    # a stricter floor for new lines touches no existing line: they stay not_applicable, so nothing changes for them
    stricter = runs.create_run(session, ADMIN_P, AS_OF, runs.parse_overrides([f"{NEW_LINES}.min_cell_current=500"]))
    diff = runs.compare_runs(session, ADMIN_P, base["id"], stricter["id"])
    changed = diff["newly_failing"] + diff["newly_passing"] + diff["other_changes"]
    assert all(change["before"] != change["after"] for change in changed)
    assert not [c for c in changed if c["rule_id"] == NEW_LINES]
    # a run before the 2013 plan: its rules are not yet in force, and after it they give verdicts
    early = runs.create_run(session, ADMIN_P, date(2012, 6, 30))
    early_old = _by_rule(runs.run_verdicts(session, ADMIN_P, early["id"], limit=runs.MAX_VERDICT_PAGE), world.units["baotou_old"])
    assert early_old["nm.al.existing_cell_current"]["reason"] == "not_yet_in_force"
    assert early_old["nm.al.existing_cell_current"]["excluded"] == {"dimension": "effective_from", "unit": "2012-06-30",
                                                                    "scope": "2013-01-01"}
    later = runs.compare_runs(session, ADMIN_P, early["id"], base["id"])
    assert ("nm.al.existing_cell_current", world.units["baotou_old"], "not_applicable", "fail") in [
        (c["rule_id"], c["unit_id"], c["before"], c["after"]) for c in later["newly_failing"]]
    assert runs.reproduce_run(session, ADMIN_P, base["id"])["identical"] is True


def test_api_unit_verdicts_and_export_carry_the_exclusion(client, world):
    headers = login(client, "padmin", PASSWORD)
    answer = client.get(f"/api/policy/units/{world.units['kunming_al']}/verdicts", params={"as_of": "2018-06-30"}, headers=headers)
    assert answer.status_code == 200
    verdict = _by_rule(answer.json()["verdicts"], world.units["kunming_al"])[NEW_LINES]
    assert verdict["verdict"] == "not_applicable" and verdict["excluded"]["dimension"] == "province"
    created = client.post("/api/policy/runs", json={"as_of": "2018-06-30"}, headers=headers).json()
    listed = client.get(f"/api/policy/runs/{created['id']}/verdicts", params={"verdict": "not_applicable"}, headers=headers).json()
    assert listed and {v["verdict"] for v in listed} == {"not_applicable"}
    sheet = load_workbook(BytesIO(client.get(f"/api/policy/runs/{created['id']}/verdicts.xlsx", headers=headers).content))["结论 verdicts"]
    header = [cell.value for cell in sheet[1]]
    column = header.index("不适用原因 excluded by")
    rows = [[cell.value for cell in row] for row in sheet.iter_rows(min_row=2)]
    assert "province 530000 ∉ 150000" in {row[column] for row in rows if row[0] == NEW_LINES}
    assert all(row[column] in (None, "") for row in rows if row[2] != "not_applicable")


def test_cli_check_shows_why_in_json_and_table(world):
    runner = CliRunner()
    document = json.loads(runner.invoke(app, ["check", "--as-of", "2018-06-30", "--format", "json", "--only", "not_applicable"]).output)
    assert document["counts"]["not_applicable"] == len(document["verdicts"]) > 0
    assert {v["reason"] for v in document["verdicts"]} >= {"other_unit_age", "outside_province"}
    table = runner.invoke(app, ["check", "--as-of", "2018-06-30", "--only", "not_applicable"], env={"COLUMNS": "240"})
    assert table.exit_code == 0 and "unit_age existing (2006-03-01 < 2013-01-01) ≠ new" in table.output


def test_unit_page_lists_rules_considered_that_do_not_apply(session, world):
    html = unit_verdicts_fragment(session, ADMIN_P, world.units["kunming_al"], AS_OF, "zh-CN")
    assert 'data-testid="unit-not-applicable"' in html and "已考虑但不适用的条款" in html
    assert "所在省份不在本条款适用范围内" in html and NEW_LINES in html
    english = unit_verdicts_fragment(session, ADMIN_P, world.units["baotou_old"], AS_OF, "en")
    assert "the unit belongs to the other age class" in english and "dividing date 2013-01-01" in english
    # the applicable verdicts stay in the main table, the fail among them
    assert "nm.al.existing_cell_current" in english.split('data-testid="unit-not-applicable"')[0]


def test_dashboard_counts_not_applicable(client, world):
    headers = login(client, "padmin", PASSWORD)
    counts = client.get("/api/policy/noncompliance", params={"as_of": "2018-06-30"}, headers=headers).json()["counts"]
    total = sum(row.get("not_applicable", 0) for row in counts["province"].values())
    assert total > 0
    response = client.post("/login", data={"username": "padmin", "password": PASSWORD, "next": "/"}, follow_redirects=False)
    assert response.status_code == 303
    page = client.get("/compliance", params={"as_of": "2018-06-30"})
    assert page.status_code == 200
    card = page.text.split('data-testid="total-not_applicable"')[1].split("</section>")[0]
    assert f'<div class="stat">{total}</div>' in card
